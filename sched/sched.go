package sched

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// Server is a scheduler's view of one real server of a service.
type Server struct {
	ID         dest.ID
	Addr       netip.Addr
	Port       uint16
	Weight     int32 // current weight; 0 = quiesced
	LastWeight int32 // latest non-zero weight (mh builds its table from it)

	// State holds the live connection counts and the overload flag, shared
	// with the connection table. Never nil.
	State *dest.State
}

// Flow is what a scheduler may look at in a new connection's first packet.
// Addresses are 16 bytes, IPv4 as v4-mapped IPv6.
type Flow struct {
	Src, Dst         [16]byte // client address, virtual IP
	SrcPort, DstPort uint16
	Is6              bool
	Now              uint32 // seconds on the caller's clock (lblc/lblcr cache ageing)
}

// Scheduler picks a real server for a new connection.
//
// Pick returns the index of the chosen server in the list the scheduler was
// built with, or -1 when no server is available. Pick does not allocate.
//
// Pick is safe for concurrent use, so that forwarder workers can share one
// scheduler per service: rr and wrr advance their position with
// compare-and-swap, lblc and lblcr lock their cache (the kernel's
// svc->sched_lock; the control plane never takes it), and twos needs a
// Rand that is safe for concurrent use (the default is).
type Scheduler interface {
	Pick(fl Flow) int
}

// Options carries what some schedulers need beyond the server list.
// The zero value means the kernel defaults.
type Options struct {
	// Rand returns uniformly distributed 32-bit values; twos draws from it.
	// Nil means a generator with a fixed seed, so runs are repeatable.
	// When Pick is called from several goroutines, Rand must be safe for
	// concurrent use.
	Rand func() uint32

	// CacheExpiration is how long, in seconds, an lblc/lblcr cache entry
	// may stay unused before a full check drops it, and how long an lblcr
	// server set may stay unchanged before its most loaded member is
	// dropped: the lblc_expiration and lblcr_expiration sysctls. Zero means
	// the kernel default, 24 hours.
	CacheExpiration uint32

	// Now is when the scheduler is bound to its service (init_service),
	// on Flow.Now's clock: lblc and lblcr arm their collection timer then,
	// so that it runs every 60 s from then on, whether or not a connection
	// came. It matters only when New makes a new scheduler (prev nil or of
	// another kind); one built from prev keeps prev's timer.
	Now uint32

	// Registry, if not nil, is the registry the servers' IDs come from.
	// lblcr weighs the members of its server sets that were deleted from
	// the service through the State they had, as the kernel keeps such a
	// dest while a set refers to it; Registry tells it when udr freed
	// one (dest.Registry.Holds). Nil means no ID is ever freed.
	Registry *dest.Registry
}

// Names lists the schedulers udr knows, in the order ipvsadm's help text
// gives them ("one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"),
// followed by twos, which the kernel added later.
var Names = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// Valid reports whether name is one of Names.
func Valid(name string) bool { return slices.Contains(Names, name) }

// ErrUnknown is wrapped by the error New returns for a name that is not a
// scheduler.
var ErrUnknown = errors.New("unknown scheduler")

type unknownError struct{ name string }

func (e unknownError) Error() string {
	return "scheduler " + strconv.Quote(e.name) + ": unknown, want one of " + strings.Join(Names, ", ")
}

func (e unknownError) Unwrap() error { return ErrUnknown }

// New builds the scheduler called name over servers, which are in the
// kernel's list order (the most recently added first). flags are the
// service's scheduler flags (ipvsadm -b).
//
// prev tells New which kernel hook it reproduces:
//
//   - prev == nil: init_service, as when a service is created with its
//     servers already known or bound to the scheduler by -E -s. For wrr this
//     starts with the current weight at its maximum.
//   - prev != nil and built by the same scheduler: the add_dest, del_dest or
//     upd_dest hook after one -a, -d or -e on the service. New carries over
//     what the kernel keeps: the rr position (still on the same server, by
//     Server.ID, or on the entry before a deleted one), the wrr current
//     weight (the position returns to the list head), the lblc/lblcr cache.
//     A service created empty and then filled with -a is reproduced by
//     building a first scheduler over no servers and passing it as prev to
//     the next New, once per -a.
//   - prev of another scheduler: init_service again, as when -E changes the
//     scheduler. (When -E names the scheduler the service already has, the
//     kernel keeps its state: keep the old Scheduler.)
//
// New may read prev while other goroutines still call prev.Pick; picks made
// on prev after that are not carried over (lblc and lblcr share their
// cache, so theirs are), so the new scheduler should replace prev promptly.
// New accepts the kernel's "none" scheduler too: it never picks a server.
func New(name string, flags service.SchedFlags, servers []Server, prev Scheduler, opts Options) (Scheduler, error) {
	list := append([]Server(nil), servers...)
	switch name {
	case "rr":
		p, _ := prev.(*RoundRobin)
		return newRoundRobin(list, p), nil
	case "wrr":
		p, _ := prev.(*WeightedRoundRobin)
		return newWeightedRoundRobin(list, p), nil
	case "lc":
		return &LeastConn{servers: list}, nil
	case "wlc":
		return &WeightedLeastConn{servers: list}, nil
	case "sed":
		return &ShortestExpectedDelay{servers: list}, nil
	case "nq":
		return &NeverQueue{servers: list}, nil
	case "lblc":
		p, _ := prev.(*LocalityLeastConn)
		return newLocalityLeastConn(list, p, opts), nil
	case "lblcr":
		p, _ := prev.(*LocalityLeastConnReplicated)
		return newLocalityLeastConnReplicated(list, p, opts), nil
	case "dh":
		return newDestHash(list), nil
	case "sh":
		return newSourceHash(list, flags), nil
	case "mh":
		return newMaglev(list, flags)
	case "fo":
		return &WeightedFailover{servers: list}, nil
	case "ovf":
		return &WeightedOverflow{servers: list}, nil
	case "twos":
		p, _ := prev.(*TwoChoices)
		return newTwoChoices(list, p, opts), nil
	case "none":
		return none{}, nil
	}
	return nil, unknownError{name}
}

