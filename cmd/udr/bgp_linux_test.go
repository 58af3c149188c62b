//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/bgp"
)

// bgpRouteTimeout bounds the wait for a route change to reach the router's
// kernel: udr sends it at once, FRR installs it within a second.
const bgpRouteTimeout = 30 * time.Second

// TestPrivilegedBGPFRR peers udr with FRR's bgpd (after checking that udr
// refuses to start with BGP while IP forwarding is on): the router's kernel
// routes the VIP via the director once udr announced it; a real server
// set to weight 0 (below min_healthy) withdraws it and weight 1 brings it
// back, and so do a failed health check and its recovery; the state shows in udr admin -L --bgp (and -j) and in the
// metrics; SIGTERM withdraws the route while udr still forwards (drain),
// and only then does udr stop. A standby director withdraws it too, and
// a reload that adds or removes a VIP announces or withdraws it.
func TestPrivilegedBGPFRR(t *testing.T) {
	l := newBGPLab(t, "bgpfrr", 1)
	bin := buildUDR(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "udr.yaml")
	sock := filepath.Join(dir, "udr1.sock")
	// A TCP health check on the echo port, quick to fail and to recover.
	base := strings.Replace(bgpConfig(dir, 1, "mh", "", 3), "    flags: []\n",
		"    flags: []\n    health_check: {kind: tcp, interval: 500ms, timeout: 400ms, rise: 1, fall: 2}\n", 1)
	if err := os.WriteFile(config, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	// With forwarding on, the director's kernel would route the frames
	// the router sends to its MAC: udr refuses to start.
	fwd := "/proc/sys/net/ipv4/conf/eth0/forwarding"
	setFwd := func(v string) {
		if err := l.directors[0].Run(func() error { return os.WriteFile(fwd, []byte(v), 0o644) }); err != nil {
			t.Fatal(err)
		}
	}
	setFwd("1")
	r := runCommand(t, "", nil, nil, "ip", "netns", "exec", l.directors[0].Namespace(), bin.exe, "run", "--config", config)
	if want := "bgp with forwarding on for eth0"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("udr run with forwarding on: exit %d, stderr %q; want a refusal naming %q", r.code, r.stderr, want)
	}
	setFwd("0")
	d := startBGPDaemon(t, l.directors[0], bin, config, sock)

	took := l.waitGateways(t, "announced", bgpRouteTimeout, 1)
	t.Logf("the router routes %s via the director %v after udr started", bgpVIP, took.Round(time.Millisecond))
	for _, line := range []string{"bgp speaker started", "bgp peer up", "bgp route announced"} {
		if _, err := d.log.wait(0, line, daemonEventTimeout, d.exited); err != nil {
			t.Error(err)
		}
	}
	r = d.admin(t, "-L", "--bgp")
	if r.code != 0 {
		t.Fatalf("udr admin -L --bgp: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("udr admin -L --bgp:\n%s", r.stdout)
	for _, want := range []string{
		"Peer 192.0.2.1 AS 65000 state Established up 00:0",
		"Route 203.0.113.10/32 announced real servers available: tcp 203.0.113.10:7 3 of 3\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("udr admin -L --bgp lacks %q", want)
		}
	}
	r = d.admin(t, "-L", "--bgp", "-j")
	var st bgp.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("udr admin -L --bgp -j: exit %d, %v: %s", r.code, err, r.stdout)
	}
	if len(st.Peers) != 1 || !st.Peers[0].Up() || len(st.Routes) != 1 || !st.Routes[0].Announced || st.Announcements != 1 {
		t.Errorf("udr admin -L --bgp -j: %+v", st)
	}
	m := scrape(t, metricsClient(l.directors[0]))
	for name, want := range map[string]float64{
		`udr_bgp_peer_up{peer="192.0.2.1"}`:                 1,
		`udr_bgp_route_announced{prefix="203.0.113.10/32"}`: 1,
		`udr_bgp_route_changes_total{change="announce"}`:    1,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("metric %s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	// Two of three real servers available, min_healthy 3: withdrawn.
	if r := d.admin(t, "-e", "-t", "203.0.113.10:7", "-r", "192.0.2.11", "-w", "0"); r.code != 0 {
		t.Fatalf("udr admin -e -w 0: exit %d: %s", r.code, r.stderr)
	}
	l.waitGateways(t, "withdrawn after a weight 0", bgpRouteTimeout)
	r = d.admin(t, "-L", "--bgp")
	if want := "Route 203.0.113.10/32 withdrawn tcp 203.0.113.10:7: 2 of 3 real servers available, min_healthy 3\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("udr admin -L --bgp after -w 0:\n%s\nlacks %q", r.stdout, want)
	}
	if got := scrape(t, metricsClient(l.directors[0]))[`udr_bgp_route_announced{prefix="203.0.113.10/32"}`]; got != 0 {
		t.Errorf("udr_bgp_route_announced after the withdrawal = %v, want 0", got)
	}
	if r := d.admin(t, "-e", "-t", "203.0.113.10:7", "-r", "192.0.2.11", "-w", "1"); r.code != 0 {
		t.Fatalf("udr admin -e -w 1: exit %d: %s", r.code, r.stderr)
	}
	l.waitGateways(t, "announced again", bgpRouteTimeout, 1)

	// A real server that fails its health check (its link down) leaves
	// two of three: withdrawn; back when it recovers.
	rs3 := l.RS[2]
	link, err := rs3.Netlink().LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := rs3.Netlink().LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	l.waitGateways(t, "withdrawn after a failed health check", bgpRouteTimeout)
	if _, err := d.log.wait(0, "real server failed its health check", daemonEventTimeout, d.exited); err != nil {
		t.Error(err)
	}
	if err := rs3.Netlink().LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	l.waitGateways(t, "announced after the health check passed again", bgpRouteTimeout, 1)

	// A reload that adds a VIP announces it; one that removes it
	// withdraws it.
	vip2 := netip.MustParseAddr("203.0.113.11")
	second := "  - {address: 203.0.113.11, port: 80, scheduler: mh, servers: [{address: 192.0.2.11}, {address: 192.0.2.12}, {address: 192.0.2.13}]}\n"
	withSecond := strings.Replace(base, "bgp:\n", second+"bgp:\n", 1)
	for _, step := range []struct {
		config string
		want   []netip.Addr
	}{{withSecond, []netip.Addr{bgpDirectorAddr(1).Addr()}}, {base, nil}} {
		if err := os.WriteFile(config, []byte(step.config), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := d.admin(t, "--reload"); r.code != 0 {
			t.Fatalf("udr admin --reload: exit %d: %s", r.code, r.stderr)
		}
		waitUntil(t, fmt.Sprintf("the router's route to %s via %v", vip2, step.want), bgpRouteTimeout, func() bool {
			return slices.Equal(l.gateways(t, vip2), step.want)
		})
		if got := l.vipGateways(t); len(got) != 1 {
			t.Errorf("after a reload the router routes %s via %v, want the director", bgpVIP, got)
		}
	}

	// A standby director draws no flows: withdrawn, and back when active.
	if r := d.admin(t, "--standby"); r.code != 0 {
		t.Fatalf("udr admin --standby: exit %d: %s", r.code, r.stderr)
	}
	l.waitGateways(t, "withdrawn in standby", bgpRouteTimeout)
	if r := d.admin(t, "--active"); r.code != 0 {
		t.Fatalf("udr admin --active: exit %d: %s", r.code, r.stderr)
	}
	l.waitGateways(t, "announced when active", bgpRouteTimeout, 1)

	// SIGTERM: the route goes first, while udr still runs (drain 3s).
	from := d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.waitGateways(t, "withdrawn at SIGTERM", bgpRouteTimeout)
	select {
	case <-d.exited:
		t.Errorf("udr exited before the router lost the route: no drain")
	default:
	}
	select {
	case <-d.exited:
	case <-time.After(daemonStopTimeout + 3*time.Second):
		t.Fatalf("udr did not exit after SIGTERM and its drain")
	}
	if d.err != nil {
		t.Errorf("udr run after SIGTERM: %v", d.err)
	}
	lines := strings.Split(d.log.String(), "\n")[from:]
	w := slices.IndexFunc(lines, func(s string) bool { return strings.Contains(s, "bgp routes withdrawn") })
	stop := slices.IndexFunc(lines, func(s string) bool { return strings.Contains(s, "udr stopped") })
	if w < 0 || stop < 0 || w > stop {
		t.Errorf("want \"bgp routes withdrawn\" after SIGTERM, before \"udr stopped\": lines %d and %d", w, stop)
	}
}
