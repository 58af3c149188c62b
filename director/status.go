//go:build linux

package director

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/service"
	"github.com/udr-lb/udr/status"
)

// statusState is what udr status shows that nothing else keeps: when the
// director started, and its announcements (written by the control loop,
// read by the control API).
type statusState struct {
	started      time.Time
	lastAnnounce atomic.Int64 // Unix nanoseconds of the last round; 0 before the first
	announced    atomic.Uint64
}

// announced records a round of gratuitous ARPs / unsolicited NAs sent at
// now.
func (s *statusState) announce(now time.Time) {
	s.lastAnnounce.Store(now.UnixNano())
	s.announced.Add(1)
}

func svcName(k service.Key) string {
	return k.Proto.String() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Status returns what udr status prints: the interface, the VIPs and
// their announcements, the real servers' MACs and health, the connection
// table's fill, the sync daemons and the drops by reason. It reads what
// the workers published (about once a second) and the control plane's
// state; the packet path is not touched.
func (d *Director) Status() *status.Status {
	now := time.Now()
	t := d.table.Load()
	opts := t.Options()
	cfg := t.Config()
	set := d.Settings()
	s := &status.Status{
		Time:    now,
		Started: d.status.started,
		Iface:   status.Iface{Name: d.ifi.Name, Index: d.ifi.Index, MAC: net.HardwareAddr(d.ifi.MAC[:]).String(), MTU: d.ifi.MTU},
		VIPMAC:  net.HardwareAddr(opts.VIPMAC[:]).String(),
		Standby: opts.Standby,
		Workers: len(d.ws),
		IO:      d.IO().String(),
	}
	sorted := service.SortedServices(cfg)
	for _, vip := range t.VIPs() {
		v := status.VIP{Addr: vip}
		for _, svc := range sorted {
			if svc.Addr == vip {
				v.Services = append(v.Services, svcName(svc.Key))
			}
		}
		s.VIPs = append(s.VIPs, v)
	}
	slices.SortFunc(s.VIPs, func(a, b status.VIP) int { return a.Addr.Compare(b.Addr) })

	interval := set.AnnounceInterval
	if interval == 0 {
		interval = arpresponder.DefaultAnnounceInterval
	}
	s.Announce = status.Announce{Mode: "garp", IntervalSeconds: interval.Seconds(), Sent: d.status.announced.Load()}
	if ns := d.status.lastAnnounce.Load(); ns != 0 {
		s.Announce.Last = time.Unix(0, ns)
	}
	switch {
	case opts.Standby:
		s.Announce.Mode = "standby"
	case d.bgpOn():
		s.Announce.Mode = "bgp"
	}
	s.BGP = d.BGPStatus()

	known := make(map[netip.Addr]forwarder.NeighborEntry)
	for _, e := range d.neigh.Entries() {
		known[e.Addr] = e
	}
	for _, rip := range t.RealServers() {
		if len(s.Neighbors) == status.MaxRows {
			s.LeftOut++
			continue
		}
		n := status.Neighbor{Addr: rip}
		if e, ok := known[rip]; ok {
			n.MAC = net.HardwareAddr(e.MAC[:]).String()
			n.Source, n.Learnt, n.Seen = e.Source.String(), e.Learnt, e.Seen
		}
		s.Neighbors = append(s.Neighbors, n)
	}

	checks := d.checker.Status()
	slices.SortFunc(checks, func(a, b health.Status) int {
		ka, kb := a.Target.Service, b.Target.Service
		if c := ka.Addr.Compare(kb.Addr); c != 0 {
			return c
		}
		if c := int(ka.Port) - int(kb.Port); c != 0 {
			return c
		}
		if c := int(ka.Proto) - int(kb.Proto); c != 0 {
			return c
		}
		return a.Target.Server.Compare(b.Target.Server)
	})
	d.mu.Lock()
	for _, c := range checks {
		if len(s.Health) == status.MaxRows {
			s.LeftOut++
			continue
		}
		k := admin.DestKey{Service: c.Target.Service, Dest: c.Target.Server}
		s.Health = append(s.Health, status.Health{
			Service: svcName(c.Target.Service), Server: c.Target.Server,
			Check: string(c.Target.Check.Kind), Up: !d.health.down[k], Action: d.health.checks[k].OnFailure,
			Last: c.Last, Reason: c.LastError, Checks: c.Checks, Transitions: c.Transitions,
		})
	}
	d.mu.Unlock()

	ws := d.ws.Stats()
	s.Table = status.Table{Entries: ws.Conns, Capacity: ws.Capacity, Expired: ws.Expired, Evicted: ws.Evicted, Full: ws.Full, Dropped: ws.Dropped}
	if len(d.ws) > 1 {
		for _, w := range d.WorkerStats() {
			s.Table.Workers = append(s.Table.Workers, status.WorkerTable{Entries: w.Conns, Capacity: w.Capacity})
		}
	}

	sy := d.sync.snapshot()
	s.Sync = status.Sync{SentConns: sy.SentConns, ReceivedConns: sy.ReceivedConns, Dropped: map[string]uint64{}}
	for r, n := range sy.Dropped {
		if n > 0 {
			s.Sync.Dropped[r] = n
		}
	}
	for _, dm := range d.Daemons() {
		s.Sync.Daemons = append(s.Sync.Daemons, status.SyncDaemon{State: dm.State, Iface: dm.McastInterface, SyncID: dm.SyncID})
	}

	for _, v := range forwarder.Verdicts() {
		n := ws.Frames.Verdicts[v]
		switch v {
		case forwarder.VerdictForward:
			s.Forwarded = n
		case forwarder.VerdictReply:
			s.Replied = n
		default:
			if n > 0 {
				s.Drops = append(s.Drops, status.Drop{Reason: v.String(), Frames: n})
			}
		}
	}
	s.KernelDrops = d.ConnStats().RxKernelDrops
	return s
}

// serveStatus is GET /v1/status: Status as JSON.
func (d *Director) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, d.Status())
}
