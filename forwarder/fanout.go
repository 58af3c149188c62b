package forwarder

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Several workers read one interface through sockets joined in one
// PACKET_FANOUT group: the kernel hands each frame to one of them. The
// group's mode is PACKET_FANOUT_CBPF, a classic BPF program whose result,
// modulo the number of sockets, names the socket. udr's program hashes the
// client's address only, never its ports:
//
//   - every connection of a client, and every fragment of its datagrams
//     (later fragments carry no ports; PACKET_FANOUT_HASH would hash them
//     without ports, the first with, and split them), reach one worker,
//     which owns their entries and remembers where the first fragment went;
//   - a persistence template is created and followed on the worker that
//     owns all of its client's connections, so templates stay exact;
//   - an ICMP error about a connection (its embedded datagram goes from the
//     VIP to the client) is hashed by the embedded destination: it reaches
//     the worker that owns the connection;
//   - frames that are not IP (ARP) go to the first worker.
//
// A persistent service with a netmask wider than a host (-M
// 255.255.255.0, an IPv6 prefix shorter than 128) groups several clients
// under one template. The program then hashes the client's address masked
// to the widest such netmask of the table (FanoutMasks), so that all the
// clients of one template still reach one worker, at the price of a
// coarser spread. A later table with a wider netmask re-programs the group
// (the director does it when the mask widens, never when it narrows): the
// clients moved to another worker lose their connections there, as they
// would on another director.

// FanoutMasks returns the prefix lengths that the fanout program hashes
// client addresses with: the shortest netmask of t's persistent services,
// per family; 32 and 128 when none is persistent.
func FanoutMasks(t *Table) (v4, v6 int) {
	v4, v6 = 32, 128
	for _, s := range t.services {
		if !s.cfg.Persistent {
			continue
		}
		if s.cfg.Addr.Is4() {
			v4 = min(v4, s.cfg.Netmask)
		} else {
			v6 = min(v6, s.cfg.Netmask)
		}
	}
	return max(v4, 0), max(v6, 0)
}

// skfNetOff is the kernel's SKF_NET_OFF: a classic BPF load at
// skfNetOff+k reads byte k of the network header, wherever the packet's
// data starts (at the network header in the fanout hook).
const skfNetOff = 0xfff00000 // -0x100000

// BuildFanout returns the fanout program (see above) for PacketConn
// groups, hashing IPv4 clients masked to prefix v4 and IPv6 clients to
// prefix v6.
func BuildFanout(v4, v6 int) ([]bpf.RawInstruction, error) {
	prog, err := fanoutProgram(v4, v6, false)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble fanout program: %w", err)
	}
	return raw, nil
}

