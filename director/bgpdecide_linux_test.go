//go:build linux

package director

import (
	"net/netip"
	"testing"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/service"
)

// bgpRules are two VIPs: .10 with a web service of three real servers and
// a DNS service of one, .11 with one service of two.
func bgpRules() *service.Config {
	vip10, vip11 := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11")
	dests := func(weights ...int32) []service.Dest {
		var out []service.Dest
		for i, w := range weights {
			out = append(out, service.Dest{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}), Port: 80, Weight: w})
		}
		return out
	}
	return &service.Config{Services: []*service.Service{
		{Key: service.Key{Proto: service.TCP, Addr: vip10, Port: 80}, Scheduler: "mh", Dests: dests(1, 1, 1)},
		{Key: service.Key{Proto: service.UDP, Addr: vip10, Port: 53}, Scheduler: "mh", Dests: []service.Dest{{Addr: netip.MustParseAddr("192.0.2.21"), Port: 53, Weight: 1}}},
		{Key: service.Key{Proto: service.TCP, Addr: vip11, Port: 80}, Scheduler: "mh", Dests: dests(1, 1)},
	}}
}

// TestDecideVIPs checks the announce decision: a VIP is announced while
// every one of its services has min_healthy real servers of weight above
// 0, whether an operator's weight 0 (ipvsadm -e -w 0) or a failed health
// check (quiesced or removed) took them out.
func TestDecideVIPs(t *testing.T) {
	vip10, vip11 := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11")
	web10 := service.Key{Proto: service.TCP, Addr: vip10, Port: 80}
	web11 := service.Key{Proto: service.TCP, Addr: vip11, Port: 80}
	dk := func(k service.Key, last byte) admin.DestKey {
		return admin.DestKey{Service: k, Dest: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, last}), 80)}
	}
	for _, tt := range []struct {
		name       string
		minHealthy int
		weight0    []admin.DestKey // set to weight 0 by the operator
		down       []admin.DestKey // failed their health check
		remove     bool            // the check's on_failure is remove
		want       map[netip.Addr]vipDecision
	}{
		{name: "all up", minHealthy: 1, want: map[netip.Addr]vipDecision{
			vip10: {true, "real servers available: tcp 203.0.113.10:80 3 of 3, udp 203.0.113.10:53 1 of 1"},
			vip11: {true, "real servers available: tcp 203.0.113.11:80 2 of 2"},
		}},
		{name: "min_healthy 2 is more than the DNS service has", minHealthy: 2, want: map[netip.Addr]vipDecision{
			vip10: {false, "udp 203.0.113.10:53: 1 of 1 real servers available, min_healthy 2"},
			vip11: {true, "real servers available: tcp 203.0.113.11:80 2 of 2"},
		}},
		{name: "weight 0 below min_healthy", minHealthy: 2, weight0: []admin.DestKey{dk(web11, 11)}, want: map[netip.Addr]vipDecision{
			vip10: {false, "udp 203.0.113.10:53: 1 of 1 real servers available, min_healthy 2"},
			vip11: {false, "tcp 203.0.113.11:80: 1 of 2 real servers available, min_healthy 2"},
		}},
		{name: "weight 0 of one of two", minHealthy: 1, weight0: []admin.DestKey{dk(web11, 11)}, want: map[netip.Addr]vipDecision{
			vip10: {true, "real servers available: tcp 203.0.113.10:80 3 of 3, udp 203.0.113.10:53 1 of 1"},
			vip11: {true, "real servers available: tcp 203.0.113.11:80 1 of 2"},
		}},
		{name: "health down, quiesced", minHealthy: 1, down: []admin.DestKey{dk(web11, 11), dk(web11, 12), dk(web10, 13)}, want: map[netip.Addr]vipDecision{
			vip10: {true, "real servers available: tcp 203.0.113.10:80 2 of 3, udp 203.0.113.10:53 1 of 1"},
			vip11: {false, "tcp 203.0.113.11:80: 0 of 2 real servers available, min_healthy 1"},
		}},
		{name: "health down, removed", minHealthy: 1, remove: true, down: []admin.DestKey{dk(web11, 11), dk(web11, 12)}, want: map[netip.Addr]vipDecision{
			vip10: {true, "real servers available: tcp 203.0.113.10:80 3 of 3, udp 203.0.113.10:53 1 of 1"},
			vip11: {false, "tcp 203.0.113.11:80: 0 of 0 real servers available, min_healthy 1"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rules := bgpRules()
			for _, k := range tt.weight0 {
				for _, s := range rules.Services {
					for i := range s.Dests {
						if s.Key == k.Service && s.Dests[i].AddrPort() == k.Dest {
							s.Dests[i].Weight = 0
						}
					}
				}
			}
			d := &Director{health: healthState{down: make(map[admin.DestKey]bool), checks: make(map[admin.DestKey]health.CheckConfig)}}
			for _, k := range tt.down {
				d.health.down[k] = true
				d.health.checks[k] = health.CheckConfig{OnFailure: health.OnFailureQuiesce}
				if tt.remove {
					d.health.checks[k] = health.CheckConfig{OnFailure: health.OnFailureRemove}
				}
			}
			got := decideVIPs(d.overlay(rules), tt.minHealthy)
			if len(got) != len(tt.want) {
				t.Fatalf("decided %d VIPs, want %d: %v", len(got), len(tt.want), got)
			}
			for vip, w := range tt.want {
				if got[vip] != w {
					t.Errorf("%s: %+v\nwant %+v", vip, got[vip], w)
				}
			}
		})
	}
}
