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
// entries there whose timer has fired; if that frees nothing, it evicts
// one, modelled on the kernel's drop_entry defence: a half-open connection
// (SYN_RECV, SYNACK) or a template never ASSURED first, then a connection
// in another inactive TCP state (NONE, FIN_WAIT, TIME_WAIT, CLOSE,
// CLOSE_WAIT, LAST_ACK, LISTEN), then any other entry (ESTABLISHED,
// SYN_SENT, UDP, ASSURED templates); within a rank, the one closest to
// expiry. A template that controls connections is never evicted (its
// connections would lose track of it); if nothing else is in the window,
// the insert fails with ErrTableFull. An evicted connection takes its
// template along when that leaves the template unused and not ASSURED, as
// the kernel's ip_vs_conn_del does; Delete (ip_vs_conn_expire_now) leaves
// the template to its timer. Stats counts expirations, evictions
// and refusals.
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
