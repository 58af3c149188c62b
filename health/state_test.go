package health

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/service"
)

func TestStateRiseFall(t *testing.T) {
	tests := []struct {
		name    string
		up      bool
		results string // s = success, f = failure
		want    string // the state after each result: U or D, '!' after a change
	}{
		{name: "up stays up on successes", up: true, results: "sss", want: "UUU"},
		{name: "up falls after 3 failures", up: true, results: "ffff", want: "UUD!D"},
		{name: "a success breaks a fall", up: true, results: "ffsfff", want: "UUUUUD!"},
		{name: "down rises after 2 successes", up: false, results: "sss", want: "DU!U"},
		{name: "a failure breaks a rise", up: false, results: "sfss", want: "DDDU!"},
		{name: "flapping never changes", up: true, results: "fsfsfsfs", want: "UUUUUUUU"},
		{name: "full cycle", up: true, results: "fffssfff", want: "UUD!DU!UUD!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state{up: tt.up}
			var got string
			for _, r := range tt.results {
				changed := s.observe(r == 's', 2, 3)
				got += map[bool]string{true: "U", false: "D"}[s.up]
				if changed {
					got += "!"
				}
			}
			if got != tt.want {
				t.Fatalf("states = %s, want %s", got, tt.want)
			}
		})
	}
}

// fakeProbes answers checks from a script per server address and records
// every report.
type fakeProbes struct {
	fail    map[netip.AddrPort]bool
	reports []string
}

func (f *fakeProbes) probe(_ context.Context, t Target) error {
	if f.fail[t.Server] {
		return fmt.Errorf("connect %s: connection refused", t.Server)
	}
	return nil
}

func (f *fakeProbes) report(t Target, up bool, reason string) {
	f.reports = append(f.reports, fmt.Sprintf("%s up=%v: %s", t.Server, up, reason))
}

// step runs every check due at now, synchronously, as Run would.
func step(c *Checker, now time.Time) int {
	due := c.due(now)
	for _, t := range due {
		c.finish(t, c.probe(context.Background(), t))
	}
	return len(due)
}

var (
	web = service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	rs1 = netip.MustParseAddrPort("192.0.2.11:80")
	rs2 = netip.MustParseAddrPort("192.0.2.12:80")
)

func newFake(t *testing.T) (*Checker, *fakeProbes) {
	t.Helper()
	f := &fakeProbes{fail: make(map[netip.AddrPort]bool)}
	c, err := New(Config{}, f.report)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.probe = f.probe
	return c, f
}

// TestCheckerSchedule drives a checker with a fake clock and fake probes:
// checks run once per interval, a server falls after Fall failures and
// rises after Rise successes, and each change is reported once.
func TestCheckerSchedule(t *testing.T) {
	c, f := newFake(t)
	check := CheckConfig{Interval: 2 * time.Second, Timeout: time.Second}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: check}, {Service: web, Server: rs2, Check: check}}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	var ran []int
	for i := range 20 { // 10 s in half-second steps
		if i == 2 {
			f.fail[rs1] = true // from t=1s
		}
		if i == 12 {
			f.fail[rs1] = false // from t=6s
		}
		ran = append(ran, step(c, now))
		now = now.Add(500 * time.Millisecond)
	}
	wantRan := []int{2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0}
	if diff := cmp.Diff(wantRan, ran); diff != "" {
		t.Fatalf("checks run per step (-want +got):\n%s", diff)
	}
	// rs1 failed its checks at t=2 s and t=4 s and passed at t=6 s: two
	// failures in a row are fewer than Fall.
	if len(f.reports) != 0 {
		t.Fatalf("reports = %q, want none (2 failures < fall 3)", f.reports)
	}

	f.fail[rs1] = true
	for range 8 { // t=10..13.5: failures at 10, 12
		step(c, now)
		now = now.Add(500 * time.Millisecond)
	}
	step(c, now) // t=14: third failure
	f.fail[rs1] = false
	for range 8 { // successes at 16, 18
		now = now.Add(500 * time.Millisecond)
		step(c, now)
	}
	want := []string{
		"192.0.2.11:80 up=false: 3 consecutive checks failed, last: connect 192.0.2.11:80: connection refused",
		"192.0.2.11:80 up=true: 2 consecutive checks passed",
	}
	if diff := cmp.Diff(want, f.reports); diff != "" {
		t.Fatalf("reports (-want +got):\n%s", diff)
	}
	st := status(c)
	if s := st[rs1]; !s.Up || s.Transitions != 2 || s.Checks != 10 || s.LastError != "" {
		t.Fatalf("rs1 status = %+v, want up, 2 transitions, 10 checks, no error", s)
	}
	if s := st[rs2]; !s.Up || s.Transitions != 0 {
		t.Fatalf("rs2 status = %+v, want up, no transitions", s)
	}
}