// fanoutProgram builds the program. The kernel's version reads the
// EtherType from the packet's metadata (SKF_AD_PROTOCOL: a VLAN tag is
// already stripped) and the headers relative to the network header; vm,
// for the tests' bpf.VM, which knows neither, reads an untagged Ethernet
// frame from its start instead.
func fanoutProgram(v4, v6 int, vm bool) ([]bpf.Instruction, error) {
	if v4 < 0 || v4 > 32 || v6 < 0 || v6 > 128 {
		return nil, fmt.Errorf("fanout netmasks /%d and /%d: want 0..32 and 0..128", v4, v6)
	}
	base := uint32(skfNetOff)
	var proto bpf.Instruction = bpf.LoadExtension{Num: bpf.ExtProto}
	if vm {
		base = ethHdrLen
		proto = bpf.LoadAbsolute{Off: 12, Size: 2}
	}
	mask := func(bits, word int) uint32 {
		n := min(max(bits-32*word, 0), 32)
		if n == 0 {
			return 0
		}
		return ^uint32(0) << (32 - n)
	}
	// hash: A is the (masked, folded) address; spread it over the top
	// bits and return them.
	hash := []bpf.Instruction{
		bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0x9e3779b1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 16},
		bpf.RetA{},
	}
	// fold6 loads the four words of an IPv6 address at off (relative to
	// X when ind), masked, and xors them into A.
	fold6 := func(off uint32, ind bool) []bpf.Instruction {
		var out []bpf.Instruction
		for w := range 4 {
			if ind {
				out = append(out, bpf.LoadIndirect{Off: off + uint32(4*w), Size: 4})
			} else {
				out = append(out, bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4})
			}
			out = append(out, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask(v6, w)})
			if w > 0 {
				out = append(out, bpf.ALUOpX{Op: bpf.ALUOpXor})
			}
			if w < 3 {
				out = append(out, bpf.TAX{})
			}
		}
		return out
	}

	// IPv4 block: source address, or an ICMP error's embedded destination.
	v4blk := []bpf.Instruction{
		bpf.LoadAbsolute{Off: base + 6, Size: 2}, // flags, fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 12},
		bpf.LoadAbsolute{Off: base + 9, Size: 1}, // protocol
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMP, SkipFalse: 10},
		bpf.LoadAbsolute{Off: base, Size: 1}, // X = header length
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
		bpf.TAX{},
		bpf.LoadIndirect{Off: base, Size: 1}, // ICMP type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpDestUnreach, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpSourceQuench, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTimeExceeded, SkipFalse: 2},
		bpf.LoadIndirect{Off: base + icmpHdrLen + 16, Size: 4}, // embedded destination
		bpf.Jump{Skip: 1},
		bpf.LoadAbsolute{Off: base + 12, Size: 4}, // source
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask(v4, 0)},
	}
	v4blk = append(v4blk, hash...)
	// IPv6 block: likewise, for an ICMPv6 error right after the fixed
	// header.
	src6 := fold6(base+8, false)
	emb6 := fold6(base+ipv6HdrLen+icmpHdrLen+24, false)
	v6blk := []bpf.Instruction{
		bpf.LoadAbsolute{Off: base + 6, Size: 1}, // next header
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipFalse: 5},
		bpf.LoadAbsolute{Off: base + ipv6HdrLen, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp6DestUnreach, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp6PacketTooBig, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp6TimeExceeded, SkipFalse: 1},
		bpf.Jump{Skip: uint32(len(src6) + 1)},
	}
	v6blk = append(v6blk, src6...)
	v6blk = append(v6blk, bpf.Jump{Skip: uint32(len(emb6))})
	v6blk = append(v6blk, emb6...)
	v6blk = append(v6blk, hash...)

	p := []bpf.Instruction{
		proto,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv4, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv6, SkipTrue: uint8(1 + len(v4blk))},
		bpf.RetConstant{Val: 0},
	}
	p = append(p, v4blk...)
	p = append(p, v6blk...)
	return p, nil
}

// FanoutWorker returns the worker of n that the fanout program (BuildFanout
// with prefixes v4 and v6) hands the frames of client to: the kernel takes
// the program's result modulo the group's size, and udr joins the workers'
// sockets in order. client is 16 bytes, IPv4 v4-mapped, as in
// conntrack.Key; a template's masked client gives the worker of all its
// clients. A restart places each entry it takes over with it.
func FanoutWorker(client [16]byte, v4, v6, n int) int {
	if n <= 1 {
		return 0
	}
	be := func(off int) uint32 {
		return uint32(client[off])<<24 | uint32(client[off+1])<<16 | uint32(client[off+2])<<8 | uint32(client[off+3])
	}
	mask := func(bits, word int) uint32 {
		b := min(max(bits-32*word, 0), 32)
		if b == 0 {
			return 0
		}
		return ^uint32(0) << (32 - b)
	}
	var a uint32
	if [12]byte(client[:12]) == v4InV6Prefix {
		a = be(12) & mask(v4, 0)
	} else {
		for w := range 4 {
			a ^= be(4*w) & mask(v6, w)
		}
	}
	return int((a*0x9e3779b1)>>16) % n
}

var v4InV6Prefix = [12]byte{10: 0xff, 11: 0xff}
