package forwarder

import (
	"encoding/binary"
	"math/bits"
)

// svcIndex answers the packet path's two questions about a destination:
// is this address a VIP, and which service has this (protocol, VIP, port)?
// It is an open-addressing table of fixed-size keys with a multiplicative
// hash, built once per Table and read without locks: a Go map of the same
// keys costs two to three times as much per lookup (aeshash over 19 bytes).
type svcIndex struct {
	slots []indexSlot
	shift uint
}

type indexSlot struct {
	key  svcKey
	used bool
	svc  int32 // index into Table.services; -1 for a VIP-only entry
}

// vipProto is the protocol of the entries that only say "this address is
// a VIP": no service has protocol 0.
const vipProto = 0

func newSvcIndex(n int) svcIndex {
	size := 8
	for size < 2*n {
		size <<= 1
	}
	return svcIndex{slots: make([]indexSlot, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

func (x *svcIndex) home(addr *[16]byte, port uint16, proto uint8) int {
	lo := binary.LittleEndian.Uint64(addr[:8])
	hi := binary.LittleEndian.Uint64(addr[8:])
	h := (lo ^ bits.RotateLeft64(hi, 29) ^ uint64(port)<<40 ^ uint64(proto)<<56) * 0x9e3779b97f4a7c15
	return int(h >> x.shift)
}

// add records k → svc. Keys are unique; the table never fills (size ≥ 2n).
func (x *svcIndex) add(k svcKey, svc int32) {
	for i := x.home(&k.addr, k.port, k.proto); ; i = (i + 1) & (len(x.slots) - 1) {
		if s := &x.slots[i]; !s.used {
			*s = indexSlot{key: k, used: true, svc: svc}
			return
		}
	}
}

// get returns the value of (addr, port, proto). The key is passed in
// parts, read in place from the frame, rather than copied into a svcKey.
func (x *svcIndex) get(addr *[16]byte, port uint16, proto uint8) (int32, bool) {
	for i := x.home(addr, port, proto); ; i = (i + 1) & (len(x.slots) - 1) {
		s := &x.slots[i]
		if !s.used {
			return 0, false
		}
		if s.key.addr == *addr && s.key.port == port && s.key.proto == proto {
			return s.svc, true
		}
	}
}

// isVIP reports whether addr is the address of a service.
func (x *svcIndex) isVIP(addr *[16]byte) bool {
	_, ok := x.get(addr, 0, vipProto)
	return ok
}
