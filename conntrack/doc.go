// Package conntrack is the connection table of an LVS-DR director, with the
// behaviour of Linux IPVS (net/netfilter/ipvs/ip_vs_conn.c,
// ip_vs_proto_tcp.c, ip_vs_core.c; IPVS.md §2, §3, §8): connections keyed
// by client and virtual address and port, the DR "input only" TCP state
// machine and its per-state timeouts, the real servers' ActiveConn,
// InActConn and PersistConn counts and overload flag, and persistence
// templates in the same table. Time is always an argument: now counts
// ticks of Options.TicksPerSecond (10 ms by default; the kernel counts
// jiffies) since the caller's epoch, and an entry is alive while
// now < Expiry. Timers fire on time without a timer per entry: a hashed
// timing wheel of one-tick buckets files blocks of 64 slots under a lower
// bound of their entries' expiry times, and Sweep, which the owner calls
// before each batch of packets and when NextDue comes, scans the blocks
// whose bound is due, removes every entry whose timer has fired, unbinds
// it from its real server and files the block again (wheel.go). A lookup
// that finds an expired entry before Sweep does expires it on the spot.
// A Table is a bounded open-addressing hash table of pointer-free 52-byte
// slots allocated once, at most 7/8 full, under 64 bytes per entry with
// the wheel; Lookup, Insert, Update and Sweep do not allocate. A Table is
// not safe for concurrent use: each forwarder worker owns one; the
// real-server counts it writes are atomics shared with the schedulers.
// Listings copy it in bounded steps (Walk, Step) that its owner runs
// between batches; FlushNodest expires a deleted server's connections in
// bounded steps too.
//
// # Full table
//
// A table never holds more than Cap() entries. An insert into a full table
// looks at the 64 slots from the new key's home slot. It first expires the
// entries there whose timer has fired (and, while a defence is on, drops
// those past their idle limit, below); if that frees nothing, it evicts
// one. The victim is chosen by what the table has seen of each entry, not
// by its state's timeout, which any client sets with two packets (a
// spoofed SYN then ACK makes an ESTABLISHED entry with a 900 s timer). A
// connection keeps, in the slot's word that only templates use otherwise,
// the tick of its first packet and a count of its packets up to 3, and is
// "confirmed" once a packet arrives a second or more after its first: it
// has carried traffic over time. Eviction classes, first victims first:
//
//  1. a template never ASSURED that controls nothing, the closest to
//     expiry first;
//  2. an unconfirmed connection that saw one or two packets (a half-open
//     one, a spoofed SYN+ACK pair, a one-datagram UDP flow) or is closing
//     (FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK: a short
//     connection that has ended), the one idle longest first, the idle
//     time of one that saw a single packet counting twice (a real
//     handshake's second packet comes within a round trip);
//  3. any other unconfirmed connection, the one idle longest first;
//  4. a confirmed connection or an ASSURED template, the closest to expiry
//     first.
//
// A template that controls connections is never evicted (its connections
// would lose track of it); if nothing else is in the window, the insert
// fails with ErrTableFull. An evicted connection takes its template along
// when that leaves the template unused and not ASSURED, as the kernel's
// ip_vs_conn_del does; Delete (ip_vs_conn_expire_now) leaves the template
// to its timer. Stats counts expirations, evictions, drops and refusals.
// So a flood of spoofed tuples churns through classes 1 and 2, where the
// entries idle longest go first, while a real connection that is still
// sending (idle for less than the flood takes to turn the table over)
// stays, and a long-lived one is never evicted while a flood entry is in
// its window.
//
// # Defences
//
// The kernel's drop_entry and secure_tcp defences (ip_vs_ctl.c
// update_defense_level, ip_vs_conn.c ip_vs_random_dropentry,
// ip_vs_proto_tcp.c tcp_states_dos) have their sysctl's modes
// (DefenseMode, SetDefense): 0 off, 1 automatic, 2 automatic and on, 3
// always on. Once a second (at the first Sweep of each second) an
// automatic mode turns on while the table is at least 7/8 full, and off
// below; the kernel compares its free memory with amemthresh instead. While
// a defence is on, Sweep walks 1/32 of the slots a second (at least 64)
// from a random start, a share each tick, and removes (Stats.Dropped):
//
//   - with drop_entry, a template never ASSURED that controls nothing, as
//     the kernel does, and an unconfirmed half-open connection (NONE,
//     SYN_RECV, SYNACK) idle for 1 s, where the kernel drops every
//     SYN_RECV and SYNACK entry it meets: a real handshake ends within a
//     round trip, and the client's SYN is sent again only after 1 s;
//   - with secure_tcp, an unconfirmed half-open connection idle for 10 s
//     (Linux 2.4's SYN_RECV timeout in its DoS table);
//   - with either, any other unconfirmed connection idle for 60 s: the
//     kernel's todrop_entry spares an entry refreshed within 60 s, and
//     drops one in in_pkts of the others that saw at most 8 packets.
//
// Inserts into a full table drop the same entries first. These idle limits
// are the short timeouts under pressure: the entries keep the kernel's
// timers (ipvsadm -L -c shows them), and a confirmed connection is never
// dropped. secure_tcp also switches the TCP state table to
// tcp_states_dos, in which a new SYN leads to SYNACK.
//
// # Differences from the kernel
//
// A timer fires at the first Sweep at or after its tick, so within one
// tick of the kernel's when the owner sweeps on time; Sweep's budget bounds
// the work per call, and when more timers are due than that, they fire
// over the next calls (NextDue says to call again at once).
// A template's timeout is not stored: InsertControlled restarts it with
// the Persistence.Timeout it is given (60 s once re-armed), so editing a
// service's -p applies to its existing templates at their next use.
// The table holds one entry per key where the kernel's hash chains may
// hold several: a client's invalidated templates of one server become one
// (see InvalidateTemplate).
package conntrack
