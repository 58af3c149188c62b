package arpresponder

import "strconv"

// A Reason says why HandleARP or HandleNDP built no reply, in the manner of
// MetalLB's layer2 dropReason. ReasonNone means a reply was built. Callers
// count Reasons in a [NumReasons]uint64 array; none is logged per packet.
type Reason uint8

const (
	// ReasonNone: a reply was built.
	ReasonNone Reason = iota

	// ReasonMalformed: the packet fails a validity check: a truncated
	// packet; an ARP hardware type other than Ethernet (1) or IEEE 802 (6),
	// protocol type other than IPv4, or address lengths other than 6 and 4
	// (RFC 826; Linux arp_process); a multicast or zero sender MAC; a
	// sender IP that Linux rejects as a martian source (loopback,
	// multicast, broadcast, 0/8 except the probe's 0.0.0.0); an IPv6
	// header that is not version 6 or whose payload length overruns the
	// packet; a multicast, loopback or IPv4-mapped IPv6 source; or a
	// Neighbor Solicitation or Advertisement that fails RFC
	// 4861 7.1.1 or 7.1.2: hop limit not 255, ICMPv6 code not 0, ICMPv6
	// length under 24, bad checksum, multicast target, an option of length
	// 0 or past the end, a link-layer address option that is not 8 bytes,
	// a DAD solicitation (source ::) not sent to a solicited-node address
	// or carrying a source link-layer address, or a solicited NA sent to a
	// multicast address.
	ReasonMalformed

	// ReasonNotRequest: a well-formed ARP packet that is not a request (a
	// reply, or an operation other than 1 and 2) and claims no VIP.
	ReasonNotRequest

	// ReasonNotNS: an IPv6 packet that is not an ICMPv6 Neighbor
	// Solicitation (another next header, including extension headers,
	// another ICMPv6 type, or a Neighbor Advertisement for an address that
	// is not a VIP).
	ReasonNotNS

	// ReasonNotVIP: an ARP request or Neighbor Solicitation for an address
	// that is not one of the Responder's VIPs.
	ReasonNotVIP

	// ReasonConflict: another host claims one of the VIPs: an ARP packet
	// (request, reply, gratuitous ARP) whose sender IP is a VIP and whose
	// sender MAC is not the VIP MAC (RFC 5227 2.4), a Neighbor Solicitation
	// whose source is a VIP, or a Neighbor Advertisement for a VIP with a
	// link-layer address that is not the VIP MAC. The caller counts it and
	// may defend with a rate-limited announcement (RFC 5227 2.4 (c),
	// Announcer.Defend).
	ReasonConflict

	// ReasonLooped: the packet was sent from the VIP MAC: udr's own reply
	// or announcement seen again (e.g. AF_PACKET's outgoing copy).
	ReasonLooped

	// NumReasons is the number of Reasons, for counter arrays.
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNone:       "none",
	ReasonMalformed:  "malformed",
	ReasonNotRequest: "not-request",
	ReasonNotNS:      "not-ns",
	ReasonNotVIP:     "not-vip",
	ReasonConflict:   "conflict",
	ReasonLooped:     "looped",
}

// String returns the Reason's short name, as used in counters and golden
// dumps.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}
