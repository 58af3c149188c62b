package admin

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// Editor applies ipvsadm commands one after another to a copy of a Config,
// with Apply's semantics and errors, in a time that does not grow with the
// size of the table: services are indexed by key, and a service's real
// servers by address once a command names one of them. A restore of many
// lines, or a rules file, costs one Editor, not one copy of the table per
// line. The Config it started from is not changed.
type Editor struct {
	timeouts service.Timeouts
	svcs     []*edService // in the order they were added; nil once deleted
	byKey    map[service.Key]int

	edited  map[dest.Key]bool // real servers that an -e named
	zeroAll bool              // a -Z without a service
	zero    []service.Key     // services that a -Z named
}

// edService is one service of an Editor. Its real servers are kept in the
// order they were added (the reverse of the kernel's list order, so that
// -a appends); a deleted one leaves a zero Dest in its place.
type edService struct {
	svc    service.Service // Dests nil
	added  []service.Dest  // the most recently added last; Addr invalid once deleted
	byAddr map[netip.AddrPort]int
}

// NewEditor returns an Editor over a copy of c.
func NewEditor(c *service.Config) *Editor {
	e := &Editor{
		timeouts: c.Timeouts,
		svcs:     make([]*edService, 0, len(c.Services)),
		byKey:    make(map[service.Key]int, len(c.Services)),
	}
	for _, s := range c.Services {
		es := &edService{svc: *s, added: make([]service.Dest, len(s.Dests))}
		es.svc.Dests = nil
		for i, d := range s.Dests {
			es.added[len(s.Dests)-1-i] = d
		}
		e.byKey[s.Key] = len(e.svcs)
		e.svcs = append(e.svcs, es)
	}
	return e
}

// Config returns the table as the commands applied so far left it, as a
// new Config that shares nothing with the Editor. Empty lists are nil.
func (e *Editor) Config() *service.Config {
	c := &service.Config{Timeouts: e.timeouts}
	if len(e.byKey) > 0 {
		c.Services = make([]*service.Service, 0, len(e.byKey))
	}
	for _, es := range e.svcs {
		if es == nil {
			continue
		}
		s := es.svc
		if n := es.live(); n > 0 {
			s.Dests = make([]service.Dest, 0, n)
		}
		for i := len(es.added) - 1; i >= 0; i-- {
			if d := es.added[i]; d.Addr.IsValid() {
				s.Dests = append(s.Dests, d)
			}
		}
		c.Services = append(c.Services, &s)
	}
	return c
}

// Edited returns the real servers that an -e named, for
// forwarder.Options.Edited: every -e runs the scheduler's upd_dest hook,
// even one that changes nothing (__ip_vs_update_dest).
func (e *Editor) Edited() []dest.Key {
	keys := make([]dest.Key, 0, len(e.edited))
	for k := range e.edited {
		keys = append(keys, k)
	}
	return keys
}

// Zeroed reports what the -Z commands applied so far name: all is set by a
// -Z without a service; services lists the others' services. -Z changes
// counters, not the table, so the caller zeroes them once the table is in
// place.
func (e *Editor) Zeroed() (all bool, services []service.Key) {
	return e.zeroAll, e.zero
}

func (es *edService) live() int {
	if es.byAddr != nil {
		return len(es.byAddr)
	}
	return len(es.added)
}

// index returns the position of the real server at ap in es.added, or -1.
func (es *edService) index(ap netip.AddrPort) int {
	if es.byAddr == nil {
		es.byAddr = make(map[netip.AddrPort]int, len(es.added))
		for i, d := range es.added {
			if d.Addr.IsValid() {
				es.byAddr[d.AddrPort()] = i
			}
		}
	}
	if i, ok := es.byAddr[ap]; ok {
		return i
	}
	return -1
}

func (e *Editor) service(k service.Key) *edService {
	if i, ok := e.byKey[k]; ok {
		return e.svcs[i]
	}
	return nil
}

