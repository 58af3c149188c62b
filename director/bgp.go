//go:build linux

package director

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/udr-lb/udr/bgp"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/metrics"
)

// bgpState is the director's side of BGP: the speaker, and the route of
// every VIP with the reason of its last change. The routes follow the
// compiled table (decideVIPs): each new table (a reload, an ipvsadm
// change, a health check's verdict) is looked at within bgpInterval.
type bgpState struct {
	speaker *bgp.Speaker // nil without a bgp section
	cfg     bgp.Config

	mu       sync.Mutex
	routes   map[netip.Addr]*bgp.RouteStatus
	draining bool // withdrawn for good: udr is stopping
}

// bgpInterval is how often the table is looked at for a change of the
// routes.
const bgpInterval = 100 * time.Millisecond

// startBGP starts the BGP speaker of the udr.yaml's bgp section, if any.
// With BGP, the routers send the VIPs' frames to the director's own MAC
// (the next hop): the kernel must not forward them too.
func (d *Director) startBGP() error {
	if d.file == nil || d.file.BGP == nil {
		return nil
	}
	v4, v6, err := host.ForwardingEnabled(d.settings.Iface)
	if err != nil {
		return err
	}
	if v4 || v6 {
		return fmt.Errorf("bgp with forwarding on for %s: the routers send the VIPs' frames to this host's MAC, and its kernel would route them too; run `sysctl -w net.ipv4.conf.%s.forwarding=0 net.ipv6.conf.%s.forwarding=0`", d.settings.Iface, d.settings.Iface, d.settings.Iface)
	}
	d.bgp.cfg = *d.file.BGP
	d.bgp.routes = make(map[netip.Addr]*bgp.RouteStatus)
	d.bgp.speaker, err = bgp.Start(d.bgp.cfg, d.log)
	if err != nil {
		return err
	}
	var peers []string
	for _, p := range d.bgp.cfg.Peers {
		peers = append(peers, fmt.Sprintf("%s AS %d", p.Address, p.ASN))
	}
	d.log.Info("bgp speaker started: the VIPs are announced to the peers, not by gratuitous ARP/NA", "asn", d.bgp.cfg.ASN, "router_id", d.bgp.cfg.RouterID, "peers", peers, "min_healthy", d.bgp.cfg.MinHealthy)
	return nil
}

// bgpOn reports whether the VIPs are announced by BGP.
func (d *Director) bgpOn() bool { return d.bgp.speaker != nil }

