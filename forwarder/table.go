package forwarder

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// Options are the settings of a Table that do not come from the rules.
type Options struct {
	// IfMAC is the director's interface MAC: the source of every forwarded
	// frame, and an address frames to forward may be sent to.
	IfMAC [6]byte
	// VIPMAC answers ARP and NDP for the VIPs. It is a virtual MAC by
	// default (arpresponder.VirtualMAC), or IfMAC.
	VIPMAC [6]byte
	// SloppyTCP schedules TCP packets without SYN that have no entry, as the
	// kernel's sloppy_tcp=1 (sh and mh services always do).
	SloppyTCP bool
	// ConnReuseMode is the kernel's conn_reuse_mode sysctl for a SYN that
	// finds an old entry: 0 never reschedules, 1 (the default, as
	// ConnReuseDefault) reschedules from TIME_WAIT and CLOSE, 2 and 3 from
	// FIN_WAIT too (a DR entry's state after the client's FIN).
	ConnReuseMode ConnReuse
	// ExpireNodestConn is the kernel's expire_nodest_conn: a packet of a
	// connection whose real server was deleted expires the entry and is
	// handled as new (a SYN is rescheduled), instead of being dropped
	// while the entry times out.
	ExpireNodestConn bool
	// ExpireQuiescentTemplate is the kernel's expire_quiescent_template: a
	// persistence template pointing to a weight-0 server is not used, so
	// persistent clients leave a quiesced server too.
	ExpireQuiescentTemplate bool
	// DropEntry and SecureTCP are the modes of the kernel's defences of
	// those names (conntrack.DefenseMode). Each pipeline hands them to its
	// connection table at its next Sweep when a new table changes them.
	DropEntry, SecureTCP conntrack.DefenseMode
	// Rand feeds the twos scheduler; nil means a fixed seed.
	Rand func() uint32
	// Now is when the table is compiled, on the schedulers' clock in
	// seconds (Pipeline.Clock): an lblc or lblcr scheduler the table
	// creates arms its collection timer then, as the kernel's
	// init_service does. Zero means the clock's start (the first frame of
	// a replay, the start of udr run).
	Now uint32
	// Edited names the real servers that an explicit edit (ipvsadm -e)
	// changed to make this table. The kernel runs the scheduler's upd_dest
	// hook on every -e, even one that changes nothing
	// (__ip_vs_update_dest): wrr's position returns to the list head
	// (ip_vs_wrr_dest_changed). A reload is no edit: a service whose
	// servers are unchanged and that Edited does not name keeps its
	// scheduler's state exactly.
	Edited []dest.Key
	// Standby is the backup director's state of an active/backup pair
	// (keepalived's VRRP decides which is which): no answer to ARP or NDP
	// for the VIPs, and no frame to a VIP forwarded or answered; each is
	// dropped as VerdictStandby. The connection table, its timers and the
	// learning of real servers' MACs go on, so that the director can take
	// over at once. Table.WithStandby switches it without compiling.
	Standby bool
}

// ConnReuse is a conn_reuse_mode value. The zero value is the kernel's
// default, 1.
type ConnReuse struct{ mode int8 }

// ConnReuseDefault is conn_reuse_mode 1.
var ConnReuseDefault = ConnReuse{}

// ConnReuseMode returns conn_reuse_mode n (0..3).
func ConnReuseMode(n int) (ConnReuse, error) {
	if n < 0 || n > 3 {
		return ConnReuse{}, fmt.Errorf("conn_reuse_mode %d: want 0..3", n)
	}
	return ConnReuse{mode: int8(n) - 1}, nil
}

// Mode returns the sysctl's value.
func (c ConnReuse) Mode() int { return int(c.mode) + 1 }

// Table is one immutable snapshot of the virtual server table, compiled for
// the packet path. Workers load it once per batch; a configuration change
// compiles a new Table and swaps it in.
type Table struct {
	opts     Options
	cfg      *service.Config
	services []compiledService
	index    svcIndex
	rips     map[[16]byte]dest.ID // a real server address → one of its DestIDs
	resp     *arpresponder.Responder
	timeouts service.Timeouts
}

// svcKey is the packet path's service lookup key.
type svcKey struct {
	addr  [16]byte
	port  uint16
	proto uint8
}

