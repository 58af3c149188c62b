package forwarder

import (
	"encoding/binary"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/internal/checksum"
)

// Wire offsets and sizes (IEEE 802.3, 802.1Q, RFC 791, RFC 8200, RFC 793, RFC 768).
const (
	ethDst    = 0
	ethSrc    = 6
	ethType   = 12
	ethHdrLen = 14
	vlanLen   = 4

	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	etherTypeIPv6 = 0x86dd

	ipv4MinLen = 20
	ipv6HdrLen = 40

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	// IPv6 extension headers that are skipped on the way to the transport header.
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
	maxExtHdrs   = 4

	tcpMinLen = 20
	udpHdrLen = 8

	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// frame is one decoded Ethernet frame. It holds offsets into the caller's
// buffer and copies of the few fields the pipeline needs; decode fills it in
// place so that the worker reuses one frame for every packet.
type frame struct {
	b       []byte
	vlan    bool
	vlanTCI uint16
	l3      int    // offset of the ARP or IP header
	l3Type  uint16 // ethertype after any VLAN tag

	// IP and transport fields, valid when l3Type is IPv4 or IPv6, kept as
	// the connection table's key: Client and VIP are the source and
	// destination addresses (v4-mapped for IPv4), CPort and VPort the
	// ports, Proto the IP protocol.
	key      conntrack.Key
	is6      bool
	ipLen    int    // IP datagram length (header + payload), as the kernel counts InBytes
	l4       int    // offset of the transport header; 0 when absent (later fragment)
	fragment bool   // a fragment: MF set or offset non-zero
	fragOff  uint16 // in 8-byte units; non-zero: a later fragment, no transport header
	fragID   uint32 // IPv4's 16-bit or IPv6's 32-bit identification

	tcpFlags uint8 // valid for TCP when l4 != 0
}

// decode parses b's Ethernet, VLAN and IP headers at fixed offsets. It
// returns VerdictForward when the frame is well-formed enough to go on,
// otherwise the drop verdict. It never reads past len(b).
func (f *frame) decode(b []byte) Verdict {
	*f = frame{b: b}
	if len(b) < ethHdrLen {
		return VerdictTruncated
	}
	f.l3 = ethHdrLen
	f.l3Type = binary.BigEndian.Uint16(b[ethType:])
	if f.l3Type == etherTypeVLAN {
		if len(b) < ethHdrLen+vlanLen {
			return VerdictTruncated
		}
		f.vlan = true
		f.vlanTCI = binary.BigEndian.Uint16(b[ethHdrLen:])
		f.l3Type = binary.BigEndian.Uint16(b[ethHdrLen+2:])
		f.l3 += vlanLen
	}
	switch f.l3Type {
	case etherTypeARP:
		return VerdictForward
	case etherTypeIPv4:
		return f.decodeIPv4()
	case etherTypeIPv6:
		return f.decodeIPv6()
	}
	return VerdictEtherType
}

func (f *frame) decodeIPv4() Verdict {
	ip := f.b[f.l3:]
	if len(ip) < ipv4MinLen {
		return VerdictTruncated
	}
	if ip[0]>>4 != 4 {
		return VerdictMalformed
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < ipv4MinLen || total < ihl {
		return VerdictMalformed
	}
	if total > len(ip) {
		return VerdictTruncated
	}
	if !checksum.IPv4HeaderValid(ip[:ihl]) {
		return VerdictMalformed
	}
	f.ipLen = total
	f.key.Proto = ip[9]
	putV4Mapped(&f.key.Client, ip[12:16])
	putV4Mapped(&f.key.VIP, ip[16:20])
	f.fragID = uint32(binary.BigEndian.Uint16(ip[4:]))
	ff := binary.BigEndian.Uint16(ip[6:])
	f.fragOff = ff & 0x1fff
	f.fragment = ff&0x2000 != 0 || f.fragOff != 0
	if f.fragOff != 0 {
		return VerdictForward // no transport header in a later fragment
	}
	return f.decodeL4(f.l3+ihl, f.l3+total)
}

func (f *frame) decodeIPv6() Verdict {
	ip := f.b[f.l3:]
	if len(ip) < ipv6HdrLen {
		return VerdictTruncated
	}
	if ip[0]>>4 != 6 {
		return VerdictMalformed
	}
	total := ipv6HdrLen + int(binary.BigEndian.Uint16(ip[4:]))
	if total > len(ip) {
		return VerdictTruncated
	}
	f.is6 = true
	f.ipLen = total
	put16(&f.key.Client, ip[8:24])
	put16(&f.key.VIP, ip[24:40])
	next, off := ip[6], ipv6HdrLen
	for range maxExtHdrs {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if off+8 > total {
				return VerdictTruncated
			}
			next, off = ip[off], off+8+int(ip[off+1])*8
			continue
		case ipv6Fragment:
			// RFC 8200 4.5: the first fragment (offset 0) carries the
			// transport header after this one; later ones do not.
			if off+8 > total {
				return VerdictTruncated
			}
			ff := binary.BigEndian.Uint16(ip[off+2:])
			f.fragOff = ff >> 3
			f.fragment = true
			f.fragID = binary.BigEndian.Uint32(ip[off+4:])
			next, off = ip[off], off+8
			if f.fragOff != 0 {
				f.key.Proto = next
				return VerdictForward
			}
			continue
		}
		break
	}
	if off > total {
		return VerdictTruncated
	}
	f.key.Proto = next
	return f.decodeL4(f.l3+off, f.l3+total)
}

// decodeL4 reads the ports and TCP flags of the transport header at off;
// end is the end of the IP datagram.
func (f *frame) decodeL4(off, end int) Verdict {
	l4 := f.b[off:end]
	switch f.key.Proto {
	case protoTCP:
		if len(l4) < tcpMinLen {
			return VerdictTruncated
		}
		if int(l4[12]>>4)*4 < tcpMinLen {
			return VerdictMalformed
		}
		f.tcpFlags = l4[13]
	case protoUDP:
		if len(l4) < udpHdrLen {
			return VerdictTruncated
		}
	case protoICMP, protoICMPv6:
		if len(l4) < 8 {
			return VerdictTruncated
		}
		f.l4 = off
		return VerdictForward
	default:
		f.l4 = off
		return VerdictForward
	}
	f.l4 = off
	f.key.CPort = binary.BigEndian.Uint16(l4[0:])
	f.key.VPort = binary.BigEndian.Uint16(l4[2:])
	return VerdictForward
}

// putV4Mapped stores IPv4 address a as v4-mapped IPv6 in two 8-byte writes.
// The hashes that read the key right after use 8-byte loads, and a load
// that a narrower or wider store must forward stalls the pipeline (a
// store-forwarding failure costs more than the whole lookup).
func putV4Mapped(dst *[16]byte, a []byte) {
	binary.LittleEndian.PutUint64(dst[:8], 0)
	binary.LittleEndian.PutUint64(dst[8:], 0xffff<<16|uint64(binary.LittleEndian.Uint32(a))<<32)
}

// put16 copies a 16-byte address in two 8-byte writes (see putV4Mapped).
func put16(dst *[16]byte, a []byte) {
	binary.LittleEndian.PutUint64(dst[:8], binary.LittleEndian.Uint64(a[:8]))
	binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(a[8:16]))
}
