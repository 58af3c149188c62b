package arpresponder

import (
	"encoding/binary"

	"github.com/udr-lb/udr/internal/checksum"
)

// Offsets and values of IPv6 (RFC 8200) and of Neighbor Solicitation and
// Advertisement messages (RFC 4861 4.3, 4.4, 4.6.1).
const (
	ipv6HdrLen     = 40
	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6Src        = 8
	ipv6Dst        = 24
	protoICMPv6    = 58

	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	ndFlags      = 4 // NA: Router, Solicited, Override
	ndTarget     = 8
	ndOptions    = 24 // also the minimum NS/NA length (RFC 4861 7.1.1)

	typeNS = 135
	typeNA = 136

	// ndHopLimit: NDP packets must not have crossed a router (RFC 4861
	// 7.1.1); replies are sent with it.
	ndHopLimit = 255

	naFlagSolicited = 0x40
	naFlagOverride  = 0x20

	optSourceLLA = 1
	optTargetLLA = 2
	llaOptLen    = 8 // type, length 1 (in 8-byte units), 6-byte MAC

	naReplyLen = ipv6HdrLen + ndOptions + llaOptLen
)

// allNodes is ff02::1, the destination of advertisements answering a DAD
// solicitation and of unsolicited advertisements (RFC 4861 7.2.4, 7.2.6).
var allNodes = [16]byte{0: 0xff, 1: 0x02, 15: 0x01}

// ND is a Neighbor Solicitation or Advertisement that passed RFC 4861 7.1.
type ND struct {
	Type             uint8 // 135 (NS) or 136 (NA)
	Flags            uint8 // NA: Router, Solicited, Override
	Src, Dst, Target [16]byte
	LLA              [ethAddrLen]byte // source (NS) or target (NA) link-layer address option
	HasLLA           bool
}

// The ND types (RFC 4861 4.3, 4.4).
const (
	TypeNS = typeNS
	TypeNA = typeNA
)

// ParseND validates ip6 (an IPv6 header and payload, link-layer padding
// after the payload ignored) as a Neighbor Solicitation or Advertisement,
// for HandleNDP and for neighbour learning alike: RFC 4861 7.1.1 and 7.1.2
// (hop limit 255, ICMP code 0, a valid checksum, length 24 or more, a
// target that is not multicast, option lengths not zero; an NS from :: goes
// to a solicited-node address without a source link-layer address option;
// an NA to a multicast address has Solicited clear), a source that is not
// martian, and an Ethernet-sized link-layer address option. It returns
// ReasonNone if it is one, ReasonNotNS for other IPv6 packets, and
// ReasonMalformed for a broken NS or NA. It does not allocate.
func ParseND(ip6 []byte) (ND, Reason) {
	var m ND
	if len(ip6) < ipv6HdrLen || ip6[0]>>4 != 6 {
		return m, ReasonMalformed
	}
	end := ipv6HdrLen + int(binary.BigEndian.Uint16(ip6[ipv6PayloadLen:]))
	if end > len(ip6) {
		return m, ReasonMalformed
	}
	if ip6[ipv6NextHeader] != protoICMPv6 {
		return m, ReasonNotNS
	}
	msg := ip6[ipv6HdrLen:end] // bytes past end are link-layer padding
	if len(msg) < icmpChecksum {
		return m, ReasonMalformed
	}
	m.Type = msg[icmpType]
	if m.Type != typeNS && m.Type != typeNA {
		return m, ReasonNotNS
	}
	copy(m.Src[:], ip6[ipv6Src:])
	copy(m.Dst[:], ip6[ipv6Dst:])
	// RFC 4861 7.1.1 (NS) and 7.1.2 (NA): hop limit, code, length, target
	// not multicast, and last, as the costliest, the checksum.
	if ip6[ipv6HopLimit] != ndHopLimit || msg[icmpCode] != 0 || len(msg) < ndOptions ||
		msg[ndTarget] == 0xff || martianSource6(&m.Src) ||
		!checksum.Valid(ndSum(&m.Src, &m.Dst, msg)) {
		return m, ReasonMalformed
	}
	m.Flags = msg[ndFlags]
	copy(m.Target[:], msg[ndTarget:])

	want := byte(optSourceLLA)
	if m.Type == typeNA {
		want = optTargetLLA
	}
	for opts := msg[ndOptions:]; len(opts) > 0; {
		if len(opts) < 2 {
			return m, ReasonMalformed
		}
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return m, ReasonMalformed
		}
		// Like Linux ndisc_parse_options, the first of duplicated options
		// wins; its length must be right for Ethernet.
		if opts[0] == want && !m.HasLLA {
			if n != llaOptLen {
				return m, ReasonMalformed
			}
			copy(m.LLA[:], opts[2:llaOptLen])
			m.HasLLA = true
		}
		opts = opts[n:]
	}

	if m.Type == typeNS && m.Src == [16]byte{} {
		// A DAD probe: to a solicited-node address, without a source
		// link-layer address option (RFC 4861 7.1.1).
		if !isSolicitedNode(m.Dst) || m.HasLLA {
			return m, ReasonMalformed
		}
	}
	if m.Type == typeNA && m.Dst[0] == 0xff && m.Flags&naFlagSolicited != 0 {
		return m, ReasonMalformed // RFC 4861 7.1.2
	}
	return m, ReasonNone
}