type compiledService struct {
	cfg   *service.Service
	sched sched.Scheduler
	// mu serialises the scheduling of new connections when several
	// pipelines share the Table (PipelineConfig.Shared), as the kernel's
	// per-service lock: the pick, the template, the entry and the server's
	// counts of one new connection are done before the next one's pick. A
	// service that stays from one Table to the next keeps its mutex, so
	// that pipelines still on the old Table and those on the new one
	// serialise together.
	mu        *sync.Mutex
	servers   []sched.Server
	stateless bool // sh and mh pick from the packet alone: mid-stream packets are scheduled
}

// Compile builds a Table from cfg. Real servers get their DestIDs from reg
// (dest.Registry.Assign; the caller publishes DestIDs once the Table is in
// use), and their MACs from neigh. prev is the Table being replaced, or nil: the
// schedulers of services that stay carry their state over, as the kernel's
// add_dest/del_dest/upd_dest hooks do (upd_dest also for the servers
// opts.Edited names), and as ip_vs_edit_service keeps it when -E leaves the
// scheduler as it is; a service whose scheduler changed starts it with
// init_service over its whole list (ip_vs_bind_scheduler). Real servers
// that disappeared are marked unavailable so that their connections stop
// (expire_nodest_conn=0).
func Compile(cfg *service.Config, reg *dest.Registry, neigh *Neighbors, prev *Table, opts Options) (*Table, error) {
	t := &Table{
		opts:     opts,
		cfg:      cfg,
		index:    newSvcIndex(2 * len(cfg.Services)),
		rips:     make(map[[16]byte]dest.ID),
		timeouts: cfg.Timeouts.WithDefaults(),
	}
	var vipList []netip.Addr
	live := make(map[dest.ID]bool)
	edited := editedServices(opts.Edited)
	for _, s := range cfg.Services {
		cs, err := compileService(s, reg, prev, opts, edited)
		if err != nil {
			return nil, err
		}
		for _, srv := range cs.servers {
			live[srv.ID] = true
			neigh.bind(srv.ID, srv.Addr, srv.State)
			t.rips[srv.Addr.As16()] = srv.ID
		}
		k := svcKey{addr: s.Addr.As16(), port: s.Port, proto: uint8(s.Proto)}
		t.index.add(k, int32(len(t.services)))
		t.services = append(t.services, cs)
		if !t.index.isVIP(&k.addr) {
			t.index.add(svcKey{addr: k.addr, proto: vipProto}, -1)
			vipList = append(vipList, s.Addr)
		}
	}
	t.resp = arpresponder.New(vipList, opts.VIPMAC)
	if prev != nil {
		for _, ps := range prev.services {
			for _, srv := range ps.servers {
				if !live[srv.ID] {
					srv.State.Available.Store(false)
				}
			}
		}
	}
	return t, nil
}

func compileService(s *service.Service, reg *dest.Registry, prev *Table, opts Options, edited map[svcKey]bool) (compiledService, error) {
	cs := compiledService{
		cfg:       s,
		servers:   make([]sched.Server, len(s.Dests)),
		stateless: s.Scheduler == "sh" || s.Scheduler == "mh",
	}
	for i, d := range s.Dests {
		id, err := reg.Assign(s.DestKey(d))
		if err != nil {
			return cs, fmt.Errorf("service %s: %w", s.Key, err)
		}
		st := reg.State(id)
		st.Weight.Store(d.Weight)
		st.Available.Store(true)
		if old := st.UThreshold.Swap(d.UThreshold); d.UThreshold == 0 || d.UThreshold > old {
			// ip_vs_edit_dest: raising or removing the upper threshold
			// clears the overload flag.
			st.Overloaded.Store(false)
		}
		st.LThreshold.Store(d.LThreshold)
		cs.servers[i] = sched.Server{ID: id, Addr: d.Addr, Port: d.Port, Weight: d.Weight, LastWeight: d.LastWeight, State: st}
	}
	sopts := sched.Options{Rand: opts.Rand, Now: max(opts.Now, 1), Registry: reg}
	var prevSched sched.Scheduler
	cs.mu = new(sync.Mutex)
	if prev != nil {
		addr := s.Addr.As16()
		if i, ok := prev.index.get(&addr, s.Port, uint8(s.Proto)); ok {
			ps := prev.services[i]
			cs.mu = ps.mu
			switch {
			case ps.cfg.Scheduler != s.Scheduler:
				// -E with another scheduler: ip_vs_edit_service unbinds
				// the old one and ip_vs_bind_scheduler runs the new
				// one's init_service over the whole list at once.
				var err error
				if cs.sched, err = sched.New(s.Scheduler, s.Flags, cs.servers, nil, sopts); err != nil {
					return cs, fmt.Errorf("service %s: %w", s.Key, err)
				}
				return cs, nil
			case slices.Equal(ps.cfg.Dests, s.Dests) && !edited[svcKey{addr: addr, port: s.Port, proto: uint8(s.Proto)}]:
				// Nothing changed for the scheduler, or only what -E
				// sets besides it (-b, -p, -M): ip_vs_edit_service
				// calls none of its hooks, so it keeps its state. sh
				// and mh read the -b flags at every pick.
				cs.sched = sched.WithFlags(ps.sched, s.Flags)
				return cs, nil
			}
			// -a, -d or -e: add_dest, del_dest or upd_dest.
			prevSched = ps.sched
		}
	}
	var err error
	if prevSched == nil {
		// A service that is new here went through the kernel's
		// init_service on an empty list and then one add_dest per -a, in
		// the order they were added (the reverse of the list order).
		cs.sched, err = sched.NewAdded(s.Scheduler, s.Flags, cs.servers, sopts)
	} else {
		cs.sched, err = sched.New(s.Scheduler, s.Flags, cs.servers, prevSched, sopts)
	}
	if err != nil {
		return cs, fmt.Errorf("service %s: %w", s.Key, err)
	}
	return cs, nil
}

