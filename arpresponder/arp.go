package arpresponder

import "encoding/binary"

// Offsets and values of an Ethernet/IPv4 ARP packet (RFC 826).
const (
	arpHType = 0 // hardware type
	arpPType = 2 // protocol type
	arpHLen  = 4 // hardware address length
	arpPLen  = 5 // protocol address length
	arpOp    = 6
	arpSHA   = 8  // sender hardware address
	arpSPA   = 14 // sender protocol address
	arpTHA   = 18 // target hardware address
	arpTPA   = 24 // target protocol address
	arpLen   = 28

	hwTypeEthernet = 1 // ARPHRD_ETHER
	hwTypeIEEE802  = 6 // ARPHRD_IEEE802; Linux accepts it on Ethernet too
	protoTypeIPv4  = 0x0800
)

// An Op is an ARP operation code (RFC 826).
type Op uint16

// The ARP operations udr understands.
const (
	OpRequest Op = 1
	OpReply   Op = 2
)

// ARP is an Ethernet/IPv4 ARP packet, with addresses as fixed-size values
// so that it can be kept or compared without allocating.
type ARP struct {
	Op        Op
	SenderMAC [6]byte
	SenderIP  [4]byte
	TargetMAC [6]byte
	TargetIP  [4]byte
}

// ParseARP decodes an ARP packet (the bytes after the Ethernet header and
// any VLAN tag; trailing padding is ignored) for neighbour learning and for
// HandleARP. It reports false unless b holds at least 28 bytes of ARP for
// Ethernet (hardware type 1, or 6 as Linux also accepts) and IPv4 (protocol
// type 0x0800) with 6-byte and 4-byte addresses (RFC 826). It does not check
// the operation or the addresses. It does not allocate.
func ParseARP(b []byte) (ARP, bool) {
	if len(b) < arpLen {
		return ARP{}, false
	}
	b = b[:arpLen] // one bounds check for the fixed offsets below
	ht := binary.BigEndian.Uint16(b[arpHType:])
	if (ht != hwTypeEthernet && ht != hwTypeIEEE802) ||
		binary.BigEndian.Uint16(b[arpPType:]) != protoTypeIPv4 ||
		b[arpHLen] != ethAddrLen || b[arpPLen] != 4 {
		return ARP{}, false
	}
	var p ARP
	p.Op = Op(binary.BigEndian.Uint16(b[arpOp:]))
	copy(p.SenderMAC[:], b[arpSHA:])
	copy(p.SenderIP[:], b[arpSPA:])
	copy(p.TargetMAC[:], b[arpTHA:])
	copy(p.TargetIP[:], b[arpTPA:])
	return p, true
}

// ValidateARP decodes an ARP packet as ParseARP does and validates it, for
// HandleARP and for neighbour learning alike: it returns ReasonMalformed
// unless ParseARP accepts it, the sender MAC is unicast (not a group
// address, not zero) and the sender IP is not martian (see martianSender),
// ReasonNotRequest for an operation other than request or reply, the only
// two Linux arp_process understands, and ReasonNone otherwise. It does not
// allocate.
func ValidateARP(b []byte) (ARP, Reason) {
	p, ok := ParseARP(b)
	if !ok || !isUnicastMAC(p.SenderMAC) || martianSender(p.SenderIP) {
		return ARP{}, ReasonMalformed
	}
	if p.Op != OpRequest && p.Op != OpReply {
		return ARP{}, ReasonNotRequest
	}
	return p, ReasonNone
}