// HandleNDP decides on one received IPv6 packet. vlan is the frame's tag,
// ethSrc its Ethernet source and ip6 the IPv6 header and payload (extension
// headers are not followed; link-layer padding after the payload is ignored).
// For a valid Neighbor Solicitation (RFC 4861 7.1.1) whose target is a VIP it
// writes into dst[:0] a solicited Neighbor Advertisement per RFC 4861 7.2.4
// and returns it with ReasonNone: from the VIP to the solicitation's source,
// Solicited and Override set, hop limit 255, a Target Link-Layer Address
// option with the VIP MAC, a valid checksum; Ethernet from the VIP MAC to the
// solicitation's Source Link-Layer Address option, or to ethSrc if it has
// none, with the same VLAN tag. A DAD solicitation (source ::) is answered to
// ff02::1 (Ethernet 33:33:00:00:00:01) with Solicited clear, which defends
// the VIP (RFC 4862 5.4.3). Otherwise HandleNDP returns nil and the Reason.
//
// A solicitation whose source is a VIP, or a valid advertisement for a VIP
// with a link-layer address other than the VIP MAC, is a conflict. Packets
// from the VIP MAC are udr's own and ignored.
//
// HandleNDP does not allocate if cap(dst) >= MaxReplyLen. It reads ip6 fully
// before writing dst, so the two may overlap.
func (r *Responder) HandleNDP(dst []byte, vlan VLAN, ethSrc [6]byte, ip6 []byte) ([]byte, Reason) {
	m, why := ParseND(ip6)
	if why != ReasonNone {
		return nil, why
	}
	return r.AnswerND(dst, vlan, ethSrc, &m)
}

// AnswerND is HandleNDP for a message that ParseND accepted, for a caller
// that validated it itself (the forwarder validates once, then learns from
// it and answers it).
func (r *Responder) AnswerND(dst []byte, vlan VLAN, ethSrc [6]byte, m *ND) ([]byte, Reason) {
	if ethSrc == r.mac || (m.HasLLA && m.LLA == r.mac) {
		return nil, ReasonLooped
	}
	if m.Type == typeNA {
		if r.isVIP6(m.Target) {
			return nil, ReasonConflict
		}
		return nil, ReasonNotNS
	}
	if r.isVIP6(m.Src) {
		return nil, ReasonConflict
	}
	if !r.isVIP6(m.Target) {
		return nil, ReasonNotVIP
	}

	dad := m.Src == [16]byte{}
	ipDst, ethDst, flags := m.Src, ethSrc, byte(naFlagSolicited|naFlagOverride)
	switch {
	case dad:
		ipDst, ethDst, flags = allNodes, allNodesMAC, naFlagOverride
	case m.HasLLA:
		ethDst = m.LLA
	}
	if !isUnicastMAC(ethDst) && !dad {
		return nil, ReasonMalformed // nowhere to unicast the reply
	}

	return putND(dst, ethDst, r.mac, vlan, &ndMessage{
		typ: typeNA, flags: flags, src: m.Target, dst: ipDst, target: m.Target,
		opt: optTargetLLA, lla: r.mac,
	}), ReasonNone
}