// editedServices returns the services of the real servers keys names.
func editedServices(keys []dest.Key) map[svcKey]bool {
	m := make(map[svcKey]bool)
	for _, k := range keys {
		m[svcKey{addr: k.VIP.Addr().As16(), port: k.VIP.Port(), proto: k.Proto}] = true
	}
	return m
}

// WithStandby returns a Table that is t with Options.Standby set to on: the
// same services, schedulers and state, for the control plane to swap in
// in t's place. t itself is unchanged.
func (t *Table) WithStandby(on bool) *Table {
	c := *t
	c.opts.Standby = on
	return &c
}

// Config returns the configuration the Table was compiled from. It must not
// be modified.
func (t *Table) Config() *service.Config { return t.cfg }

// Options returns the options the Table was compiled with.
func (t *Table) Options() Options { return t.opts }

// VIPs returns the distinct virtual IPs of the Table's services.
func (t *Table) VIPs() []netip.Addr {
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	for _, s := range t.services {
		if a := s.cfg.Addr; !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// DestIDs returns the IDs of the Table's real servers, for
// dest.Registry.Publish.
func (t *Table) DestIDs() []dest.ID {
	var out []dest.ID
	for _, s := range t.services {
		for _, srv := range s.servers {
			out = append(out, srv.ID)
		}
	}
	return out
}

// RealServers returns the distinct real server addresses of the Table.
func (t *Table) RealServers() []netip.Addr {
	out := make([]netip.Addr, 0, len(t.rips))
	for a := range t.rips {
		out = append(out, netip.AddrFrom16(a).Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// FTP's well-known ports (FTPPORT and FTPDATA in include/net/ip_vs.h), and
// the first port an unprivileged process may bind (the kernel's default
// net.ipv4.ip_unprivileged_port_start, PROT_SOCK).
const (
	ftpPort               = 21
	ftpDataPort           = 20
	unprivilegedPortStart = 1024
)

// lookup finds the service for a packet as ip_vs_service_find does: the
// exact (protocol, VIP, port) first; then, for TCP to port 20 or to an
// unprivileged port (1024 and up, the default of the
// ip_unprivileged_port_start sysctl the kernel reads), the VIP's TCP port-21
// service, whose FTP data connections these may be, persistent or not;
// then a port-0 ("all ports") service of the VIP. Port-0 services are
// persistent by construction.
func (t *Table) lookup(proto uint8, vip *[16]byte, port uint16) (*compiledService, bool) {
	if i, ok := t.index.get(vip, port, proto); ok {
		return &t.services[i], true
	}
	if proto == protoTCP && (port == ftpDataPort || port >= unprivilegedPortStart) {
		if i, ok := t.index.get(vip, ftpPort, proto); ok {
			return &t.services[i], true
		}
	}
	if i, ok := t.index.get(vip, 0, proto); ok {
		return &t.services[i], true
	}
	return nil, false
}
