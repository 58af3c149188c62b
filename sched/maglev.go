package sched

import (
	"fmt"
	"math/bits"

	"github.com/udr-lb/udr/service"
)

// Maglev table parameters (net/netfilter/ipvs/ip_vs_mh.c with the default
// CONFIG_IP_VS_MH_TAB_INDEX 12).
const (
	maglevSize = 4093 // primes[12-8]: the lookup table size M
	maglevBits = 6    // IP_VS_MH_TAB_BITS = 12/2, the bits weights are scaled to
)

// The kernel's hash keys are fixed, not random (generate_hash_secret), so
// every director computes the same table from the same servers.
var (
	maglevKey1 = hsipKey{2654435761, 2654435761}
	maglevKey2 = hsipKey{2654446892, 2654446892}
)

// Maglev is the mh scheduler (ip_vs_mh.c), Maglev hashing as in section 3.4
// of the Maglev paper (Eisenbud et al., NSDI 2016).
//
// Each server has a permutation of the M = 4093 table slots, from its
// address and port: offset = h1 % M, skip = h2 % (M-1) + 1. Rounds over the
// list (head first) let each server claim turns slots, each the next free
// slot of its permutation, until the table is full; turns comes from the
// server's last non-zero weight, so quiescing a server (weight 0) does not
// reshuffle the table. A client's slot is h1(source address [+ source
// port with mh-port]) % M; its owner is returned unless quiesced or
// overloaded, in which case the pick fails, or with mh-fallback the table
// is probed further as sh does.
type Maglev struct {
	servers  []Server
	port     bool // mh-port (SchedFlag2): hash the source port too
	fallback bool // mh-fallback (SchedFlag1)
	// table maps a slot to a server index, -1 when no server has a
	// non-zero last weight. Built once here, off the packet path.
	table [maglevSize]int16
}

// maglevHash is ip_vs_mh_hashkey: hsiphash of offset + port + address.
func maglevHash(addr uint32, port uint16, key *hsipKey, offset uint32) uint32 {
	return hsiphash32(offset+uint32(port)+addr, key)
}

func newMaglev(servers []Server, flags service.SchedFlags) (*Maglev, error) {
	if len(servers) > maglevSize {
		return nil, fmt.Errorf("scheduler mh: %d real servers, at most %d", len(servers), maglevSize)
	}
	m := &Maglev{servers: servers, port: flags&service.SchedFlag2 != 0, fallback: flags&service.SchedFlag1 != 0}
	for i := range m.table {
		m.table[i] = -1
	}

	// ip_vs_mh_gcd_weight and ip_vs_mh_shift_weight, over last weights.
	var g, maxW int32
	for i := range servers {
		if lw := servers[i].LastWeight; lw > 0 {
			g = gcd(g, lw)
			maxW = max(maxW, lw)
		}
	}
	if g < 1 {
		return m, nil // no server may own a slot: every lookup fails
	}
	rshift := max(bits.Len32(uint32(maxW/g))-maglevBits, 0)

	// ip_vs_mh_permutate.
	type setup struct{ perm, skip, turns int32 }
	ds := make([]setup, len(servers))
	for i := range servers {
		s := &servers[i]
		a := foldAddr(s.Addr)
		off := maglevHash(a, s.Port, &maglevKey1, 0) % maglevSize
		ds[i].perm = int32(off)
		ds[i].skip = int32(maglevHash(a, s.Port, &maglevKey2, 0)%(maglevSize-1) + 1)
		lw := s.LastWeight
		ds[i].turns = (lw / g) >> rshift
		if ds[i].turns == 0 && lw != 0 {
			ds[i].turns = 1
		}
	}

	// ip_vs_mh_populate.
	var taken [(maglevSize + 63) / 64]uint64
	n, dt := 0, int32(0)
	for n < maglevSize {
		for i := 0; i < len(ds); {
			d := &ds[i]
			if d.turns < 1 { // added with weight 0: no slot
				i++
				continue
			}
			c := d.perm
			for taken[c/64]&(1<<(c%64)) != 0 {
				d.perm += d.skip
				if d.perm >= maglevSize {
					d.perm -= maglevSize
				}
				c = d.perm
			}
			taken[c/64] |= 1 << (c % 64)
			m.table[c] = int16(i)
			if n++; n == maglevSize {
				return m, nil
			}
			if dt++; dt >= d.turns {
				dt = 0
				i++
			}
		}
	}
	return m, nil
}

// Pick implements Scheduler.
func (m *Maglev) Pick(fl Flow) int {
	addr := fold(&fl.Src, fl.Is6)
	var port uint16
	if m.port {
		port = fl.SrcPort
	}
	ihash := maglevHash(addr, port, &maglevKey1, 0) % maglevSize
	d := m.table[ihash]
	if d < 0 {
		return -1
	}
	if usable(&m.servers[d]) {
		return int(d)
	}
	if !m.fallback {
		return -1
	}
	// ip_vs_mh_get_fallback: probe from the original slot on, re-hashing
	// with each offset; an empty slot ends the search.
	for off := uint32(0); off < maglevSize; off++ {
		roff := (off + ihash) % maglevSize
		d := m.table[maglevHash(addr, port, &maglevKey1, roff)%maglevSize]
		if d < 0 {
			return -1
		}
		if usable(&m.servers[d]) {
			return int(d)
		}
	}
	return -1
}
