package forwarder

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
)

// The socket filter keeps the kernel from copying to udr the frames it has
// no use for; on a busy segment most frames are neither for a VIP nor
// ARP/NDP. It accepts:
//   - ARP (RFC 826), for the VIP responder;
//   - IPv6 ICMPv6 types 133-137 (RFC 4861 router/neighbour discovery and
//     redirect), for the NDP responder;
//   - IPv4 and IPv6 packets whose destination is a VIP, whatever their
//     transport (ICMP errors about a VIP connection, such as "fragmentation
//     needed" sent to the VIP, are among them).
//
// Each rule also matches with one 802.1Q or 802.1ad tag in the frame. The
// kernel usually strips the outer tag into skb metadata before the packet
// tap (skb_vlan_untag), so a tagged frame usually looks untagged to the
// filter; a tag still present (a second, inner one) is skipped explicitly.

// Filter limits and verdicts.
const (
	// bpfMaxInstructions is the kernel's BPF_MAXINSNS for classic filters.
	bpfMaxInstructions = 4096
	// bpfAccept is the filter's "keep" verdict: the number of bytes to
	// keep, more than any frame has (tcpdump's default snap length).
	bpfAccept = 262144
	bpfReject = 0
)

// Frame offsets the filter loads from, relative to the end of the VLAN tag
// if any (the X register holds 0 or vlanLen).
const (
	bpfIPv4Dst   = ethHdrLen + 16
	bpfIPv6Next  = ethHdrLen + 6
	bpfIPv6Dst   = ethHdrLen + 24
	bpfICMPv6Typ = ethHdrLen + ipv6HdrLen
)

// BuildFilter returns a classic BPF socket filter (for ConnConfig.Filter
// and PacketConn.SetFilter) that accepts ARP, neighbour discovery, and IPv4
// or IPv6 packets addressed to one of vips. v4-mapped IPv6 VIPs count as
// IPv4; duplicates are ignored. It fails on an invalid address or when the
// program would exceed the kernel's 4096 instructions (about 2000 IPv4 or
// 450 IPv6 VIPs).
func BuildFilter(vips []netip.Addr) ([]bpf.RawInstruction, error) {
	prog, err := filterProgram(vips)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble socket filter: %w", err)
	}
	return raw, nil
}

// filterProgram builds the program. Classic BPF jumps only forward, and a
// conditional jump skips at most 255 instructions, so conditional jumps stay
// local and the long ones are unconditional (32-bit "ja"): a dispatch on
// the EtherType, a second one after a VLAN tag, then an IPv4 block and an
// IPv6 block that compare the destination with each VIP and return at once
// on a match.
func filterProgram(vips []netip.Addr) ([]bpf.Instruction, error) {
	var v4, v6 []netip.Addr
	for _, v := range vips {
		if !v.IsValid() {
			return nil, fmt.Errorf("vip %q: not an IP address", v)
		}
		if v = v.Unmap(); v.Is4() {
			v4 = append(v4, v)
		} else {
			v6 = append(v6, v.WithZone(""))
		}
	}
	v4, v6 = sortedUnique(v4), sortedUnique(v6)

	var a bpfAsm
	// dispatch accepts ARP and jumps to the IPv4 or IPv6 block; other
	// EtherTypes fall through.
	dispatch := func() {
		a.emit(
			bpf.LoadIndirect{Off: ethType, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeARP, SkipFalse: 1},
			bpf.RetConstant{Val: bpfAccept},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv4, SkipFalse: 1},
		)
		a.jumpTo(labelIPv4)
		a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv6, SkipFalse: 1})
		a.jumpTo(labelIPv6)
	}
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	dispatch()
	a.emit(
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeVLAN, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeQinQ, SkipTrue: 1},
		bpf.RetConstant{Val: bpfReject},
		bpf.LoadConstant{Dst: bpf.RegX, Val: vlanLen},
	)
	dispatch()
	a.emit(bpf.RetConstant{Val: bpfReject})

	// IPv4: the destination address.
	a.mark(labelIPv4)
	a.emit(bpf.LoadIndirect{Off: bpfIPv4Dst, Size: 4})
	for _, v := range v4 {
		b := v.As4()
		a.emit(
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(b[:]), SkipFalse: 1},
			bpf.RetConstant{Val: bpfAccept},
		)
	}
	a.emit(bpf.RetConstant{Val: bpfReject})

	// IPv6: neighbour discovery, then the destination address, one 32-bit
	// word at a time; a mismatch skips to the next VIP.
	a.mark(labelIPv6)
	a.emit(
		bpf.LoadIndirect{Off: bpfIPv6Next, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipFalse: 4},
		bpf.LoadIndirect{Off: bpfICMPv6Typ, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 133, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: 137, SkipTrue: 1},
		bpf.RetConstant{Val: bpfAccept},
	)
	for _, v := range v6 {
		b := v.As16()
		for w := range 4 {
			a.emit(
				bpf.LoadIndirect{Off: uint32(bpfIPv6Dst + 4*w), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(b[4*w:]), SkipFalse: uint8(7 - 2*w)},
			)
		}
		a.emit(bpf.RetConstant{Val: bpfAccept})
	}
	a.emit(bpf.RetConstant{Val: bpfReject})

	p := a.resolve()
	if len(p) > bpfMaxInstructions {
		return nil, fmt.Errorf("socket filter for %d IPv4 and %d IPv6 VIPs needs %d instructions, more than the kernel's %d", len(v4), len(v6), len(p), bpfMaxInstructions)
	}
	return p, nil
}

// Labels of bpfAsm.
const (
	labelIPv4 = iota
	labelIPv6
	numLabels
)

// bpfAsm collects instructions and resolves unconditional jumps to labels.
type bpfAsm struct {
	p      []bpf.Instruction
	labels [numLabels]int
	jumps  []struct{ at, label int }
}

func (a *bpfAsm) emit(ins ...bpf.Instruction) { a.p = append(a.p, ins...) }

// jumpTo emits a "ja" to label, resolved by resolve.
func (a *bpfAsm) jumpTo(label int) {
	a.jumps = append(a.jumps, struct{ at, label int }{len(a.p), label})
	a.p = append(a.p, bpf.Jump{})
}

// mark places label at the next instruction.
func (a *bpfAsm) mark(label int) { a.labels[label] = len(a.p) }

func (a *bpfAsm) resolve() []bpf.Instruction {
	for _, j := range a.jumps {
		a.p[j.at] = bpf.Jump{Skip: uint32(a.labels[j.label] - j.at - 1)}
	}
	return a.p
}

// sortedUnique sorts addrs and removes duplicates, so that equal VIP sets
// give equal programs.
func sortedUnique(addrs []netip.Addr) []netip.Addr {
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return cmp.Compare(a.Compare(b), 0) })
	return slices.Compact(addrs)
}
