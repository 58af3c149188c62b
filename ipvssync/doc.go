// Package ipvssync speaks the Linux kernel's IPVS connection synchronisation
// protocol (net/netfilter/ipvs/ip_vs_sync.c), so that udr directors keep
// each other's connection tables, and a udr can sync with, or take over
// from, a kernel director run with ipvsadm --start-daemon.
//
// The wire format is the kernel's, byte for byte: Encoder builds version 1
// messages as ip_vs_sync_conn does, and DecodeMessage accepts version 1
// and version 0 messages and refuses or skips exactly what
// ip_vs_process_message and ip_vs_proc_sync_conn refuse or skip. Neither
// allocates once its buffers exist; neither panics on any input. Policy
// is the kernel master's rule for which packet of a connection triggers
// its sync (ip_vs_sync_conn_needed, sync_threshold "3 50"). The
// sockets (Sender, Receiver) are Linux only.
//
// # Format
//
// All integers are big-endian. A version 1 message (struct ip_vs_sync_mesg):
//
//	off  size  field
//	0    1     reserved, 0 (a version 0 receiver reads nr_conns 0 and does nothing)
//	1    1     syncid
//	2    2     size: the whole message, header included; must equal the datagram
//	4    1     nr_conns
//	5    1     version, 1
//	6    2     spare, 0
//	8          nr_conns records, each starting at a multiple of 4 bytes
//
// A record (struct ip_vs_sync_v4, 36 bytes; struct ip_vs_sync_v6, 72 bytes):
//
//	off  size  field
//	0    1     type: 0 IPv4; bit 0 (STYPE_F_INET6) IPv6, the other bits ignored
//	1    1     protocol
//	2    2     ver_size: record version (top 4 bits, 0), record size with options (low 12)
//	4    4     flags (IP_VS_CONN_F_*, HASHED masked off by the sender)
//	8    2     state
//	10   2     cport
//	12   2     vport
//	14   2     dport
//	16   4     fwmark
//	20   4     timeout, seconds (cp->timeout / HZ)
//	24   4/16  caddr
//	28/40      vaddr, then daddr
//	36/72      options: type (1), length (1, not 0), data; padded to 4 bytes
//	           before the next record
//
// Options: 1 SEQ_DATA (24 bytes: in_seq and out_seq, each init_seq, delta,
// previous_delta; at most once), 2 PE_DATA (at most once), 3 PE_NAME (at
// most 16 bytes, at most once). Bit 6 (IPVS_OPT_F_PARAM) marks an option a
// receiver may ignore; an unknown option without it drops its record.
// udr sends no options (it has no sequence deltas, DR never adjusts
// sequence numbers, and no persistence engine), so its records are
// exactly 36 or 72 bytes and never padded; it decodes options and skips
// a record with PE_DATA, as a kernel without that persistence engine does.
//
// A version 0 message (struct ip_vs_sync_mesg_v0) has a 4-byte header
// (nr_conns, syncid, size) and 24-byte IPv4 records (reserved, protocol,
// cport, vport, dport, caddr, vaddr, daddr, 16-bit flags, state), each
// followed by 24 bytes of sequence options when its flags have
// IP_VS_CONN_F_SEQ_MASK. It carries no timeout and no fwmark.
//
// # Drops
//
// The kernel's backup drops a whole message when its size field differs
// from the datagram, when it is neither version 1 nor version 0 with
// connections, or when a record is cut, of another record version, of an
// unknown type, smaller than its fixed part, or has malformed options (the
// Err* values). It drops one record and goes on when the record has an
// unknown mandatory option, PE data it cannot use, or (for a connection,
// not a template) a protocol without an IPVS handler or a state beyond
// its protocol's (the ErrSkip* values). The kernel applies the records
// before a bad one; udr's Receiver drops the whole message.
//
// # Sockets
//
// A Sender opens its sockets as the kernel's make_send_sock: multicast
// out of Options.Interface, multicast loop off, TTL 1 by default,
// fragmentation allowed, its IPv4 socket bound to the interface's
// address; udr adds unicast Peers (it leaves out its own addresses), and
// waits at most a second per destination and Send. The Encoder's MaxLen
// comes from Options.SendMaxLen (1500 less the IP and UDP headers by
// default, as the kernel's master).
//
// A Receiver listens on the port for the group, joined on the interface,
// and for unicast, in a buffer of the kernel backup's size (max(MTU,
// 1500) less the headers, or MaxLen), one socket per address family in
// use. It drops, and counts by DropReason, datagrams longer than that
// buffer, those the kernel's ip_vs_process_message drops (short, size
// field not the length, a sync ID other than its own when its own is
// not 0, no valid version, a malformed record), and datagrams from an
// address this host had when the Receiver started (the kernel only turns
// multicast loop off). It calls its function for each other message, one
// call at a time, with the connections the kernel would apply, reusing
// one buffer and one slice per socket: no allocation per datagram.
//
// # Hello
//
// A version 1 message with no records (AppendHello) is valid: the
// kernel's backup accepts it and does nothing. udr sends one when its
// sync starts, and a udr that receives one sends that peer its whole
// table: a restarted peer catches up without waiting for traffic. The
// wire format is unchanged, and a kernel peer is unaffected.
//
// # Wireshark
//
// Wireshark's "ipvs" dissector (packet-ipvs-syncd.c, UDP port 8848;
// tshark 4.0 checked) decodes both versions, IPv6 records included: the
// tests check that it reads udr's golden messages, and a version 0
// message with sequence options, field by field.
package ipvssync
