//go:build linux

package director

import (
	"net/netip"
	"slices"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/service"
)

// A service's quorum, as keepalived keeps it (keepalived/check/ipwrapper.c,
// update_quorum_state): the weights of its available real servers (not
// down after their checks, at their configured or misc_dynamic weight)
// sum to its "weight". A service that has its quorum loses it when that
// sum falls below quorum-hysteresis, or to 0; one that lost it has it again
// when the sum reaches quorum+hysteresis; a service starts with its quorum
// when the sum is at least quorum+hysteresis. While a service is without
// its quorum and has a sorry server, its available servers leave the table
// (quiesced, or removed when their check's on_failure says so) and the
// sorry server is its only server, at weight 1; with its quorum, the sorry
// server is out of the table, or in at weight 0 with inhibit.

// quorumPolicy is what a service of udr.yaml asks of its quorum.
type quorumPolicy struct {
	quorum, hysteresis int64
	sorry              *config.SorryServer
}

// quorumPolicies returns the services of udr.yaml that have a sorry
// server or a quorum or hysteresis other than keepalived's defaults (1,
// 0), whose quorum the overlay keeps.
func (d *Director) quorumPolicies() map[service.Key]quorumPolicy {
	if d.file == nil {
		return nil
	}
	var m map[service.Key]quorumPolicy
	for _, s := range d.file.Services {
		if s.SorryServer == nil && s.Quorum <= 1 && s.Hysteresis == 0 {
			continue
		}
		if m == nil {
			m = make(map[service.Key]quorumPolicy)
		}
		q := max(s.Quorum, 1)
		m[s.Key] = quorumPolicy{quorum: q, hysteresis: s.Hysteresis, sorry: s.SorryServer}
	}
	return m
}

// applyQuorum updates the quorum of s, whose Dests have the health
// overlay, and, without it, puts its sorry server in place of its
// available servers. The caller holds d.mu.
func (d *Director) applyQuorum(s *service.Service, p quorumPolicy) {
	var sum int64
	for _, dst := range s.Dests {
		if !d.health.down[admin.DestKey{Service: s.Key, Dest: dst.AddrPort()}] {
			sum += int64(dst.Weight)
		}
	}
	lost, known := d.health.quorumLost[s.Key]
	switch {
	case !known:
		lost = sum < p.quorum+p.hysteresis
		if lost {
			d.log.Warn("service starts without its quorum", "service", s.Key.String(), "weight", sum,
				"quorum", p.quorum, "hysteresis", p.hysteresis, "sorry_server", sorryName(p.sorry))
		}
	case !lost && (sum == 0 || sum < p.quorum-p.hysteresis):
		lost = true
		d.log.Warn("service lost its quorum", "service", s.Key.String(), "weight", sum,
			"quorum", p.quorum, "hysteresis", p.hysteresis, "sorry_server", sorryName(p.sorry))
	case lost && sum >= p.quorum+p.hysteresis:
		lost = false
		d.log.Info("service has its quorum again", "service", s.Key.String(), "weight", sum,
			"quorum", p.quorum, "hysteresis", p.hysteresis)
	}
	if d.health.quorumLost == nil {
		d.health.quorumLost = make(map[service.Key]bool)
	}
	d.health.quorumLost[s.Key] = lost
	if p.sorry == nil {
		return
	}
	sorry := netip.AddrPortFrom(p.sorry.Addr, p.sorry.Port)
	if lost {
		s.Dests = slices.DeleteFunc(s.Dests, func(dst service.Dest) bool {
			k := admin.DestKey{Service: s.Key, Dest: dst.AddrPort()}
			hc, checked := d.health.checks[k]
			return !d.health.down[k] && dst.AddrPort() != sorry && checked && hc.OnFailure == health.OnFailureRemove
		})
		for i := range s.Dests {
			if s.Dests[i].AddrPort() != sorry {
				s.Dests[i].Weight = 0 // LastWeight stays, as for a quiesced server
			}
		}
	}
	i := slices.IndexFunc(s.Dests, func(dst service.Dest) bool { return dst.AddrPort() == sorry })
	switch {
	case lost && i >= 0:
		s.Dests[i].Weight, s.Dests[i].LastWeight = 1, 1
	case lost:
		s.Dests = append(s.Dests, service.Dest{Addr: sorry.Addr(), Port: sorry.Port(), Weight: 1, LastWeight: 1})
	case i < 0 && p.sorry.Inhibit:
		s.Dests = append(s.Dests, service.Dest{Addr: sorry.Addr(), Port: sorry.Port()})
	}
}

// QuorumLost reports whether the service key is without its quorum (its
// sorry server, if any, in place of its servers), and whether udr keeps
// its quorum at all (a sorry server, or a quorum or hysteresis set).
func (d *Director) QuorumLost(key service.Key) (lost, kept bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	lost, kept = d.health.quorumLost[key]
	return lost, kept
}

func sorryName(s *config.SorryServer) string {
	if s == nil {
		return "none"
	}
	return netip.AddrPortFrom(s.Addr, s.Port).String()
}
