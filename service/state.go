package service

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// DestID identifies a real server of one service for as long as the daemon
// runs: the same (service, address, port) keeps its ID across reloads, so
// connection entries, which store only the ID, stay bound to it. ID 0 is
// never used.
type DestID uint32

// DestState is the live state of one real server that outlives configuration
// snapshots: the connection counts the schedulers read and the connection
// table writes, the overload flag, and the statistics. All fields are atomic;
// the packet path and the control plane share them without locks.
type DestState struct {
	Active   atomic.Int32 // ActiveConn: connections in an active TCP state
	Inactive atomic.Int32 // InActConn: every other connection (all of UDP)
	Persist  atomic.Int32 // PersistConn: persistence templates pointing here

	// Overloaded is IP_VS_DEST_F_OVERLOAD: set and cleared by the connection
	// table from the thresholds below; every scheduler skips the server.
	Overloaded atomic.Bool
	// NoNeighbor is udr's own: the real server's MAC is not known, so a
	// frame could not reach it. Schedulers skip it as they skip an
	// overloaded server, until the MAC is learnt.
	NoNeighbor atomic.Bool
	UThreshold atomic.Uint32
	LThreshold atomic.Uint32

	// Weight mirrors the configured weight, so that code holding only an ID
	// (persistence templates, quiescing checks) can read it.
	Weight atomic.Int32
	// Available is false once the server was deleted from its service
	// (the kernel's IP_VS_DEST_F_AVAILABLE).
	Available atomic.Bool

	// Statistics as ipvsadm --stats shows them. In DR there is no outbound
	// direction, so OutPkts and OutBytes are always zero.
	Conns   atomic.Uint64
	InPkts  atomic.Uint64
	InBytes atomic.Uint64
}

// Skip reports whether schedulers must pass the server by: it is
// overloaded (the kernel's IP_VS_DEST_F_OVERLOAD) or unreachable.
func (d *DestState) Skip() bool { return d.Overloaded.Load() || d.NoNeighbor.Load() }

// Overhead returns the kernel's connection overhead
// (ip_vs_dest_conn_overhead, classic form): active connections cost 256
// times an inactive one.
func (d *DestState) Overhead() int64 {
	return int64(d.Active.Load())<<8 + int64(d.Inactive.Load())
}

// Total returns the number of real connections bound to the server.
func (d *DestState) Total() int32 { return d.Active.Load() + d.Inactive.Load() }

// destKey names a real server within a service.
type destKey struct {
	svc  Key
	dest [18]byte // address (16) + port (2)
}

// Registry hands out DestIDs and owns the DestState behind each. Its
// capacity is fixed at creation, so that the packet path can index it
// without a lock while the control plane adds servers.
type Registry struct {
	mu     sync.Mutex
	ids    map[destKey]DestID
	keys   []destKey   // index = DestID: what each ID names
	states []DestState // index = DestID; entry 0 unused
	next   atomic.Uint32
}

// NewRegistry returns a registry for at most max real servers over the
// lifetime of the daemon.
func NewRegistry(max int) *Registry {
	r := &Registry{ids: make(map[destKey]DestID), keys: make([]destKey, max+1), states: make([]DestState, max+1)}
	r.next.Store(1)
	return r
}

// ID returns the DestID of real server d of service svc, allocating one the
// first time the pair is seen. It fails only when the registry is full.
func (r *Registry) ID(svc Key, d Dest) (DestID, error) {
	var k destKey
	k.svc = svc
	a := d.Addr.As16()
	copy(k.dest[:16], a[:])
	k.dest[16], k.dest[17] = byte(d.Port>>8), byte(d.Port)
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[k]; ok {
		return id, nil
	}
	id := r.next.Load()
	if int(id) >= len(r.states) {
		return 0, fmt.Errorf("real server registry full (%d servers)", len(r.states)-1)
	}
	r.next.Store(id + 1)
	r.ids[k] = DestID(id)
	r.keys[id] = k
	return DestID(id), nil
}

// Dest returns the service and the real server address that id names.
func (r *Registry) Dest(id DestID) (Key, netip.AddrPort) {
	r.mu.Lock()
	k := r.keys[id]
	r.mu.Unlock()
	addr := netip.AddrFrom16([16]byte(k.dest[:16]))
	if k.svc.Addr.Is4() {
		addr = addr.Unmap()
	}
	return k.svc, netip.AddrPortFrom(addr, uint16(k.dest[16])<<8|uint16(k.dest[17]))
}

// State returns the live state of id. It does not lock or allocate.
func (r *Registry) State(id DestID) *DestState { return &r.states[id] }
