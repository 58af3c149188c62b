package admin

import (
	"net/netip"

	"github.com/udr-lb/udr/service"
)

// Backend is the running director as an ipvsadm command sees it.
type Backend interface {
	// Apply makes one change: -A -E -D -C -a -e -d --set, or -Z (zero
	// the statistics of cmd.Service, or of everything when it has no
	// address). The change is validated whole and applied atomically; on
	// error nothing changed. Errors are *KernelError (ipvsadm's
	// kernel messages, exit 255) or *UsageError.
	Apply(cmd *Command) error
	// Edit is a change of many commands (-R): it runs f with an Editor
	// over the running table and, when f returns nil, makes the Editor's
	// table the running one (and zeroes what its -Z commands named), as
	// one change, validated whole and applied atomically. When f or the
	// change fails, nothing changed and Edit returns the error. No other
	// change is made while f runs; f must not call the Backend.
	Edit(f func(*Editor) error) error
	// State returns the table as a listing shows it; the connection list
	// only when conns is set (it is copied from the packet path).
	State(conns bool) (*State, error)
}

// State is a consistent view of the virtual server table for a listing.
type State struct {
	Config      *service.Config // services in the order they were added; Dests in kernel list order
	ConnTabSize int             // the "size=" of the -L header (the kernel's 4096 buckets)

	// Dests holds the live figures of every real server of Config, by
	// service and real server address.
	Dests map[DestKey]DestInfo
	// Services holds each service's statistics (the sum over its real
	// servers, past and present).
	Services map[service.Key]Stats
	Conns    []Conn // only when asked for
	// Standby: the director is in standby (udr admin --standby), the
	// backup of an active/backup pair. The listings say so (udr's own).
	Standby bool
}

// DestKey names a real server of a service.
type DestKey struct {
	Service service.Key
	Dest    netip.AddrPort
}

// DestInfo is what -L shows of a real server besides its configuration.
type DestInfo struct {
	ActiveConn, InActConn, PersistConn int
	Stats                              Stats
}

// Stats are the counters and estimated rates of ipvsadm --stats and --rate,
// already net of the last -Z. In DR OutPkts, OutBytes and their rates are 0.
type Stats struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
	CPS, InPPS, OutPPS, InBPS, OutBPS         uint64
}

// Conn is one line of ipvsadm -L -c.
type Conn struct {
	Proto    service.Proto
	Expires  uint32 // seconds left
	State    string // ESTABLISHED, FIN_WAIT, ... NONE/ASSURED for templates
	Client   netip.AddrPort
	Virtual  netip.AddrPort
	Dest     netip.AddrPort
	Template bool
}
