// Package arpresponder answers ARP (RFC 826) and IPv6 Neighbor Discovery
// (RFC 4861) for udr's virtual IPs, builds the gratuitous announcements that
// keep switches and neighbours pointing at them (RFC 5227, RFC 4861 7.2.6),
// times those announcements, and derives the default VIP MAC address. Every
// ARP and neighbour discovery frame udr sends is built here: replies,
// announcements, and the probes that ask real servers for their MACs.
//
// The contract: a Responder is built once by New from a fixed VIP set and is
// immutable afterwards, so any number of forwarder workers may share it.
// HandleARP and HandleNDP take the L3 payload of one received frame (the
// forwarder has already removed the Ethernet header and at most one 802.1Q
// tag), decide, and either build a complete reply frame in the caller's
// buffer and return it with ReasonNone, or return a nil frame and the Reason
// why not. They never return errors, never panic on any input, never
// allocate when dst has room for MaxReplyLen bytes, and read every input byte
// they need before writing dst, so dst may share memory with the received
// frame. Replies go out from the VIP MAC with the received VLAN tag.
// Conflicts (another host claiming a VIP) are reported as ReasonConflict for
// the caller to count and, rate-limited, defend by announcing. The
// announcement and probe builders and VirtualMAC run on the control plane
// and may allocate; an Announcer is owned by one goroutine and takes time as
// an argument.
package arpresponder
