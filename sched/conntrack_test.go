package sched_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// TestLeastConnWithConnectionTable drives lc, wlc, sed and nq with the
// connection counts that a conntrack.Table reports, as the pipeline does:
// each pick becomes a connection (a SYN: SYN_RECV, active), some
// connections finish (FIN: FIN_WAIT, inactive), and the next pick must follow
// the kernel's rule over those counts.
func TestLeastConnWithConnectionTable(t *testing.T) {
	svc := service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	vip := netip.AddrPortFrom(svc.Addr, svc.Port)
	// A added first, then B (weight 2): the kernel list is [B, A].
	tests := []struct {
		sched string
		want  string // picks, with "F" marking that the oldest open connection finished
	}{
		// lc: least active*256 + inactive; ties go to the list head.
		// B0 A0 → B; B256 A0 → A; 256 256 → B; 512 256 → A; B's first
		// finishes: B257 A512 → B; A's first finishes: B513 A257 → A;
		// B513 A513 → B.
		{"lc", "B A B A F B F A B"},
		// wlc: pick A over B when ohB*wA > ohA*wB (wB = 2).
		// 0,0 → B; 256*1 > 0 → A; 256 > 512? → B; 512 > 512? → B;
		// B finishes one: 513 > 512 → A; A finishes one: 513 > 514? → B;
		// 769 > 514 → A.
		{"wlc", "B A B B F A F B A"},
		// sed: overhead active+1, inactive ignored. 1 > 2? → B;
		// 2 > 2? → B; 3 > 2 → A; 3 > 4? → B; B finishes: 3 > 4? → B;
		// B finishes: 3 > 4? → B; 4 > 4? → B.
		{"sed", "B B A B F B F B B"},
		// nq: an idle server (no active connection) wins at once, else sed.
		// B idle → B; A idle → A; 2 > 4? → B; 3 > 4? → B; B finishes one:
		// 3 > 4? → B; A finishes its only one: A idle → A; 4 > 4? → B.
		{"nq", "B A B B F B F A B"},
	}
	for _, tt := range tests {
		t.Run(tt.sched, func(t *testing.T) {
			reg := dest.NewRegistry(4)
			conns := conntrack.New(64, reg, conntrack.Options{Seed: 1})
			var servers []sched.Server
			for _, d := range []service.Dest{
				{Addr: netip.MustParseAddr("192.0.2.12"), Port: 80, Weight: 2}, // B
				{Addr: netip.MustParseAddr("192.0.2.11"), Port: 80, Weight: 1}, // A
			} {
				id, err := reg.Assign(svc.DestKey(d))
				if err != nil {
					t.Fatal(err)
				}
				servers = append(servers, sched.Server{ID: id, Addr: d.Addr, Port: d.Port, Weight: d.Weight, LastWeight: d.Weight, State: reg.State(id)})
			}
			s, err := sched.New(tt.sched, 0, servers, nil, sched.Options{})
			if err != nil {
				t.Fatal(err)
			}
			names := map[dest.ID]string{servers[0].ID: "B", servers[1].ID: "A"}
			var open []conntrack.Key
			var got []string
			port := uint16(40000)
			for _, step := range strings.Fields(tt.want) {
				if step == "F" {
					k := open[0]
					open = open[1:]
					if _, ok := conns.Update(k, conntrack.TCPFin|conntrack.TCPAck, 1); !ok {
						t.Fatal("finished connection missing")
					}
					got = append(got, "F")
					continue
				}
				i := s.Pick(sched.Flow{})
				if i < 0 {
					t.Fatalf("no pick after %v", got)
				}
				port++
				k := conntrack.NewKey(uint8(service.TCP), netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), port), vip)
				if err := conns.Insert(k, servers[i].ID, 1); err != nil {
					t.Fatal(err)
				}
				conns.Update(k, conntrack.TCPSyn, 1)
				open = append(open, k)
				got = append(got, names[servers[i].ID])
			}
			if g := strings.Join(got, " "); g != tt.want {
				var counts []string
				for _, srv := range servers {
					counts = append(counts, fmt.Sprintf("%s active %d inactive %d", names[srv.ID], srv.State.Active.Load(), srv.State.Inactive.Load()))
				}
				t.Errorf("picks %q, want %q (%s)", g, tt.want, strings.Join(counts, ", "))
			}
		})
	}
}
