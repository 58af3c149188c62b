//go:build linux

package director

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
)

const (
	// idleWake bounds how long the worker blocks in a read, so that the
	// sweep and the queued announcements and probes progress on an idle
	// link.
	idleWake = 200 * time.Millisecond
	// checkInterval is how often the control loop looks at what is due:
	// announcements, probes, real servers whose MAC became known.
	checkInterval = 100 * time.Millisecond
	// dropsInterval is how often the socket's kernel drop count and the
	// worker's write errors are read and, when they grew, logged.
	dropsInterval = 10 * time.Second
	// publishInterval is how often the worker copies its counters for the
	// metrics.
	publishInterval = time.Second
)

// newWorkers returns the packet workers, one over each socket and
// pipeline; they hand their events to one channel.
func (d *Director) newWorkers() forwarder.Workers {
	events := make(chan forwarder.Event, forwarder.DefaultEventQueue)
	ws := make(forwarder.Workers, len(d.conns))
	for i, c := range d.conns {
		ws[i] = forwarder.NewWorker(forwarder.WorkerConfig{
			Conn:            c,
			Pipeline:        d.ps[i],
			FrameSize:       d.ifi.MTU + 14 + 4 + 4, // Ethernet header, one VLAN tag, slack
			IdleWake:        idleWake,
			PublishInterval: publishInterval,
			Events:          events,
		})
	}
	return ws
}

// loop runs the packet workers and, beside them, the control loop, until ctx
// is done.
func (d *Director) loop(ctx context.Context) error {
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.control(cctx)
	}()
	wctx, wstop := context.WithCancel(ctx)
	handing := context.AfterFunc(d.hand.ctx, wstop) // a hand-off stops the workers
	err := d.ws.Run(wctx)
	handing()
	wstop()
	close(d.hand.workersDone)
	d.hand.stopped() // a hand-off in progress sends the table first
	stop()
	<-done
	return err
}

// control does the director's periodic work off the packet path: it acts
// on the worker's events, builds announcements and probes and queues them
// for the worker, and logs.
func (d *Director) control(ctx context.Context) {
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		case <-d.changed:
			now = time.Now()
			d.announcer.Reset(now)
			d.lastProbe = time.Time{}
			if to := d.table.Load().Config().Timeouts; to != d.timeouts {
				// ipvsadm --set: the new timeouts apply from each
				// connection's next packet, as in the kernel.
				d.timeouts = to
				d.ws.Do(ctx, func(p *forwarder.Pipeline, _ time.Time) { p.Conns().SetTimeouts(to) })
			}
		case e := <-d.ws[0].Events():
			now = e.Time
			switch e.Kind {
			case forwarder.EventARPConflict:
				d.conflict(e.MAC, now)
			case forwarder.EventNoNeighbor:
				d.unknownNeighbor(e.Dest, now)
			}
		}
		d.periodic(now)
	}
}

// periodic queues the gratuitous ARPs / unsolicited NAs that are due, and
// the neighbour probes for real servers, and logs what changed.
func (d *Director) periodic(now time.Time) {
	t := d.table.Load()
	// With BGP the routers reach the VIPs through the next hop: the
	// directors do not claim them on the segment (README, Several
	// directors).
	if !t.Options().Standby && d.announcer.Due(now) && !d.bgpOn() {
		vmac := t.Options().VIPMAC
		for _, vip := range t.VIPs() {
			if f, err := announce(vmac, vip); err == nil {
				d.ws.Send(f)
			}
		}
		d.status.announce(now)
	}
	if now.Sub(d.lastProbe) >= probeInterval {
		d.lastProbe = now
		for _, rip := range t.RealServers() {
			if f, err := arpresponder.Probe(arpresponder.VLAN{}, d.ifi.MAC, rip); err == nil {
				d.ws.Send(f)
			}
		}
	}
	if now.Sub(d.lastCheck) >= checkInterval {
		d.lastCheck = now
		d.checkReachable(t.RealServers())
	}
	if now.Sub(d.lastDrops) >= dropsInterval {
		d.lastDrops = now
		if drops := d.ConnStats().RxKernelDrops; drops > d.drops {
			d.log.Warn("the kernel dropped frames: udr's receive buffer was full", "dropped", drops-d.drops, "total", drops)
			d.drops = drops
		}
		st := d.ws.Stats()
		if st.TxErrors > d.txErrors {
			d.log.Warn("frames could not be sent", "failed_writes", st.TxErrors-d.txErrors, "unsent_frames", st.TxUnsent-d.txUnsent)
			d.txErrors, d.txUnsent = st.TxErrors, st.TxUnsent
		}
		if n := d.vlog.suppressed + d.vlog.unremembered + st.EventsDropped; n > d.quiet {
			d.log.Warn("conflicting hosts and unknown real servers are logged in part only",
				"lines_suppressed", d.vlog.suppressed, "conflict_macs_not_remembered", d.vlog.unremembered, "events_dropped", st.EventsDropped)
			d.quiet = n
		}
	}
}

// checkReachable logs each real server whose MAC became known or was lost.
func (d *Director) checkReachable(rips []netip.Addr) {
	for _, rip := range rips {
		mac, ok := d.neigh.Lookup(rip)
		if ok == d.reachable[rip] {
			continue
		}
		d.reachable[rip] = ok
		if ok {
			d.log.Info("real server reachable", "rs", rip, "mac", net.HardwareAddr(mac[:]).String())
			d.vlog.reachable()
		} else {
			d.log.Warn("real server MAC lost", "rs", rip)
		}
	}
}

func announce(vmac [6]byte, vip netip.Addr) ([]byte, error) {
	if vip.Is4() {
		return arpresponder.GratuitousARP(arpresponder.VLAN{}, vmac[:], vip)
	}
	return arpresponder.UnsolicitedNA(arpresponder.VLAN{}, vmac[:], vip)
}

// conflict logs, once per MAC (see verdictLog), another host that claims
// a VIP, and defends the VIPs with an announcement at most once per RFC
// 5227 interval.
func (d *Director) conflict(src [6]byte, now time.Time) {
	if d.vlog.conflict(src, now) {
		d.log.Warn("another host answers for a VIP: if it is a real server, it lacks arp_ignore/arp_announce or has the VIP on a non-loopback interface; run `udr realserver setup --vip VIP` there (sysctl net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2); if it is a second director, stop one of them",
			"mac", net.HardwareAddr(src[:]).String())
	}
	if d.announcer.Defend(now) {
		d.announcer.Reset(now)
	}
}

// unknownNeighbor logs, once per real server (see verdictLog), that its
// MAC is not known yet, so it got no connection.
func (d *Director) unknownNeighbor(id dest.ID, now time.Time) {
	if !d.vlog.noNeighbor(id, now) {
		return
	}
	rs := d.reg.Key(id).Real
	d.log.Warn("real server MAC unknown: no new connections go to it until it answers ARP/NDP", "rs", rs.Addr())
}
