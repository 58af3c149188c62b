//go:build linux

package director_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/metrics"
	"github.com/udr-lb/udr/service"
)

// The checks of the health tests: a server is down after fall failed
// checks, at most (fall+1)·interval after it broke (a check that passed
// just before, then fall failures), and up again after rise passed ones.
const (
	checkInterval = 500 * time.Millisecond
	checkFall     = 2
	checkRise     = 2
	downWithin    = checkFall*checkInterval + checkInterval + healthSlack
	upWithin      = checkRise*checkInterval + checkInterval + healthSlack
	// healthSlack allows for a loaded machine (two packages' tests on 2
	// cores) delaying the checker's goroutine, its probes and the test's
	// polls; health's unit tests count fall and rise with a fake clock.
	healthSlack = 500 * time.Millisecond
)

// TestPrivilegedHealthCheck: under load, rs1's HTTP server stops; its HTTP
// check takes it out within fall×interval plus one interval, after which
// no request goes to it and none fails; it comes back within rise×interval
// plus one interval of the server's restart.
func TestPrivilegedHealthCheck(t *testing.T) {
	netlab.Privileged(t)
	for _, action := range []string{"quiesce", "remove"} {
		t.Run(action, func(t *testing.T) { testHealthCheck(t, action) })
	}
}

func testHealthCheck(t *testing.T, action string) {
	const (
		clients     = 20
		warmUp      = 2 * time.Second
		observe     = 1500 * time.Millisecond // of the load after each change
		maxDuration = 30 * time.Second
		maxRequests = 200_000
	)
	l := newLab(t, "h"+action[:1], drlab.Options{})
	cs := loadClients(t, l, clients)
	l.startFile(2, fmt.Sprintf(`interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    scheduler: rr
    health_check: {kind: http, path: /, interval: %v, timeout: 300ms, rise: %d, fall: %d, on_failure: %s}
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
`, checkInterval, checkRise, checkFall, action))
	rs1Addr := netip.MustParseAddrPort(rs1 + ":80")

	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	defer cancel()
	begin := time.Now()
	loaded := make(chan [][]request, 1)
	go func() { loaded <- runLoad(ctx, cs, maxRequests, begin) }()
	// endLoad stops the load and waits for it; deferred, it also runs when
	// t.Fatal ends the test, so that no client outlives it.
	var runs [][]request
	endLoad := func() [][]request {
		if runs == nil {
			cancel()
			runs = <-loaded
		}
		return runs
	}
	defer endLoad()

	if err := sleepUntil(ctx, begin.Add(warmUp)); err != nil {
		t.Fatal(err)
	}
	// Connections may be cut from the moment StopHTTP is called.
	stopped := time.Since(begin)
	if err := l.StopHTTP(1, 80); err != nil {
		t.Fatal(err)
	}
	downAt, err := awaitHealth(l, rs1Addr, false, begin.Add(stopped+downWithin))
	if err != nil {
		t.Fatal(err)
	}
	down := downAt.Sub(begin)
	t.Logf("rs1 down %v after its HTTP server stopped", (down - stopped).Round(time.Millisecond))
	if err := l.log.await("real server failed its health check", 1, 0); err != nil {
		t.Error(err)
	}
	checkOut(t, l, rs1Addr, action)

	if err := sleepUntil(ctx, begin.Add(down+observe)); err != nil {
		t.Fatal(err)
	}
	started := time.Since(begin)
	if err := l.StartHTTP(1, 80); err != nil {
		t.Fatal(err)
	}
	upAt, err := awaitHealth(l, rs1Addr, true, begin.Add(started+upWithin))
	if err != nil {
		t.Fatal(err)
	}
	up := upAt.Sub(begin)
	t.Logf("rs1 up %v after its HTTP server started again", (up - started).Round(time.Millisecond))
	if err := l.log.await("real server healthy again: back with its configured weight", 1, 0); err != nil {
		t.Error(err)
	}
	if w, ok := stateWeight(t, l, rs1Addr); !ok || w != 1 {
		t.Errorf("rs1 after it recovered: in the table %v, weight %d; want weight 1", ok, w)
	}
	if err := sleepUntil(ctx, begin.Add(up+observe)); err != nil {
		t.Fatal(err)
	}

	// A request may fail only if it was under way while the check had
	// not noticed yet: refused by rs1's kernel, or cut when its server
	// closed. After that rs2 alone answers until rs1 is back, and both
	// share the load again once it is.
	endLoad()
	ended := time.Since(begin)
	// The windows end where the test saw each change: the table changed
	// then at the latest.
	mayFail := func(r request) bool { return r.start < down && r.start+r.took >= stopped }
	windows := []struct {
		name      string
		from, to  time.Duration // of the requests' starts
		wantShare map[string]float64
	}{
		{"before rs1 stopped", 0, stopped, map[string]float64{"rs1": 0.5, "rs2": 0.5}},
		{"while the check noticed", stopped, down, nil},
		{"while rs1 was out", down, started, map[string]float64{"rs1": 0, "rs2": 1}},
		// The check passed some time before awaitHealth saw it.
		{"while rs1 came back", started, up, nil},
		{"after rs1 came back", up, maxDuration, map[string]float64{"rs1": 0.5, "rs2": 0.5}},
	}
	for _, w := range windows {
		served := make(map[string]int)
		var n, refused int
		var cut []string
		for _, run := range endLoad() {
			for _, r := range run {
				switch {
				case r.start < w.from || r.start >= w.to:
				case r.err == nil:
					served[r.server]++
					n++
				case !mayFail(r):
					t.Errorf("%s: request at %v from %v failed after %v: %v", w.name, r.start.Round(time.Millisecond), r.local, r.took.Round(time.Millisecond), r.err)
				case drlab.IsRefused(r.err):
					refused++
				default:
					cut = append(cut, fmt.Sprintf("at %v: %v", r.start.Round(time.Millisecond), r.err))
				}
			}
		}
		t.Logf("%s [%v, %v): %d served %v; failed: %d refused, %d cut %q",
			w.name, w.from.Round(time.Millisecond), min(w.to, ended).Round(time.Millisecond), n, served, refused, len(cut), cut)
		for name, share := range w.wantShare {
			want := share * float64(n)
			if got := float64(served[name]); n == 0 || got < 0.85*want || got > 1.15*want {
				t.Errorf("%s: %s served %d of %d, want %.0f ±15%%", w.name, name, served[name], n, want)
			}
		}
	}
}

