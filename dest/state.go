package dest

import (
	"net/netip"
	"sync/atomic"
)

// ID identifies a real server of one service for as long as anything refers
// to it (see Registry): the same (service, address, port) keeps its ID
// across reloads and while it is out of the table with connections left, so
// connection entries, which store only the ID, stay bound to it. ID 0 is
// never used.
type ID uint32

// Key names a real server within a virtual service: the service's protocol
// number, virtual address and port, and the real server's address and port.
type Key struct {
	Proto uint8
	VIP   netip.AddrPort
	Real  netip.AddrPort
}

// State is the live state of one real server that outlives configuration
// snapshots: the connection counts the schedulers read and the connection
// table writes, the overload flag, and the statistics. All fields are atomic;
// the packet path and the control plane share them without locks.
type State struct {
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
func (d *State) Skip() bool { return d.Overloaded.Load() || d.NoNeighbor.Load() }

// Overhead returns the kernel's connection overhead
// (ip_vs_dest_conn_overhead, classic form): active connections cost 256
// times an inactive one.
func (d *State) Overhead() int64 {
	return int64(d.Active.Load())<<8 + int64(d.Inactive.Load())
}

// Total returns the number of real connections bound to the server.
func (d *State) Total() int32 { return d.Active.Load() + d.Inactive.Load() }

// reset makes d as new, for the next server of its slot.
func (d *State) reset() {
	d.Active.Store(0)
	d.Inactive.Store(0)
	d.Persist.Store(0)
	d.Overloaded.Store(false)
	d.NoNeighbor.Store(false)
	d.UThreshold.Store(0)
	d.LThreshold.Store(0)
	d.Weight.Store(0)
	d.Available.Store(false)
	d.Conns.Store(0)
	d.InPkts.Store(0)
	d.InBytes.Store(0)
}
