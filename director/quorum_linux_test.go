//go:build linux

package director

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/service"
)

// quorumDirector returns a director whose udr.yaml has the service web of
// three servers (weights 1, 2, 3; .12's check removes it on failure, the
// others' quiesce) with quorum, hysteresis and sorry server as given.
func quorumDirector(quorum, hysteresis int64, sorry *config.SorryServer) (*Director, *service.Config) {
	web := service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	var dests []service.Dest
	d := &Director{
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		file: &config.File{Services: []config.Service{{Key: web, Quorum: quorum, Hysteresis: hysteresis, SorryServer: sorry}}},
		health: healthState{down: map[admin.DestKey]bool{}, checks: map[admin.DestKey]health.CheckConfig{},
			weight: map[admin.DestKey]int32{}, quorumLost: map[service.Key]bool{}},
	}
	for i := range 3 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}), 80)
		dests = append(dests, service.Dest{Addr: a.Addr(), Port: 80, Weight: int32(i + 1), LastWeight: int32(i + 1)})
		hc := health.CheckConfig{OnFailure: health.OnFailureQuiesce}
		if i == 1 {
			hc.OnFailure = health.OnFailureRemove
		}
		if i > 0 { // .11 has no check
			d.health.checks[admin.DestKey{Service: web, Dest: a}] = hc
		}
	}
	return d, &service.Config{Services: []*service.Service{{Key: web, Scheduler: "wrr", Dests: dests}}}
}

// table renders the overlaid service: "11:1 12:2 13:3 20:1", by last byte.
func table(cfg *service.Config) string {
	var parts []string
	for _, dst := range cfg.Services[0].Dests {
		parts = append(parts, fmt.Sprintf("%d:%d", dst.Addr.As4()[3], dst.Weight))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// TestQuorumSorryServer follows keepalived's update_quorum_state: the
// service loses its quorum below quorum-hysteresis (or at weight 0) and
// has it again at quorum+hysteresis; without it, the sorry server (weight
// 1) replaces the available servers, which are quiesced or removed as
// their check's on_failure says (quiesced without a check).
func TestQuorumSorryServer(t *testing.T) {
	sorry := &config.SorryServer{Addr: netip.MustParseAddr("192.0.2.20"), Port: 80}
	inhibit := &config.SorryServer{Addr: netip.MustParseAddr("192.0.2.20"), Port: 80, Inhibit: true}
	same := &config.SorryServer{Addr: netip.MustParseAddr("192.0.2.11"), Port: 80}
	type step struct {
		down  string // last bytes of the servers down, "" none
		table string
		lost  bool
	}
	tests := []struct {
		name               string
		quorum, hysteresis int64
		sorry              *config.SorryServer
		steps              []step
	}{
		{"quorum 4 hysteresis 1", 4, 1, sorry, []step{
			{"", "11:1 12:2 13:3", false},     // 6 >= 5
			{"13", "11:1 12:2 13:0", false},   // 3, not below 3
			{"12 13", "11:0 13:0 20:1", true}, // 1 < 3: lost
			{"13", "11:0 13:0 20:1", true},    // 3 < 5: still lost; .12 removed (on_failure remove)
			{"", "11:1 12:2 13:3", false},     // 6 >= 5: back
		}},
		{"default quorum 1", 1, 0, sorry, []step{
			{"12", "11:1 13:3", false},
			{"11 12 13", "11:0 13:0 20:1", true}, // weight 0: lost
			{"12 13", "11:1 13:0", false},        // 1 >= 1
		}},
		{"inhibit keeps the sorry server at weight 0", 1, 0, inhibit, []step{
			{"", "11:1 12:2 13:3 20:0", false},
			{"11 12 13", "11:0 13:0 20:1", true},
			{"11 12", "11:0 13:3 20:0", false},
		}},
		{"quorum 1 hysteresis 1: lost at 0, back at 2", 1, 1, sorry, []step{
			{"", "11:1 12:2 13:3", false}, // 6 >= 2
			{"12 13", "11:1 13:0", false}, // 1: not below 0, not 0
			{"11 12 13", "11:0 13:0 20:1", true},
			{"12 13", "11:0 13:0 20:1", true}, // 1 < 2
			{"13", "11:1 12:2 13:0", false},
		}},
		{"starts without its quorum", 10, 0, sorry, []step{
			{"", "11:0 13:0 20:1", true}, // 6 < 10
		}},
		{"no sorry server: the quorum is only kept", 5, 0, nil, []step{
			{"12", "11:1 13:3", true},
			{"", "11:1 12:2 13:3", false},
		}},
		{"a sorry server that is also a server", 1, 0, same, []step{
			{"", "11:1 12:2 13:3", false},
			{"12 13", "11:1 13:0", false},
			{"11 12 13", "11:1 13:0", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, cfg := quorumDirector(tt.quorum, tt.hysteresis, tt.sorry)
			web := cfg.Services[0].Key
			for i, st := range tt.steps {
				clear(d.health.down)
				for _, b := range strings.Fields(st.down) {
					var last byte
					fmt.Sscan(b, &last)
					d.health.down[admin.DestKey{Service: web, Dest: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, last}), 80)}] = true
				}
				got := d.overlay(cfg)
				if table(got) != st.table {
					t.Errorf("step %d (down %q): table %s, want %s", i, st.down, table(got), st.table)
				}
				if lost, kept := d.QuorumLost(web); !kept || lost != st.lost {
					t.Errorf("step %d (down %q): quorum lost %v (kept %v), want lost %v", i, st.down, lost, kept, st.lost)
				}
			}
			if table(cfg) != "11:1 12:2 13:3" {
				t.Errorf("the running configuration changed: %s", table(cfg))
			}
		})
	}
}
