package admin

import (
	"encoding/json"
	"net/netip"

	"github.com/udr-lb/udr/service"
)

// Listing is the JSON document that `udr admin -L -j` prints (udr's own
// option; ipvsadm has none): the data of the text listings, numeric, with
// every statistic and rate. The field names are stable. -t/-u narrow
// Services to one service (a missing one is "No such service", status 1),
// -c adds Conns, --nosort keeps the kernel order; the other list options
// change nothing.
type Listing struct {
	Version     string         `json:"version"` // the IPVS version, "1.2.1"
	ConnTabSize int            `json:"conn_tab_size"`
	Timeouts    TimeoutsEntry  `json:"timeouts"`
	Services    []ServiceEntry `json:"services"`
	Conns       []ConnEntry    `json:"connections,omitempty"` // with -c only
	// Standby is true when the director is in standby (udr admin
	// --standby): it answers no ARP/NDP for the VIPs and forwards nothing.
	Standby bool `json:"standby,omitempty"`
	// SyncDaemons are the connection sync daemons that run, the master
	// first, as -L --daemon prints them; absent when none runs.
	SyncDaemons []DaemonEntry `json:"sync_daemons,omitempty"`
}

// DaemonEntry is one running sync daemon.
type DaemonEntry struct {
	State     string     `json:"state"` // "master" or "backup"
	Interface string     `json:"mcast_interface"`
	SyncID    int        `json:"syncid"`
	MaxLen    int        `json:"maxlen"`
	Group     netip.Addr `json:"group"`
	Port      int        `json:"port"`
	TTL       int        `json:"ttl"`
}

// TimeoutsEntry are the connection timeouts in seconds, as --timeout shows.
type TimeoutsEntry struct {
	TCP    uint32 `json:"tcp"`
	TCPFin uint32 `json:"tcp_fin"`
	UDP    uint32 `json:"udp"`
}

// ServiceEntry is one virtual service.
type ServiceEntry struct {
	Protocol           string      `json:"protocol"` // "TCP" or "UDP"
	Address            netip.Addr  `json:"address"`
	Port               uint16      `json:"port"`
	Scheduler          string      `json:"scheduler"`
	Flags              string      `json:"flags,omitempty"` // as -b takes them, e.g. "sh-fallback,sh-port"
	Persistent         bool        `json:"persistent"`
	PersistenceTimeout uint32      `json:"persistence_timeout,omitempty"` // seconds
	Netmask            int         `json:"netmask"`                       // persistence granularity, a prefix length
	OnePacket          bool        `json:"ops"`
	Stats              StatsEntry  `json:"stats"`
	Dests              []DestEntry `json:"dests"`
}

// DestEntry is one real server of a service.
type DestEntry struct {
	Address       netip.Addr `json:"address"`
	Port          uint16     `json:"port"`
	Forward       string     `json:"forward"` // "Route": direct routing
	Weight        int32      `json:"weight"`
	UThreshold    uint32     `json:"u_threshold"`
	LThreshold    uint32     `json:"l_threshold"`
	ActiveConns   int        `json:"active_conns"`
	InactiveConns int        `json:"inactive_conns"`
	PersistConns  int        `json:"persist_conns"`
	Stats         StatsEntry `json:"stats"`
}

// StatsEntry are the counters (since the last -Z) and the estimated rates
// (per second) of a service or real server.
type StatsEntry struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
	CPS      uint64 `json:"cps"`
	InPPS    uint64 `json:"in_pps"`
	OutPPS   uint64 `json:"out_pps"`
	InBPS    uint64 `json:"in_bps"`
	OutBPS   uint64 `json:"out_bps"`
}

// ConnEntry is one connection or persistence template.
type ConnEntry struct {
	Protocol string         `json:"protocol"`
	Expires  uint32         `json:"expires"` // seconds left
	State    string         `json:"state"`
	Client   netip.AddrPort `json:"client"`
	Virtual  netip.AddrPort `json:"virtual"`
	Dest     netip.AddrPort `json:"dest"`
	Template bool           `json:"template"`
}

func (r *runner) listJSON(cmd *Command) int {
	o := cmd.Options
	st, err := r.b.State(o.Has(OptConnection))
	if err != nil {
		r.errorln("udr: " + err.Error())
		return ExitListFail
	}
	services := st.Config.Services
	switch {
	case o.Has(OptService):
		svc := st.Config.Service(cmd.Service.Key)
		if svc == nil {
			r.errorln("No such service")
			return ExitListFail
		}
		services = []*service.Service{svc}
	case !o.Has(OptNoSort):
		services = service.SortedServices(st.Config)
	}
	l := listing(st, services, !o.Has(OptNoSort))
	if db, ok := r.b.(DaemonBackend); ok {
		for _, d := range db.Daemons() {
			l.SyncDaemons = append(l.SyncDaemons, DaemonEntry{State: d.State, Interface: d.McastInterface,
				SyncID: d.SyncID, MaxLen: d.SyncMaxLen, Group: d.McastGroup, Port: d.McastPort, TTL: d.McastTTL})
		}
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		r.errorln("udr: " + err.Error())
		return ExitListFail
	}
	r.out.Write(append(b, '\n'))
	return ExitOK
}

func listing(st *State, services []*service.Service, sorted bool) *Listing {
	t := st.Config.Timeouts.WithDefaults()
	l := &Listing{
		Version:     ipvsVersion,
		ConnTabSize: st.ConnTabSize,
		Timeouts:    TimeoutsEntry{TCP: t.TCP, TCPFin: t.TCPFin, UDP: t.UDP},
		Services:    make([]ServiceEntry, 0, len(services)),
		Standby:     st.Standby,
	}
	if l.ConnTabSize == 0 {
		l.ConnTabSize = 4096
	}
	for _, s := range services {
		e := ServiceEntry{
			Protocol:   s.Proto.String(),
			Address:    s.Addr,
			Port:       s.Port,
			Scheduler:  s.Scheduler,
			Flags:      service.SchedFlagsString(s.Scheduler, s.Flags),
			Persistent: s.Persistent,
			Netmask:    s.Netmask,
			OnePacket:  s.OnePacket,
			Stats:      StatsEntry(st.Services[s.Key]),
			Dests:      make([]DestEntry, 0, len(s.Dests)),
		}
		if s.Persistent {
			e.PersistenceTimeout = s.Timeout
		}
		dests := s.Dests
		if sorted {
			dests = service.SortedDests(s)
		}
		for _, d := range dests {
			di := st.Dests[DestKey{Service: s.Key, Dest: d.AddrPort()}]
			e.Dests = append(e.Dests, DestEntry{
				Address:       d.Addr,
				Port:          d.Port,
				Forward:       forwardName,
				Weight:        d.Weight,
				UThreshold:    d.UThreshold,
				LThreshold:    d.LThreshold,
				ActiveConns:   di.ActiveConn,
				InactiveConns: di.InActConn,
				PersistConns:  di.PersistConn,
				Stats:         StatsEntry(di.Stats),
			})
		}
		l.Services = append(l.Services, e)
	}
	for _, c := range st.Conns {
		l.Conns = append(l.Conns, ConnEntry{
			Protocol: c.Proto.String(),
			Expires:  c.Expires,
			State:    c.State,
			Client:   c.Client,
			Virtual:  c.Virtual,
			Dest:     c.Dest,
			Template: c.Template,
		})
	}
	return l
}