// HandleARP decides on one received ARP packet. vlan is the frame's tag,
// ethSrc its Ethernet source and arp the bytes after the Ethernet header and
// tag. For a request whose target IP is a VIP it writes into dst[:0] an ARP
// reply per RFC 826 (sender = VIP MAC and VIP, target = the requester's
// sender addresses), sent from the VIP MAC to the requester's sender MAC with
// the same VLAN tag and padded to the Ethernet minimum, and returns it with
// ReasonNone. Otherwise it returns nil and the Reason.
//
// An RFC 5227 probe (sender IP 0.0.0.0) for a VIP is answered like any
// request, so the probing host sees the VIP in use: unicast to its MAC with
// target IP 0.0.0.0, as Linux does (arp_process, "IPv4 duplicate address
// detection packet"). Any ARP packet whose sender IP is a VIP but whose
// sender MAC is not the VIP MAC is a conflict (RFC 5227 2.4), whatever its
// target. Packets from the VIP MAC are udr's own and ignored.
//
// HandleARP does not allocate if cap(dst) >= MaxReplyLen. It reads arp fully
// before writing dst, so the two may overlap.
func (r *Responder) HandleARP(dst []byte, vlan VLAN, ethSrc [6]byte, arp []byte) ([]byte, Reason) {
	p, why := ValidateARP(arp)
	if why != ReasonNone {
		return nil, why
	}
	return r.AnswerARP(dst, vlan, ethSrc, &p)
}

// AnswerARP is HandleARP for a packet that ValidateARP accepted, for a
// caller that validated it itself (the forwarder validates once, then
// learns from it and answers it).
func (r *Responder) AnswerARP(dst []byte, vlan VLAN, ethSrc [6]byte, p *ARP) ([]byte, Reason) {
	if ethSrc == r.mac || p.SenderMAC == r.mac {
		return nil, ReasonLooped
	}
	if r.isVIP4(p.SenderIP) {
		return nil, ReasonConflict
	}
	if p.Op != OpRequest {
		return nil, ReasonNotRequest
	}
	if !r.isVIP4(p.TargetIP) {
		return nil, ReasonNotVIP
	}

	return putARP(dst, p.SenderMAC, vlan, &ARP{
		Op:        OpReply,
		SenderMAC: r.mac,
		SenderIP:  p.TargetIP,
		TargetMAC: p.SenderMAC,
		TargetIP:  p.SenderIP,
	}), ReasonNone
}

// putARP writes into dst[:0] (allocating only if it is too small) an
// Ethernet frame to ethDst from p.SenderMAC, tagged with vlan if
// vlan.Present, carrying the Ethernet/IPv4 ARP packet p (RFC 826) padded
// to the Ethernet minimum, and returns it. Replies, announcements and
// probes are all built here.
func putARP(dst []byte, ethDst [ethAddrLen]byte, vlan VLAN, p *ARP) []byte {
	eth := ethernetLen(vlan)
	b := frame(dst, eth+minPayloadLen)
	putEthernet(b, ethDst, p.SenderMAC, vlan, etherTypeARP)
	a := b[eth : eth+arpLen]
	binary.BigEndian.PutUint16(a[arpHType:], hwTypeEthernet)
	binary.BigEndian.PutUint16(a[arpPType:], protoTypeIPv4)
	a[arpHLen] = ethAddrLen
	a[arpPLen] = 4
	binary.BigEndian.PutUint16(a[arpOp:], uint16(p.Op))
	copy(a[arpSHA:], p.SenderMAC[:])
	copy(a[arpSPA:], p.SenderIP[:])
	copy(a[arpTHA:], p.TargetMAC[:])
	copy(a[arpTPA:], p.TargetIP[:])
	return b
}

// martianSender reports whether a cannot be an ARP sender's address: the
// addresses Linux's input route lookup rejects as a "martian source"
// (ip_route_input_slow), so that arp_process never answers them: 0.0.0.0/8
// except 0.0.0.0 itself (an RFC 5227 probe), loopback 127.0.0.0/8,
// multicast 224.0.0.0/4 and the limited broadcast 255.255.255.255.
func martianSender(a [4]byte) bool {
	return (a[0] == 0 && a != [4]byte{}) || a[0] == 127 || a[0]&0xf0 == 0xe0 || a == [4]byte{255, 255, 255, 255}
}
