package forwarder

import (
	"encoding/binary"

	"github.com/udr-lb/udr/dest"
)

// The kernel reassembles IPv4 and IPv6 datagrams before IPVS sees them; udr forwards
// each fragment unchanged instead, so that the real server reassembles. Only
// the first fragment carries the ports, so it is scheduled like any packet
// and its decision is remembered here for the fragments that follow.
//
// fragTable is a fixed-size, direct-mapped cache: a new datagram may
// overwrite an older one that hashes to the same slot, whose later fragments
// are then dropped (VerdictFragment), as a full reassembly queue would drop
// them. Entries live fragTimeout seconds, the kernel's ipfrag_time default.
const (
	fragSlots   = 4096
	fragTimeout = 30
)

type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
}

type fragEntry struct {
	key     fragKey
	dest    dest.ID
	expires uint32
	used    bool
}

type fragTable struct {
	slots [fragSlots]fragEntry
	ttl   uint32 // fragTimeout in ticks of the connection table's clock
}

func (f *frame) fragKey() fragKey {
	return fragKey{src: f.key.Client, dst: f.key.VIP, id: f.fragID, proto: f.key.Proto}
}

func (k *fragKey) slot() int {
	le := binary.LittleEndian
	h := uint64(k.id)<<8 | uint64(k.proto)
	h ^= le.Uint64(k.src[:8]) ^ le.Uint64(k.src[8:])*0x9e3779b97f4a7c15
	h ^= (le.Uint64(k.dst[:8]) ^ le.Uint64(k.dst[8:])) * 0xc2b2ae3d27d4eb4f
	h *= 0x85ebca6b
	return int(h>>32) % fragSlots
}

// remember records that the datagram of the first fragment k went to dest.
func (t *fragTable) remember(k fragKey, dest dest.ID, now uint32) {
	t.slots[k.slot()] = fragEntry{key: k, dest: dest, expires: now + t.ttl, used: true}
}

// lookup returns the real server of a later fragment's datagram.
func (t *fragTable) lookup(k fragKey, now uint32) (dest.ID, bool) {
	e := &t.slots[k.slot()]
	if !e.used || e.key != k || int32(now-e.expires) >= 0 {
		return 0, false
	}
	return e.dest, true
}
