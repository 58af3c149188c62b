//go:build linux

package director

import (
	"context"
	"syscall"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/metrics"
	"github.com/udr-lb/udr/service"
	"github.com/udr-lb/udr/stats"
)

// estimate runs the kernel's rate estimator every stats.Period until ctx is
// done.
func (d *Director) estimate(ctx context.Context) {
	tick := time.NewTicker(stats.Period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			d.stats.Tick(now, d.reg, d.table.Load().Config().Services)
			d.reap(now)
		}
	}
}

// reap frees the IDs of real servers that no table, connection or
// template refers to any more (dest.Registry.Reap), and forgets what the
// director keeps by them. The control plane calls it after each table swap
// and every stats.Period; the worker is never held up by it.
func (d *Director) reap(now time.Time) {
	d.reg.Reap(d.ws.Seen(), now, func(id dest.ID, st *dest.State) {
		d.neigh.Unbind(id)
		d.stats.Forget(id, st)
	})
}

// zero is ipvsadm -Z: the statistics of one service, or of all of them,
// start again from zero. The caller holds d.mu.
func (d *Director) zero(cmd *admin.Command) error {
	if !cmd.Service.Addr.IsValid() {
		d.stats.ZeroAll()
		return nil
	}
	if d.running.Service(cmd.Service.Key) == nil {
		return &admin.KernelError{Op: cmd.Op, Errno: syscall.ESRCH, Msg: "No such service"}
	}
	// Bring the counters up to date first, so that what is zeroed is what
	// a listing would show now.
	d.stats.Tick(time.Now(), d.reg, d.table.Load().Config().Services)
	d.stats.Zero(cmd.Service.Key)
	return nil
}

func (d *Director) destStats(id dest.ID) admin.Stats {
	s, _ := d.stats.Dest(id)
	return adminStats(s)
}

func (d *Director) serviceStats(k service.Key) admin.Stats {
	s, _ := d.stats.Service(k)
	return adminStats(s)
}

func adminStats(s stats.Snapshot) admin.Stats {
	return admin.Stats{
		Conns: s.Counters.Conns, InPkts: s.Counters.InPkts, OutPkts: s.Counters.OutPkts,
		InBytes: s.Counters.InBytes, OutBytes: s.Counters.OutBytes,
		CPS: s.Rates.CPS, InPPS: s.Rates.InPPS, OutPPS: s.Rates.OutPPS,
		InBPS: s.Rates.InBPS, OutBPS: s.Rates.OutBPS,
	}
}

// MetricsSnapshot is the metrics collector's view of the director, taken at
// scrape time.
func (d *Director) MetricsSnapshot() metrics.Snapshot {
	t := d.table.Load()
	cfg := t.Config()
	snap := metrics.Snapshot{Standby: t.Options().Standby, Total: d.stats.Total()}
	for _, s := range cfg.Services {
		ms := metrics.Service{Key: s.Key}
		if lost, kept := d.QuorumLost(s.Key); kept {
			ms.QuorumUp = new(!lost)
		}
		ms.Stats, _ = d.stats.Service(s.Key)
		for _, dst := range s.Dests {
			id, ok := d.reg.Lookup(s.DestKey(dst))
			if !ok {
				continue // gone with a newer table
			}
			st := d.reg.State(id)
			srv := metrics.Server{
				Addr:     dst.AddrPort(),
				Weight:   dst.Weight,
				Active:   st.Active.Load(),
				Inactive: st.Inactive.Load(),
				Persist:  st.Persist.Load(),
				Health:   d.healthOf(s.Key, dst.AddrPort()),
			}
			srv.Stats, _ = d.stats.Dest(id)
			ms.Servers = append(ms.Servers, srv)
		}
		snap.Services = append(snap.Services, ms)
	}
	// The workers publish their counters about once a second: the scrape
	// never touches the packet path.
	ws := d.ws.Stats()
	snap.Frames = ws.Frames
	snap.Conntrack = metrics.Conntrack{Entries: ws.Conns, Capacity: ws.Capacity, Expired: ws.Expired, Evicted: ws.Evicted, Full: ws.Full,
		Dropped: ws.Dropped, Defending: ws.Defending}
	snap.Socket = d.ConnStats()
	snap.Sync = d.sync.snapshot()
	return snap
}