func status(c *Checker) map[netip.AddrPort]Status {
	m := make(map[netip.AddrPort]Status)
	for _, s := range c.Status() {
		m[s.Target.Server] = s
	}
	return m
}

// TestCheckerSet checks that reconfiguring keeps the state of targets that
// stay, starts new ones in their initial state, and drops the result of a
// check that ran with a replaced configuration.
func TestCheckerSet(t *testing.T) {
	c, f := newFake(t)
	fast := CheckConfig{Interval: time.Second, Rise: 1, Fall: 1}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: fast}}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	f.fail[rs1] = true
	step(c, now) // rs1 down
	inFlight := c.due(now.Add(time.Second))

	slow := fast
	slow.Interval = 5 * time.Second
	alpha := CheckConfig{Interval: time.Second, InitialDown: true}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: slow}, {Service: web, Server: rs2, Check: alpha}}); err != nil {
		t.Fatal(err)
	}
	f.fail[rs1] = false
	c.finish(inFlight[0], nil) // a result of the old check: dropped
	st := status(c)
	if s := st[rs1]; s.Up || s.Transitions != 1 || s.Checks != 1 || s.Target.Check.Interval != 5*time.Second {
		t.Fatalf("rs1 after Set = %+v, want still down, 1 transition, 1 check, new interval", s)
	}
	if s := st[rs2]; s.Up || s.Checks != 0 {
		t.Fatalf("rs2 after Set = %+v, want down (InitialDown), unchecked", s)
	}

	if err := c.Set([]Target{{Service: web, Server: rs2, Check: alpha}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := status(c)[rs1]; ok {
		t.Fatal("rs1 still checked after Set without it")
	}
}

func TestSetRejects(t *testing.T) {
	tests := []struct {
		name  string
		t     Target
		error string
	}{
		{
			name:  "unknown kind",
			t:     Target{Service: web, Server: rs1, Check: CheckConfig{Kind: "icmp"}},
			error: `check of TCP 192.0.2.100:80 -> 192.0.2.11:80: kind "icmp": unknown, want one of tcp, http, https, udp, dns, misc`,
		},
		{
			name:  "timeout over interval",
			t:     Target{Service: web, Server: rs1, Check: CheckConfig{Interval: time.Second, Timeout: 2 * time.Second}},
			error: `check of TCP 192.0.2.100:80 -> 192.0.2.11:80: timeout 2s, interval 1s: want 0 < timeout <= interval`,
		},
		{
			name:  "dns without name",
			t:     Target{Service: web, Server: rs1, Check: CheckConfig{Kind: KindDNS}},
			error: `check of TCP 192.0.2.100:80 -> 192.0.2.11:80: dns name "": empty name`,
		},
		{
			name:  "dr for http",
			t:     Target{Service: web, Server: rs1, Check: CheckConfig{Kind: KindHTTP, Mode: ModeDR}},
			error: `check of TCP 192.0.2.100:80 -> 192.0.2.11:80: mode "dr": only tcp checks support it, not http`,
		},
		{
			name:  "dr without interface",
			t:     Target{Service: web, Server: rs1, Check: CheckConfig{Mode: ModeDR}},
			error: `check of TCP 192.0.2.100:80 -> 192.0.2.11:80: mode "dr" needs the checker's DR interface`,
		},
		{
			name:  "unknown on_failure",
			t:     Target{Service: web, Server: rs1, Check: CheckConfig{OnFailure: "drop"}},
			error: `check of TCP 192.0.2.100:80 -> 192.0.2.11:80: on_failure "drop": unknown, want quiesce or remove`,
		},
		{
			name:  "no port",
			t:     Target{Service: service.Key{Proto: service.TCP, Addr: web.Addr}, Server: netip.AddrPortFrom(rs1.Addr(), 0)},
			error: `check of TCP 192.0.2.100:0 -> 192.0.2.11:0: port 0: the service has no port, set the check's port`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFake(t)
			err := c.Set([]Target{{Service: web, Server: rs2}, tt.t})
			if err == nil || err.Error() != tt.error {
				t.Fatalf("Set error = %v, want %s", err, tt.error)
			}
			if len(c.Status()) != 0 {
				t.Fatal("a failed Set changed the targets")
			}
		})
	}
}
