package forwarder

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/dest"
)

// Neighbors maps real-server addresses to MAC addresses. The control plane
// (static --neigh flags, the ARP/NDP resolver, the kernel neighbour table)
// writes it under a mutex; the packet path reads one atomic word per frame,
// indexed by DestID (its Index), and never locks.
type Neighbors struct {
	mu     sync.Mutex
	byAddr map[netip.Addr][6]byte
	dests  map[netip.Addr]map[dest.ID]struct{} // the real servers at each address: one address may serve many services
	states map[dest.ID]*dest.State
	addrOf map[dest.ID]netip.Addr
	learnt map[netip.Addr]learnt // how and when each MAC of byAddr was learnt
	byDest []atomic.Uint64       // MAC in the low 48 bits, validBit when known
	// seen is, by DestID index, when the server's MAC was last learnt
	// or confirmed (Unix nanoseconds): the packet path stores it when an
	// ARP or NDP answer repeats the MAC it knows, without locking.
	seen []atomic.Int64
}

// NeighborSource says how a real server's MAC was learnt.
type NeighborSource uint8

const (
	NeighborStatic NeighborSource = iota // given by the caller (udr replay --neigh, tests)
	NeighborARP                          // an ARP packet from the server (the answer to udr's probes)
	NeighborNDP                          // a neighbor advertisement from the server
	NeighborKernel                       // the kernel's neighbour table (netlink)
	NeighborState                        // the state file or hand-off of the udr before
)

var neighborSources = [...]string{"static", "arp", "ndp", "kernel", "state-file"}

// String names the source as udr status and its JSON do.
func (s NeighborSource) String() string {
	if int(s) < len(neighborSources) {
		return neighborSources[s]
	}
	return "unknown"
}

// MarshalText writes the source's name.
func (s NeighborSource) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a source's name.
func (s *NeighborSource) UnmarshalText(b []byte) error {
	i := slices.Index(neighborSources[:], string(b))
	if i < 0 {
		i = len(neighborSources) // unknown
	}
	*s = NeighborSource(i)
	return nil
}

type learnt struct {
	source NeighborSource
	at     time.Time
}

// NeighborEntry is one known MAC: how and when it was learnt, and when it
// was last seen again (learnt, or repeated by an ARP or NDP answer or the
// kernel's table).
type NeighborEntry struct {
	Addr   netip.Addr
	MAC    [6]byte
	Source NeighborSource
	Learnt time.Time
	Seen   time.Time
}

const validBit = 1 << 63

// NewNeighbors returns a neighbour table for DestIDs below capacity (the
// Registry's capacity).
func NewNeighbors(capacity int) *Neighbors {
	return &Neighbors{
		byAddr: make(map[netip.Addr][6]byte),
		dests:  make(map[netip.Addr]map[dest.ID]struct{}),
		states: make(map[dest.ID]*dest.State),
		addrOf: make(map[dest.ID]netip.Addr),
		learnt: make(map[netip.Addr]learnt),
		byDest: make([]atomic.Uint64, capacity+1),
		seen:   make([]atomic.Int64, capacity+1),
	}
}

// Set records that addr is at mac, given by the caller (NeighborStatic).
// It reports whether this changed anything.
func (n *Neighbors) Set(addr netip.Addr, mac [6]byte) bool {
	return n.Learn(addr, mac, NeighborStatic, time.Now())
}

// Learn records that addr is at mac, learnt from src at now. It reports
// whether this changed anything; the same MAC again only marks it seen.
func (n *Neighbors) Learn(addr netip.Addr, mac [6]byte, src NeighborSource, now time.Time) bool {
	addr = addr.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.byAddr[addr]; ok && old == mac {
		for id := range n.dests[addr] {
			n.seen[id.Index()].Store(now.UnixNano())
		}
		return false
	}
	n.byAddr[addr] = mac
	n.learnt[addr] = learnt{source: src, at: now}
	for id := range n.dests[addr] {
		n.byDest[id.Index()].Store(packMAC(mac))
		n.seen[id.Index()].Store(now.UnixNano())
		n.states[id].NoNeighbor.Store(false)
	}
	return true
}

// confirm records that real server id's MAC was seen again at now. It
// does not lock or allocate: the packet path calls it.
func (n *Neighbors) confirm(id dest.ID, now time.Time) {
	n.seen[id.Index()].Store(now.UnixNano())
}

// Entries returns the known MACs, by address.
func (n *Neighbors) Entries() []NeighborEntry {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]NeighborEntry, 0, len(n.byAddr))
	for addr, mac := range n.byAddr {
		l := n.learnt[addr]
		e := NeighborEntry{Addr: addr, MAC: mac, Source: l.source, Learnt: l.at, Seen: l.at}
		for id := range n.dests[addr] {
			if t := time.Unix(0, n.seen[id.Index()].Load()); t.After(e.Seen) {
				e.Seen = t
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b NeighborEntry) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Delete forgets addr's MAC: its real servers get no new connections until
// it is known again.
func (n *Neighbors) Delete(addr netip.Addr) {
	addr = addr.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.byAddr, addr)
	delete(n.learnt, addr)
	for id := range n.dests[addr] {
		n.byDest[id.Index()].Store(0)
		n.states[id].NoNeighbor.Store(true)
	}
}

// Lookup returns addr's MAC, if known.
func (n *Neighbors) Lookup(addr netip.Addr) ([6]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	mac, ok := n.byAddr[addr.Unmap()]
	return mac, ok
}

// bind ties a DestID to its address, so that the address's MAC reaches the
// packet path through the ID, and keeps the server's NoNeighbor flag: the
// schedulers give no connection to a server whose MAC is not known.
func (n *Neighbors) bind(id dest.ID, addr netip.Addr, st *dest.State) {
	addr = addr.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := n.dests[addr]
	if ids == nil {
		ids = make(map[dest.ID]struct{})
		n.dests[addr] = ids
	}
	ids[id] = struct{}{}
	n.states[id] = st
	n.addrOf[id] = addr
	mac, ok := n.byAddr[addr]
	if ok {
		n.byDest[id.Index()].Store(packMAC(mac))
		n.seen[id.Index()].Store(n.learnt[addr].at.UnixNano())
	}
	st.NoNeighbor.Store(!ok)
}

// Unbind forgets real server id, whose ID the registry frees
// (dest.Registry.Reap), so that its slot's next server starts unbound.
func (n *Neighbors) Unbind(id dest.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	addr, ok := n.addrOf[id]
	if !ok {
		return
	}
	delete(n.states, id)
	delete(n.addrOf, id)
	delete(n.dests[addr], id)
	if len(n.dests[addr]) == 0 {
		delete(n.dests, addr)
	}
	n.byDest[id.Index()].Store(0)
	n.seen[id.Index()].Store(0)
}

// mac returns the MAC of real server id. It does not lock or allocate.
func (n *Neighbors) mac(id dest.ID) ([6]byte, bool) {
	v, ok := n.packed(id)
	if !ok {
		return [6]byte{}, false
	}
	return [6]byte{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}, true
}

// packed returns the MAC of real server id in the low 48 bits of a word,
// its first byte the most significant.
func (n *Neighbors) packed(id dest.ID) (uint64, bool) {
	v := n.byDest[id.Index()].Load()
	return v &^ validBit, v&validBit != 0
}

func packMAC(m [6]byte) uint64 {
	return validBit | uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}
