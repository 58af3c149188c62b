package health

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/net/bpf"

	"github.com/udr-lb/udr/internal/checksum"
)

// Wire offsets (IEEE 802.3, RFC 791, RFC 8200, RFC 9293).
const (
	ethDst    = 0
	ethSrc    = 6
	ethType   = 12
	ethLen    = 14
	typeIPv4  = 0x0800
	typeIPv6  = 0x86dd
	protoTCP  = 6
	ipv4Len   = 20 // without options
	ipv6Len   = 40
	tcpLen    = 20 // without options
	tcpSYN    = 0x02
	tcpRST    = 0x04
	tcpACK    = 0x10
	probeTTL  = 64
	probeWin  = 64240
	snapBytes = 256 // what the filter passes of a frame
)

// segment is a TCP segment without payload, in an Ethernet frame: what a
// dr probe sends (SYN, RST) and receives (SYN-ACK, RST).
type segment struct {
	dstMAC, srcMAC [6]byte
	src, dst       netip.AddrPort
	seq, ack       uint32
	flags          uint8
}

// marshal returns the frame: Ethernet, IPv4 (DF, TTL 64) or IPv6 (hop
// limit 64), TCP with both checksums complete. src and dst must be of one
// family.
func (s segment) marshal() []byte {
	v4 := s.src.Addr().Is4()
	ipLen := ipv6Len
	if v4 {
		ipLen = ipv4Len
	}
	b := make([]byte, ethLen+ipLen+tcpLen)
	copy(b[ethDst:], s.dstMAC[:])
	copy(b[ethSrc:], s.srcMAC[:])
	ip := b[ethLen : ethLen+ipLen]
	tcp := b[ethLen+ipLen:]
	var pseudo uint64 // the TCP pseudo-header's sum (RFC 793, RFC 8200 8.1)
	if v4 {
		binary.BigEndian.PutUint16(b[ethType:], typeIPv4)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], ipv4Len+tcpLen)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = probeTTL
		ip[9] = protoTCP
		src, dst := s.src.Addr().As4(), s.dst.Addr().As4()
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip))
		pseudo = checksum.Pseudo(ip[12:16], ip[16:20], protoTCP, tcpLen)
	} else {
		binary.BigEndian.PutUint16(b[ethType:], typeIPv6)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], tcpLen)
		ip[6] = protoTCP
		ip[7] = probeTTL
		src, dst := s.src.Addr().As16(), s.dst.Addr().As16()
		copy(ip[8:], src[:])
		copy(ip[24:], dst[:])
		pseudo = checksum.Pseudo(ip[8:24], ip[24:40], protoTCP, tcpLen)
	}
	binary.BigEndian.PutUint16(tcp[0:], s.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = tcpLen / 4 << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], probeWin)
	binary.BigEndian.PutUint16(tcp[16:], checksum.Finish(checksum.Add(pseudo, tcp)))
	return b
}

// parseSegment decodes an untagged Ethernet frame holding TCP over IPv4
// or IPv6 (without extension headers). It reports false for anything
// else, and never reads out of bounds.
func parseSegment(b []byte) (segment, bool) {
	var s segment
	if len(b) < ethLen {
		return s, false
	}
	copy(s.dstMAC[:], b[ethDst:])
	copy(s.srcMAC[:], b[ethSrc:])
	ip := b[ethLen:]
	var tcp []byte
	var src, dst netip.Addr
	switch binary.BigEndian.Uint16(b[ethType:]) {
	case typeIPv4:
		if len(ip) < ipv4Len || ip[0]>>4 != 4 || ip[9] != protoTCP {
			return s, false
		}
		ihl := int(ip[0]&0x0f) * 4
		if ihl < ipv4Len || len(ip) < ihl+tcpLen || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return s, false // bad header length, short, or a later fragment
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		tcp = ip[ihl:]
	case typeIPv6:
		if len(ip) < ipv6Len+tcpLen || ip[0]>>4 != 6 || ip[6] != protoTCP {
			return s, false
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		tcp = ip[ipv6Len:]
	default:
		return s, false
	}
	s.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:]))
	s.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:]))
	s.seq = binary.BigEndian.Uint32(tcp[4:])
	s.ack = binary.BigEndian.Uint32(tcp[8:])
	s.flags = tcp[13]
	return s, true
}

// replyFilter returns a classic BPF program that passes untagged TCP to
// src4 or src6 (either may be invalid: that family passes nothing), so
// that the dr prober's socket copies only what may be a reply to a probe.
func replyFilter(src4, src6 netip.Addr) ([]bpf.RawInstruction, error) {
	var prog []bpf.Instruction
	var toDrop []int // jumps whose false branch goes to the final drop
	check := func(off, size uint32, val uint32) {
		prog = append(prog, bpf.LoadAbsolute{Off: off, Size: int(size)})
		toDrop = append(toDrop, len(prog))
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: val})
	}
	// block appends "if the EtherType is typ, pass when every check holds;
	// otherwise go on to the next block".
	block := func(typ uint32, checks func()) {
		prog = append(prog, bpf.LoadAbsolute{Off: ethType, Size: 2})
		head := len(prog)
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: typ})
		checks()
		prog = append(prog, bpf.RetConstant{Val: snapBytes})
		prog[head] = bpf.JumpIf{Cond: bpf.JumpEqual, Val: typ, SkipFalse: uint8(len(prog) - head - 1)}
	}
	if src4.Is4() {
		block(typeIPv4, func() {
			check(ethLen+9, 1, protoTCP)
			a := src4.As4()
			check(ethLen+16, 4, binary.BigEndian.Uint32(a[:]))
		})
	}
	if src6.Is6() && !src6.Is4In6() {
		block(typeIPv6, func() {
			check(ethLen+6, 1, protoTCP)
			a := src6.As16()
			for i := 0; i < 16; i += 4 {
				check(ethLen+24+uint32(i), 4, binary.BigEndian.Uint32(a[i:]))
			}
		})
	}
	drop := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0})
	for _, i := range toDrop {
		j := prog[i].(bpf.JumpIf)
		j.SkipFalse = uint8(drop - i - 1)
		prog[i] = j
	}
	return bpf.Assemble(prog)
}
