package forwarder

import "github.com/udr-lb/udr/service"

// The kernel reassembles IPv4 datagrams before IPVS sees them; udr forwards
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
	src, dst [4]byte
	id       uint16
	proto    uint8
}

type fragEntry struct {
	key     fragKey
	dest    service.DestID
	expires uint32
	used    bool
}

type fragTable struct {
	slots [fragSlots]fragEntry
}

func (f *frame) fragKey() fragKey {
	k := fragKey{id: f.fragID, proto: f.key.Proto}
	copy(k.src[:], f.key.Client[12:])
	copy(k.dst[:], f.key.VIP[12:])
	return k
}

func (k fragKey) slot() int {
	h := uint32(k.id)*0x9e3779b1 ^ uint32(k.src[3])<<24 ^ uint32(k.src[2])<<16 ^
		uint32(k.src[1])<<8 ^ uint32(k.src[0]) ^ uint32(k.proto)<<5
	h ^= uint32(k.dst[3]) << 11
	h *= 0x85ebca6b
	return int(h>>20) % fragSlots
}

// remember records that the datagram of the first fragment k went to dest.
func (t *fragTable) remember(k fragKey, dest service.DestID, now uint32) {
	t.slots[k.slot()] = fragEntry{key: k, dest: dest, expires: now + fragTimeout, used: true}
}

// lookup returns the real server of a later fragment's datagram.
func (t *fragTable) lookup(k fragKey, now uint32) (service.DestID, bool) {
	e := &t.slots[k.slot()]
	if !e.used || e.key != k || now >= e.expires {
		return 0, false
	}
	return e.dest, true
}