// runBGP announces and withdraws the VIPs as the compiled table changes,
// until ctx is done.
func (d *Director) runBGP(ctx context.Context) {
	if !d.bgpOn() {
		return
	}
	// Before the first announcement, the director waits to be warm: with
	// a backup sync daemon, until its peers' connection tables came
	// (Warm), so that the flows the routers move here find their entries.
	select {
	case <-ctx.Done():
		return
	case <-d.Warm():
	}
	d.log.Info("bgp: the director is warm: the VIPs may be announced")
	tick := time.NewTicker(bgpInterval)
	defer tick.Stop()
	var last *forwarder.Table
	for {
		if t := d.table.Load(); t != last {
			if d.reconcileBGP(t, time.Now()) {
				last = t
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// reconcileBGP announces and withdraws the VIPs as t decides. It reports
// false when a change failed and is to be tried again.
func (d *Director) reconcileBGP(t *forwarder.Table, now time.Time) bool {
	want := decideVIPs(t.Config(), d.bgp.cfg.MinHealthy)
	if t.Options().Standby {
		// A standby director forwards nothing to the VIPs: it must not
		// draw their flows.
		for vip := range want {
			want[vip] = vipDecision{reason: "standby: this director forwards nothing until udr admin --active"}
		}
	}
	d.bgp.mu.Lock()
	defer d.bgp.mu.Unlock()
	if d.bgp.draining {
		return true
	}
	ok := true
	for vip, dec := range want {
		r, had := d.bgp.routes[vip]
		if !had {
			r = &bgp.RouteStatus{Prefix: bgp.HostPrefix(vip), Since: now}
			d.bgp.routes[vip] = r
		}
		switch {
		case dec.announce && !r.Announced:
			if err := d.bgp.speaker.Announce(r.Prefix); err != nil {
				d.log.Error("bgp announcement failed; tried again", "prefix", r.Prefix, "err", err)
				ok = false
				continue
			}
			r.Announced, r.Since = true, now
			d.log.Info("bgp route announced", "prefix", r.Prefix, "reason", dec.reason)
		case !dec.announce && r.Announced:
			if err := d.bgp.speaker.Withdraw(r.Prefix); err != nil {
				d.log.Error("bgp withdrawal failed; tried again", "prefix", r.Prefix, "err", err)
				ok = false
				continue
			}
			r.Announced, r.Since = false, now
			d.log.Warn("bgp route withdrawn", "prefix", r.Prefix, "reason", dec.reason)
		case !dec.announce && !had:
			d.log.Warn("bgp route not announced", "prefix", r.Prefix, "reason", dec.reason)
		}
		r.Reason = dec.reason
	}
	for vip, r := range d.bgp.routes {
		if _, ok := want[vip]; ok {
			continue
		}
		if r.Announced {
			if err := d.bgp.speaker.Withdraw(r.Prefix); err != nil {
				d.log.Error("bgp withdrawal failed; tried again", "prefix", r.Prefix, "err", err)
				ok = false
				continue
			}
			d.log.Info("bgp route withdrawn", "prefix", r.Prefix, "reason", "the VIP has no service any more")
		}
		delete(d.bgp.routes, vip)
	}
	return ok
}

// Drain withdraws every route for good and then waits for the bgp
// section's drain time (or ctx), while the workers go on forwarding: the
// routers move the flows to the other directors before this one stops.
// Without BGP it returns at once.
func (d *Director) Drain(ctx context.Context) {
	if !d.bgpOn() {
		return
	}
	d.bgp.mu.Lock()
	d.bgp.draining = true
	n := 0
	now := time.Now()
	for _, r := range d.bgp.routes {
		if !r.Announced {
			continue
		}
		if err := d.bgp.speaker.Withdraw(r.Prefix); err != nil {
			d.log.Error("bgp withdrawal failed", "prefix", r.Prefix, "err", err)
			continue
		}
		r.Announced, r.Since, r.Reason = false, now, "udr is stopping"
		n++
	}
	d.bgp.mu.Unlock()
	d.log.Info("bgp routes withdrawn: forwarding goes on while the routers move the flows", "withdrawn", n, "drain", d.bgp.cfg.Drain)
	select {
	case <-ctx.Done():
	case <-time.After(d.bgp.cfg.Drain):
	}
}

// stopBGP ends the sessions.
func (d *Director) stopBGP() {
	if d.bgpOn() {
		d.bgp.speaker.Close()
	}
}

// bgpReloaded logs a change of the bgp section at a reload: it applies at
// the next start. The caller holds d.mu.
func (d *Director) bgpReloaded(fc *config.File) {
	var next *bgp.Config
	if fc != nil {
		next = fc.BGP
	}
	var running *bgp.Config
	if d.bgpOn() {
		running = &d.bgp.cfg
	}
	if !reflect.DeepEqual(running, next) {
		d.log.Warn("the bgp section changed in the config file: it applies at the next start")
	}
}

// BGPStatus returns the sessions and the routes, nil without BGP.
func (d *Director) BGPStatus() *bgp.Status {
	if !d.bgpOn() {
		return nil
	}
	st := &bgp.Status{ASN: d.bgp.cfg.ASN, RouterID: d.bgp.cfg.RouterID, Peers: d.bgp.speaker.Peers()}
	st.Announcements, st.Withdrawals = d.bgp.speaker.Counts()
	d.bgp.mu.Lock()
	for _, r := range d.bgp.routes {
		st.Routes = append(st.Routes, *r)
	}
	d.bgp.mu.Unlock()
	slices.SortFunc(st.Routes, func(a, b bgp.RouteStatus) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return st
}

// serveBGP is GET /v1/bgp: BGPStatus as JSON, 404 without BGP.
func (d *Director) serveBGP(w http.ResponseWriter, _ *http.Request) {
	st := d.BGPStatus()
	if st == nil {
		http.Error(w, "bgp is not configured (no bgp section in udr.yaml)", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// BGPMetrics is the metrics' view of BGPStatus; nil without BGP.
func (d *Director) BGPMetrics() *metrics.BGP {
	st := d.BGPStatus()
	if st == nil {
		return nil
	}
	m := &metrics.BGP{Announcements: st.Announcements, Withdrawals: st.Withdrawals}
	for _, p := range st.Peers {
		m.Peers = append(m.Peers, metrics.BGPPeer{Address: p.Address.String(), Up: p.Up(), UpdatesSent: p.UpdatesSent, UpdatesReceived: p.UpdatesReceived})
	}
	for _, r := range st.Routes {
		m.Routes = append(m.Routes, metrics.BGPRoute{Prefix: r.Prefix.String(), Announced: r.Announced})
	}
	return m
}