// An ndMessage is a Neighbor Solicitation or Advertisement to build.
type ndMessage struct {
	typ, flags       uint8 // flags: NA only (RFC 4861 4.4)
	src, dst, target [16]byte
	opt              uint8            // optSourceLLA, optTargetLLA, or 0 for no option
	lla              [ethAddrLen]byte // the option's link-layer address
}

// putND writes into dst[:0] (allocating only if it is too small) an
// Ethernet frame from ethSrc to ethDst, tagged with vlan if vlan.Present,
// carrying m as an IPv6 packet with hop limit 255 (RFC 4861 7.1) and a valid
// checksum, and returns it. Replies, announcements and probes are all built
// here.
func putND(dst []byte, ethDst, ethSrc [ethAddrLen]byte, vlan VLAN, m *ndMessage) []byte {
	msgLen := ndOptions
	if m.opt != 0 {
		msgLen += llaOptLen
	}
	eth := ethernetLen(vlan)
	b := frame(dst, eth+ipv6HdrLen+msgLen)
	putEthernet(b, ethDst, ethSrc, vlan, etherTypeIPv6)
	ip := b[eth:]
	ip[0] = 6 << 4 // version; traffic class and flow label 0
	binary.BigEndian.PutUint16(ip[ipv6PayloadLen:], uint16(msgLen))
	ip[ipv6NextHeader] = protoICMPv6
	ip[ipv6HopLimit] = ndHopLimit
	copy(ip[ipv6Src:], m.src[:])
	copy(ip[ipv6Dst:], m.dst[:])

	msg := ip[ipv6HdrLen:]
	msg[icmpType] = m.typ
	msg[ndFlags] = m.flags
	copy(msg[ndTarget:], m.target[:])
	if m.opt != 0 {
		opt := msg[ndOptions:]
		opt[0] = m.opt
		opt[1] = llaOptLen / 8
		copy(opt[2:], m.lla[:])
	}
	binary.BigEndian.PutUint16(msg[icmpChecksum:], checksum.Finish(ndSum(&m.src, &m.dst, msg)))
	return b
}

// ndSum returns the one's complement accumulator (RFC 1071) of the IPv6
// pseudo-header for an ICMPv6 message from src to dst (RFC 8200 8.1)
// followed by msg: checksum.Valid for a message that carries its checksum,
// checksum.Finish for one whose checksum field is zero.
func ndSum(src, dst *[16]byte, msg []byte) uint64 {
	return checksum.Add(checksum.Pseudo(src[:], dst[:], protoICMPv6, len(msg)), msg)
}

// martianSource6 reports whether a cannot be the source of a packet from
// the wire: multicast (RFC 4291 2.7), loopback (RFC 4291 2.5.3) or
// IPv4-mapped (RFC 4291 2.5.5.2), all of which Linux ipv6_rcv drops.
func martianSource6(a *[16]byte) bool {
	if a[0] == 0xff {
		return true
	}
	for _, b := range a[:10] {
		if b != 0 {
			return false
		}
	}
	loopback := a[10]|a[11]|a[12]|a[13]|a[14] == 0 && a[15] == 1
	mapped := a[10] == 0xff && a[11] == 0xff
	return loopback || mapped
}

// isSolicitedNode reports whether a is in ff02::1:ff00:0/104 (RFC 4291 2.7.1).
func isSolicitedNode(a [16]byte) bool {
	return a[0] == 0xff && a[1] == 0x02 && a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9]|a[10] == 0 &&
		a[11] == 0x01 && a[12] == 0xff
}
