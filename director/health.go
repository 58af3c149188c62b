//go:build linux

package director

import (
	"net/netip"
	"slices"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/metrics"
	"github.com/udr-lb/udr/service"
)

// healthState is what the health checks decided, by real server. A server
// that is down stays in the operator's configuration (d.running) and is
// taken out only of the compiled table: quiesced (weight 0, its
// connections drain) or removed, as its check's on_failure says; when it
// recovers the table is compiled again with its configured weight.
type healthState struct {
	checks  map[admin.DestKey]health.CheckConfig // the servers that have a check
	down    map[admin.DestKey]bool
	flips   map[admin.DestKey]uint64
	unknown map[admin.DestKey]uint64 // checks the checker could not run (health.LocalError)
	weight  map[admin.DestKey]int32  // set by misc_dynamic checks, in place of the configured weight
	count   uint64                   // transitions, all servers
	// quorumLost says, for each service whose quorum is kept
	// (quorum.go), whether it is without it.
	quorumLost map[service.Key]bool
}

// newChecker starts the health checker, in the director's namespace (its
// dr-mode socket is opened there).
func (d *Director) newChecker() error {
	d.health = healthState{
		checks:  make(map[admin.DestKey]health.CheckConfig),
		down:    make(map[admin.DestKey]bool),
		flips:   make(map[admin.DestKey]uint64),
		unknown: make(map[admin.DestKey]uint64),
		weight:  make(map[admin.DestKey]int32),

		quorumLost: make(map[service.Key]bool),
	}
	cfg := health.Config{
		DR:      health.DRConfig{Iface: d.settings.Iface, NeighborMAC: d.neigh.Lookup},
		Unknown: d.healthUnknown,
		Weight:  d.healthWeight,
	}
	var err error
	d.checker, err = health.New(cfg, d.healthChanged)
	return err
}

// setHealthTargets gives the checker the checks of the loaded udr.yaml,
// and reports whether that changed which servers are down. The caller
// holds d.mu.
func (d *Director) setHealthTargets() (changed bool, err error) {
	checks := make(map[admin.DestKey]health.CheckConfig)
	var targets []health.Target
	if d.file != nil {
		for svc, servers := range d.file.HealthChecks() {
			for addr, hc := range servers {
				checks[admin.DestKey{Service: svc, Dest: addr}] = hc
				targets = append(targets, health.Target{Service: svc, Server: addr, Check: hc})
			}
		}
	}
	if err := d.checker.Set(targets); err != nil {
		return false, err
	}
	for k, hc := range checks {
		if _, had := d.health.checks[k]; !had && hc.InitialDown {
			// keepalived's alpha mode: a new server earns its place
			// with `rise` passing checks; the checker reports it up then.
			d.health.down[k] = true
			changed = true
		}
	}
	d.health.checks = checks
	for k := range d.health.down {
		if _, ok := checks[k]; !ok {
			delete(d.health.down, k) // no check any more: back in service
			changed = true
		}
	}
	for k := range d.health.weight {
		if hc, ok := checks[k]; !ok || !hc.MiscDynamic {
			delete(d.health.weight, k) // back to its configured weight
			changed = true
		}
	}
	return changed, nil
}

// healthWeight is the checker's report of a misc_dynamic check's exit
// status: the server's weight, or -1 for its configured one.
func (d *Director) healthWeight(t health.Target, weight int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := admin.DestKey{Service: t.Service, Dest: t.Server}
	old, had := d.health.weight[k]
	if weight < 0 {
		if !had {
			return
		}
		delete(d.health.weight, k)
	} else {
		if had && old == int32(weight) {
			return
		}
		d.health.weight[k] = int32(weight)
	}
	d.log.Info("real server's weight set by its misc_dynamic check", "service", t.Service.String(), "rs", t.Server, "weight", weight)
	if err := d.install(d.running); err != nil {
		d.log.Error("cannot apply the health check's change", "err", err)
	}
}

// healthChanged is the checker's report: a server went down or came back.
func (d *Director) healthChanged(t health.Target, up bool, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := admin.DestKey{Service: t.Service, Dest: t.Server}
	if d.health.down[k] == !up {
		return
	}
	d.health.down[k] = !up
	d.health.flips[k]++
	d.health.count++
	action := d.health.checks[k].OnFailure
	if up {
		d.log.Info("real server healthy again: back with its configured weight", "service", t.Service.String(), "rs", t.Server, "reason", reason)
	} else {
		d.log.Warn("real server failed its health check", "service", t.Service.String(), "rs", t.Server, "action", action, "reason", reason)
	}
	if err := d.install(d.running); err != nil {
		d.log.Error("cannot apply the health check's change", "err", err)
	}
}

// healthUnknown is the checker's report of a check it could not run (out
// of descriptors, buffers, memory): the server's state stays, the result
// is counted, and the first of a run is logged.
func (d *Director) healthUnknown(t health.Target, err error, run uint64) {
	d.mu.Lock()
	d.health.unknown[admin.DestKey{Service: t.Service, Dest: t.Server}]++
	d.mu.Unlock()
	if run == 1 {
		d.log.Warn("health check could not run: the director is short of resources; the real server's state stays as it was",
			"service", t.Service.String(), "rs", t.Server, "err", err)
	}
}

// overlay returns cfg with the servers that are down quiesced or removed,
// the weights that misc_dynamic checks set, and sorry servers in place of
// the servers of services without their quorum (quorum.go). cfg itself is
// not changed; the quorum of each service is updated. The caller holds
// d.mu.
func (d *Director) overlay(cfg *service.Config) *service.Config {
	policies := d.quorumPolicies()
	for k := range d.health.quorumLost {
		if _, ok := policies[k]; !ok || cfg.Service(k) == nil {
			delete(d.health.quorumLost, k)
		}
	}
	if len(d.health.down) == 0 && len(d.health.weight) == 0 && len(policies) == 0 {
		return cfg
	}
	out := cfg.Clone()
	for _, s := range out.Services {
		s.Dests = slices.DeleteFunc(s.Dests, func(dst service.Dest) bool {
			k := admin.DestKey{Service: s.Key, Dest: dst.AddrPort()}
			return d.health.down[k] && d.health.checks[k].OnFailure == health.OnFailureRemove
		})
		for i := range s.Dests {
			k := admin.DestKey{Service: s.Key, Dest: s.Dests[i].AddrPort()}
			switch w, set := d.health.weight[k]; {
			case d.health.down[k]:
				s.Dests[i].Weight = 0 // LastWeight stays: mh keeps its table
			case set:
				// As ipvsadm -e, which keepalived runs: a weight
				// above 0 is also the last one.
				s.Dests[i].Weight = w
				if w > 0 {
					s.Dests[i].LastWeight = w
				}
			}
		}
		if p, ok := policies[s.Key]; ok {
			d.applyQuorum(s, p)
		}
	}
	return out
}

// healthOf is a real server's health for the metrics, nil when it has no
// check.
func (d *Director) healthOf(svc service.Key, addr netip.AddrPort) *metrics.Health {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := admin.DestKey{Service: svc, Dest: addr}
	if _, ok := d.health.checks[k]; !ok {
		return nil
	}
	return &metrics.Health{Up: !d.health.down[k], Transitions: d.health.flips[k], Unknown: d.health.unknown[k]}
}
