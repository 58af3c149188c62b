package forwarder

import (
	"encoding/binary"

	"github.com/udr-lb/udr/internal/checksum"
)

// When no real server is available the kernel answers the client with ICMP
// port unreachable (ip_vs_leave → icmp_send, icmpv6_send), even for TCP,
// and drops the packet. udr does the same, from the VIP and the VIP MAC,
// within a global budget of UnreachPerSecond messages a second, the
// kernel's net.ipv4.icmp_msgs_per_sec default; several workers share it
// (PipelineConfig.UnreachShare).
const (
	// UnreachPerSecond is the budget of ICMP port unreachables a second.
	UnreachPerSecond = 1000
	unreachMaxPerSec = UnreachPerSecond

	// RFC 1812 4.3.2.3: an ICMPv4 error carries as much of the offending
	// datagram as fits in 576 bytes; RFC 4443 2.4 (c): an ICMPv6 error as
	// much as fits in the IPv6 minimum MTU, 1280.
	unreachMax4 = 576
	unreachMax6 = 1280
)

// unreachLimiter counts the ICMP errors sent in the current second.
type unreachLimiter struct {
	second uint32
	sent   int
	max    int    // the budget of a second
	hz     uint32 // ticks per second
}

// allow counts one error at now, in ticks, and reports whether it is
// within the budget of its second.
func (l *unreachLimiter) allow(now uint32) bool {
	if now /= l.hz; now != l.second {
		l.second, l.sent = now, 0
	}
	if l.sent >= l.max {
		return false
	}
	l.sent++
	return true
}

// unreachable builds, in the worker's scratch buffer, the port unreachable
// answer to the frame being processed, or returns nil when the budget is
// spent.
func (p *Pipeline) unreachable(now uint32) []byte {
	if !p.unreach.allow(now) {
		return nil
	}
	p.last.Unreachable = true
	f := &p.f
	b := p.reply[:]
	copy(b[ethDst:], f.b[ethSrc:ethSrc+6])
	copy(b[ethSrc:], p.t.opts.VIPMAC[:])
	copy(b[ethType:f.l3], f.b[ethType:f.l3]) // the VLAN tag, if any, and the EtherType
	orig := f.b[f.l3 : f.l3+f.ipLen]
	ip := b[f.l3:]
	if f.is6 {
		return b[:f.l3+unreach6(ip, orig)]
	}
	return b[:f.l3+unreach4(ip, orig)]
}

// unreach4 writes an IPv4 ICMP destination unreachable (type 3), code port
// unreachable (3), from the original's destination to its source, and
// returns its length.
func unreach4(ip, orig []byte) int {
	const hdr = ipv4MinLen + icmpHdrLen
	quoted := min(len(orig), unreachMax4-hdr)
	total := hdr + quoted
	clear(ip[:hdr])
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	ip[8] = 64 // TTL
	ip[9] = protoICMP
	copy(ip[12:16], orig[16:20])
	copy(ip[16:20], orig[12:16])
	binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip[:ipv4MinLen]))
	icmp := ip[ipv4MinLen:total]
	icmp[0], icmp[1] = icmpDestUnreach, 3
	copy(icmp[icmpHdrLen:], orig[:quoted])
	binary.BigEndian.PutUint16(icmp[2:], checksum.Checksum(icmp))
	return total
}

// unreach6 writes an ICMPv6 destination unreachable (type 1), code port
// unreachable (4), and returns its length.
func unreach6(ip, orig []byte) int {
	const hdr = ipv6HdrLen + icmpHdrLen
	quoted := min(len(orig), unreachMax6-hdr)
	total := hdr + quoted
	clear(ip[:hdr])
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(total-ipv6HdrLen))
	ip[6] = protoICMPv6
	ip[7] = 64
	copy(ip[8:24], orig[24:40])
	copy(ip[24:40], orig[8:24])
	icmp := ip[ipv6HdrLen:total]
	icmp[0], icmp[1] = icmp6DestUnreach, 4
	copy(icmp[icmpHdrLen:], orig[:quoted])
	// ICMPv6 includes the pseudo-header (RFC 8200 8.1) in its checksum.
	sum := checksum.Pseudo(ip[8:24], ip[24:40], protoICMPv6, len(icmp))
	binary.BigEndian.PutUint16(icmp[2:], checksum.Finish(checksum.Add(sum, icmp)))
	return total
}