// WithFlags returns s with the service's scheduler flags (ipvsadm -b) set
// to flags and its state kept, as after an ipvsadm -E that changes -b and
// leaves the scheduler: ip_vs_edit_service only stores the new svc->flags,
// which sh and mh read at every pick; the other schedulers ignore them, and
// s itself is returned.
func WithFlags(s Scheduler, flags service.SchedFlags) Scheduler {
	port, fallback := flags&service.SchedFlag2 != 0, flags&service.SchedFlag1 != 0
	switch s := s.(type) {
	case *SourceHash:
		if s.port != port || s.fallback != fallback {
			n := *s
			n.port, n.fallback = port, fallback
			return &n
		}
	case *Maglev:
		if s.port != port || s.fallback != fallback {
			n := *s
			n.port, n.fallback = port, fallback
			return &n
		}
	}
	return s
}

// none is the kernel's "none" scheduler: a service bound to it has no
// scheduler, and every new connection fails.
type none struct{}

func (none) Pick(Flow) int { return -1 }

// usable reports whether a scheduler may send a new connection to s: it is
// not quiesced and not overloaded (nor, in udr, unreachable). Most kernel
// schedulers test exactly this.
func usable(s *Server) bool {
	return s.Weight > 0 && !s.State.Skip()
}

// overhead is ip_vs_dest_conn_overhead in its classic form
// (include/net/ip_vs.h before the totalconns backport).
func overhead(s *Server) int64 { return s.State.Overhead() }

// hash32 is the kernel's hash_32 (include/linux/hash.h): multiply by
// GOLDEN_RATIO_32 and keep the high bits.
func hash32(v uint32, bits uint) uint32 { return v * 0x61C88647 >> (32 - bits) }

// fold returns an address as the kernel's hash functions see it, in host
// order: the IPv4 address, or the XOR of the four 32-bit words of an IPv6
// address.
func fold(a *[16]byte, is6 bool) uint32 {
	w3 := uint32(a[12])<<24 | uint32(a[13])<<16 | uint32(a[14])<<8 | uint32(a[15])
	if !is6 {
		return w3
	}
	w0 := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	w1 := uint32(a[4])<<24 | uint32(a[5])<<16 | uint32(a[6])<<8 | uint32(a[7])
	w2 := uint32(a[8])<<24 | uint32(a[9])<<16 | uint32(a[10])<<8 | uint32(a[11])
	return w0 ^ w1 ^ w2 ^ w3
}

// foldAddr is fold for a netip.Addr (a real server's address).
func foldAddr(a netip.Addr) uint32 {
	a16 := a.As16()
	return fold(&a16, !a.Unmap().Is4())
}

// NewAdded builds the scheduler of a service that was created empty and
// then given servers by one -a each, in the reverse of the list order: the
// kernel's init_service over no servers, then one add_dest per -a. It is
// what passing New's result back to New once per -a gives (see New), in a
// time that grows with len(servers), not its square: for every scheduler
// but wrr the result is New's over the whole list; wrr's current weight is
// carried from one ip_vs_wrr_dest_changed to the next.
func NewAdded(name string, flags service.SchedFlags, servers []Server, opts Options) (Scheduler, error) {
	if name != "wrr" {
		return New(name, flags, servers, nil, opts)
	}
	// The current weight after init_service over no servers and the adds
	// of servers[n-1], ..., servers[1]: newWeightedRoundRobin's rule with
	// the gcd and the maximum of the weights kept as the list grows.
	var g, maxW, cw int32
	for k := len(servers) - 1; k >= 1; k-- {
		if wt := servers[k].Weight; wt > 0 {
			g = gcd(g, wt)
			maxW = max(maxW, wt)
		}
		di := max(g, 1)
		mw := maxW - (di - 1)
		switch {
		case cw > mw || cw == 0:
			cw = mw
		case di > 1:
			cw = (cw/di)*di + 1
		}
	}
	prev := &WeightedRoundRobin{}
	prev.state.Store(packWRR(-1, cw))
	return New(name, flags, servers, prev, opts)
}