// TestPrivilegedHealthDR: a dr-mode check reaches the real server the way
// forwarded connections do, to the VIP at its MAC. When rs1 loses the VIP
// from its lo, the dr check of rs1 on :80 fails and rs1 is quiesced there,
// while the plain TCP check of the same server on :8080 still passes; with
// the VIP back, rs1 is restored on :80.
func TestPrivilegedHealthDR(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "hdr", drlab.Options{Ports: []int{80, 8080}})
	check := fmt.Sprintf("interval: %v, timeout: 300ms, rise: %d, fall: %d", checkInterval, checkRise, checkFall)
	l.startFile(2, fmt.Sprintf(`interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    scheduler: rr
    health_check: {kind: tcp, mode: dr, %[1]s}
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
  - address: 192.0.2.100
    port: 8080
    scheduler: rr
    health_check: {kind: tcp, %[1]s}
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
`, check))
	dr := netip.MustParseAddrPort(rs1 + ":80")
	plain := netip.MustParseAddrPort(rs1 + ":8080")
	c := drlab.HTTPClient(l.Client, requestTimeout)
	servedBy := func(n int) map[string]int {
		t.Helper()
		m := make(map[string]int)
		for _, name := range gets(t, c, "http://192.0.2.100/", n) {
			m[name]++
		}
		return m
	}
	// Both servers passed their checks for a while: no transition yet.
	if err := sleepUntil(context.Background(), time.Now().Add(downWithin)); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.AddrPort{dr, plain} {
		if srv, ok := serverHealth(l, a); !ok || srv.Health == nil || !srv.Health.Up || srv.Health.Transitions != 0 {
			t.Fatalf("%v before the change: in the metrics %v, health %+v; want up, no transition", a, ok, srv.Health)
		}
	}
	if got := servedBy(4); got["rs1"] != 2 || got["rs2"] != 2 {
		t.Errorf("4 requests before the change served %v, want 2 each", got)
	}

	vips := []netip.Addr{drlab.VIP}
	removed := time.Now()
	if err := l.RS[0].Run(func() error { return host.TeardownRealServer(vips) }); err != nil {
		t.Fatal(err)
	}
	// A dr check fails by its timeout (300 ms), not at once as a refused
	// connection does: the last of fall failures may end that much later.
	downAt, err := awaitHealth(l, dr, false, removed.Add(downWithin+300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rs1's dr check failed %v after the VIP left its lo", downAt.Sub(removed).Round(time.Millisecond))
	checkOut(t, l, dr, "quiesce")
	// The plain check had as long to fail, and more: it passes still.
	if err := sleepUntil(context.Background(), removed.Add(downWithin+300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if srv, ok := serverHealth(l, plain); !ok || srv.Health == nil || !srv.Health.Up || srv.Weight != 1 {
		t.Errorf("%v, plain tcp check, with the VIP gone from rs1: in the metrics %v, weight %d, health %+v; want up with weight 1", plain, ok, srv.Weight, srv.Health)
	}
	if got := servedBy(4); got["rs2"] != 4 {
		t.Errorf("4 requests with rs1 quiesced served %v, want rs2 only", got)
	}

	restored := time.Now()
	if err := l.RS[0].Run(func() error { return host.SetupRealServer(vips) }); err != nil {
		t.Fatal(err)
	}
	upAt, err := awaitHealth(l, dr, true, restored.Add(upWithin))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rs1's dr check passed again %v after the VIP was back", upAt.Sub(restored).Round(time.Millisecond))
	if w, ok := stateWeight(t, l, dr); !ok || w != 1 {
		t.Errorf("%v restored: in the table %v, weight %d; want weight 1", dr, ok, w)
	}
	if got := servedBy(4); got["rs1"] != 2 || got["rs2"] != 2 {
		t.Errorf("4 requests after rs1 was restored served %v, want 2 each", got)
	}
}

// checkOut checks that the director took the real server addr out as
// action says, in its table and in its metrics.
func checkOut(t *testing.T, l *lab, addr netip.AddrPort, action string) {
	t.Helper()
	w, inTable := stateWeight(t, l, addr)
	srv, inMetrics := serverHealth(l, addr)
	switch action {
	case "quiesce":
		if !inTable || w != 0 {
			t.Errorf("%v quiesced: in the table %v, weight %d; want weight 0", addr, inTable, w)
		}
		if !inMetrics || srv.Health == nil || srv.Health.Up || srv.Weight != 0 {
			t.Errorf("%v quiesced: metrics %v %+v, health %+v; want weight 0 and down", addr, inMetrics, srv, srv.Health)
		}
	case "remove":
		if inTable || inMetrics {
			t.Errorf("%v removed: in the table %v (weight %d), in the metrics %v; want it in neither", addr, inTable, w, inMetrics)
		}
	}
}

// stateWeight returns the weight of the real server addr of the service
// on VIP:addr.Port() in the director's table, if it is there.
func stateWeight(t *testing.T, l *lab, addr netip.AddrPort) (int32, bool) {
	t.Helper()
	st, err := l.d.State(false)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Config.Service(service.Key{Proto: service.TCP, Addr: drlab.VIP, Port: addr.Port()})
	if s == nil {
		return 0, false
	}
	for _, d := range s.Dests {
		if d.AddrPort() == addr {
			return d.Weight, true
		}
	}
	return 0, false
}

// startFile starts the director as start does, from the udr.yaml yaml.
func (l *lab) startFile(nServers int, yaml string) {
	l.t.Helper()
	path := filepath.Join(l.t.TempDir(), "udr.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.startWith(nServers, director.Config{ConfigFile: path}) // the interface: the file's
}

// serverHealth returns the metrics of the real server addr of the service
// on VIP:port addr.Port(), if the table has it.
func serverHealth(l *lab, addr netip.AddrPort) (metrics.Server, bool) {
	key := service.Key{Proto: service.TCP, Addr: drlab.VIP, Port: addr.Port()}
	for _, s := range l.d.MetricsSnapshot().Services {
		if s.Key != key {
			continue
		}
		for _, srv := range s.Servers {
			if srv.Addr == addr {
				return srv, true
			}
		}
	}
	return metrics.Server{}, false
}

// awaitHealth polls the director's metrics until the check of addr says
// up, or down (a server missing from the table counts as down: removed),
// and returns when it saw it; it gives up after deadline.
func awaitHealth(l *lab, addr netip.AddrPort, up bool, deadline time.Time) (time.Time, error) {
	for {
		asked := time.Now()
		srv, ok := serverHealth(l, addr)
		if ok && srv.Health == nil {
			return time.Time{}, fmt.Errorf("%v has no health check in the metrics", addr)
		}
		if ok && srv.Health.Up == up || !ok && !up {
			return time.Now(), nil
		}
		// Late only if a reading that began after the deadline says so.
		if asked.After(deadline) {
			return time.Time{}, fmt.Errorf("%v not %s by the deadline: in the table %v, health %+v", addr, upDown(up), ok, srv.Health)
		}
		if err := sleepUntil(context.Background(), time.Now().Add(10*time.Millisecond)); err != nil {
			return time.Time{}, err
		}
	}
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// TestPrivilegedHealthInitialDown: with initial_down (keepalived's alpha
// mode) a server starts quiesced and gets traffic only after rise passing
// checks.
func TestPrivilegedHealthInitialDown(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "hinit", drlab.Options{})
	l.startFile(2, `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    scheduler: rr
    health_check: {kind: http, interval: 1s, timeout: 300ms, rise: 2, fall: 2, initial_down: true}
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
`)
	rs1Addr := netip.MustParseAddrPort(rs1 + ":80")
	if w, ok := stateWeight(t, l, rs1Addr); !ok || w != 0 {
		t.Fatalf("rs1 right after start: weight %d (present %v), want 0 until its checks pass", w, ok)
	}
	if srv, ok := serverHealth(l, rs1Addr); !ok || srv.Health == nil || srv.Health.Up {
		t.Fatalf("rs1's health right after start: %+v, want down", srv.Health)
	}
	if _, err := awaitHealth(l, rs1Addr, true, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if w, _ := stateWeight(t, l, rs1Addr); w != 1 {
		t.Fatalf("rs1 after its checks passed: weight %d, want 1", w)
	}
	client := drlab.HTTPClient(l.Client, requestTimeout)
	if _, err := awaitHealth(l, netip.MustParseAddrPort(rs2+":80"), true, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := gets(t, client, "http://192.0.2.100/", 4); !slices.Contains(got, "rs1") || !slices.Contains(got, "rs2") {
		t.Errorf("answers once both passed their checks: %v, want both servers", got)
	}
}