// Apply applies cmd as the package's Apply does; on error nothing changed.
func (e *Editor) Apply(cmd *Command) error {
	switch cmd.Op {
	case OpAddService, OpEditService:
		return e.applyService(cmd)
	case OpDeleteService:
		i, ok := e.byKey[cmd.Service.Key]
		if !ok {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
		e.svcs[i] = nil
		delete(e.byKey, cmd.Service.Key)
	case OpClear:
		e.svcs, e.byKey = nil, make(map[service.Key]int)
	case OpZero:
		if !cmd.Options.Has(OptService) {
			e.zeroAll = true
			break
		}
		if e.service(cmd.Service.Key) == nil {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
		e.zero = append(e.zero, cmd.Service.Key)
	case OpAddServer, OpEditServer, OpDeleteServer:
		return e.applyDest(cmd)
	case OpSet:
		if t := cmd.Timeouts.TCP; t != 0 {
			e.timeouts.TCP = t
		}
		if t := cmd.Timeouts.TCPFin; t != 0 {
			e.timeouts.TCPFin = t
		}
		if t := cmd.Timeouts.UDP; t != 0 {
			e.timeouts.UDP = t
		}
	default:
		return fmt.Errorf("apply %s: the command does not change the virtual server table", cmd.Op.Flag())
	}
	return nil
}

func (e *Editor) applyService(cmd *Command) error {
	u := &cmd.Service
	es := e.service(u.Key)
	switch {
	case cmd.Op == OpAddService && es != nil:
		return kernelErr(cmd.Op, syscall.EEXIST)
	case cmd.Op == OpEditService && es == nil:
		return kernelErr(cmd.Op, syscall.ESRCH)
	case !sched.Valid(u.Scheduler):
		return kernelErr(cmd.Op, syscall.ENOENT)
	case cmd.PE != "":
		// udr has no persistence engine modules (the kernel has sip).
		return kernelErr(cmd.Op, syscall.ENOENT)
	case u.Addr.Is6() && (u.Netmask < 1 || u.Netmask > 128):
		return kernelErr(cmd.Op, syscall.EINVAL)
	}
	n := service.Service{
		Key:        u.Key,
		Scheduler:  u.Scheduler,
		Flags:      u.Flags,
		Persistent: u.Persistent,
		Netmask:    u.Netmask,
		OnePacket:  u.OnePacket,
	}
	if n.Persistent {
		n.Timeout = u.Timeout
	} else {
		n.Netmask = u.Addr.BitLen()
	}
	if es == nil {
		e.byKey[u.Key] = len(e.svcs)
		e.svcs = append(e.svcs, &edService{svc: n})
		return nil
	}
	es.svc = n
	return nil
}

func (e *Editor) applyDest(cmd *Command) error {
	es := e.service(cmd.Service.Key)
	if es == nil {
		return kernelErr(cmd.Op, syscall.ESRCH)
	}
	u := cmd.Dest
	if cmd.Op != OpDeleteServer && u.LThreshold > u.UThreshold {
		// ip_vs_add_dest, ip_vs_edit_dest: "lower threshold is higher
		// than upper threshold"; an unset -x is 0, so -y alone fails too.
		return kernelErr(cmd.Op, syscall.ERANGE)
	}
	ap := u.AddrPort()
	i := es.index(ap)
	switch cmd.Op {
	case OpAddServer:
		if i >= 0 {
			return kernelErr(cmd.Op, syscall.EEXIST)
		}
		if !Unicast(u.Addr) {
			return kernelErr(cmd.Op, syscall.EINVAL)
		}
		u.LastWeight = u.Weight
		es.byAddr[ap] = len(es.added)
		es.added = append(es.added, u)
	case OpEditServer:
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ENOENT)
		}
		d := &es.added[i]
		if u.Weight != 0 {
			d.LastWeight = u.Weight
		}
		d.Weight, d.UThreshold, d.LThreshold = u.Weight, u.UThreshold, u.LThreshold
		if e.edited == nil {
			e.edited = make(map[dest.Key]bool)
		}
		e.edited[cmd.Service.Key.DestKey(u)] = true
	case OpDeleteServer:
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ENOENT)
		}
		es.added[i] = service.Dest{}
		delete(es.byAddr, ap)
		if len(es.added) > 64 && 2*len(es.byAddr) < len(es.added) {
			es.compact()
		}
	}
	return nil
}

// compact drops the places of deleted real servers, so that a long run of
// -a and -d keeps the list as short as the service.
func (es *edService) compact() {
	n := 0
	for _, d := range es.added {
		if d.Addr.IsValid() {
			es.byAddr[d.AddrPort()] = n
			es.added[n] = d
			n++
		}
	}
	clear(es.added[n:])
	es.added = es.added[:n]
}

// Changes counts what a change of the table did, for a log line.
type Changes struct {
	ServicesAdded, ServicesRemoved, ServicesEdited int
	ServersAdded, ServersRemoved, ServersEdited    int
	TimeoutsChanged                                bool
}

// Diff counts the services and real servers that are in next and not in
// prev (added), in prev and not in next (removed), and in both with other
// settings (edited). The real servers of an added or removed service count
// as added or removed; their order does not count.
func Diff(prev, next *service.Config) Changes {
	var ch Changes
	ch.TimeoutsChanged = prev.Timeouts != next.Timeouts
	old := make(map[service.Key]*service.Service, len(prev.Services))
	for _, s := range prev.Services {
		old[s.Key] = s
	}
	for _, s := range next.Services {
		p, ok := old[s.Key]
		if !ok {
			ch.ServicesAdded++
			ch.ServersAdded += len(s.Dests)
			continue
		}
		delete(old, s.Key)
		if !sameSettings(p, s) {
			ch.ServicesEdited++
		}
		pd := make(map[netip.AddrPort]service.Dest, len(p.Dests))
		for _, d := range p.Dests {
			pd[d.AddrPort()] = d
		}
		for _, d := range s.Dests {
			od, ok := pd[d.AddrPort()]
			switch {
			case !ok:
				ch.ServersAdded++
				continue
			case od != d:
				ch.ServersEdited++
			}
			delete(pd, d.AddrPort())
		}
		ch.ServersRemoved += len(pd)
	}
	for _, s := range old {
		ch.ServicesRemoved++
		ch.ServersRemoved += len(s.Dests)
	}
	return ch
}

// sameSettings reports whether a and b have the same settings besides
// their real servers.
func sameSettings(a, b *service.Service) bool {
	return a.Key == b.Key && a.Scheduler == b.Scheduler && a.Flags == b.Flags &&
		a.Persistent == b.Persistent && a.Timeout == b.Timeout && a.Netmask == b.Netmask &&
		a.OnePacket == b.OnePacket
}
