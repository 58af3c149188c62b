//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
)

// The BGP labs: drlab's routed topology (a client behind a router, the
// router, director and real servers on one segment), with FRR's zebra and
// bgpd in the router and one or two udr directors that announce bgpVIP,
// an address off the segment that the router reaches only through them.
var (
	bgpVIP       = netip.MustParseAddr("203.0.113.10")
	bgpRouterASN = 65000
	bgpUDRASN    = 65001
)

// bgpDirectorAddr returns director i's address (i from 1): 192.0.2.2 is
// drlab's director, the others come after it.
func bgpDirectorAddr(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 1+i))
}

// needFRR skips t (fails it under CI) without FRR's zebra, bgpd and vtysh.
func needFRR(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/bin/vtysh"} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v (.ci/run installs frr)", p, err)
			}
			t.Skipf("FRR is not installed (%s): apt-get install frr", p)
		}
	}
	if _, err := user.Lookup("frr"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no frr user (the Debian package frr, which .ci/run installs, creates it): %v", err)
		}
		t.Skipf("no frr user: %v", err)
	}
}

// bgpLab is the topology with n directors.
type bgpLab struct {
	*drlab.Lab
	directors []*netlab.Host
	frrDir    string // FRR's configuration, sockets and logs
}

// newBGPLab builds the lab with n directors and three real servers that
// hold bgpVIP on lo and serve echo on echoPort, and starts FRR in the
// router with every director as a passive neighbour (udr connects),
// keepalive 1 s and hold time 3 s, ECMP over up to 8 paths with the
// layer-4 multipath hash.
func newBGPLab(t *testing.T, name string, n int) *bgpLab {
	t.Helper()
	netlab.Privileged(t)
	needFRR(t)
	lab := newLab(t, name, drlab.Options{RealServers: 3, Routed: true})
	l := &bgpLab{Lab: lab, directors: []*netlab.Host{lab.Director}}
	for i := 2; i <= n; i++ {
		h, err := lab.AddHost(fmt.Sprintf("director%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.Connect(h, "eth0", bgpDirectorAddr(i)); err != nil {
			t.Fatal(err)
		}
		l.directors = append(l.directors, h)
	}
	for i, rs := range lab.RS {
		if err := rs.Run(func() error { return host.SetupRealServer([]netip.Addr{drlab.VIP, bgpVIP}) }); err != nil {
			t.Fatalf("rs%d: %v", i+1, err)
		}
		startEcho(t, rs)
	}
	if err := lab.Router.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/fib_multipath_hash_policy", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	l.startFRR(t, n)
	return l
}

// frrConf is the router's FRR configuration for n directors.
func frrConf(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname router\nlog stdout informational\n!\nrouter bgp %d\n", bgpRouterASN)
	fmt.Fprintf(&b, " bgp router-id %s\n no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n", drlab.Router.Addr())
	for i := 1; i <= n; i++ {
		a := bgpDirectorAddr(i).Addr()
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s passive\n neighbor %s timers 1 3\n", a, bgpUDRASN, a, a)
	}
	b.WriteString(" address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n")
	return b.String()
}

// startFRR runs zebra and bgpd in the router's namespace, in the
// foreground, with their files in a directory of their own; the lab's
// Close kills them if the test's cleanup did not.
func (l *bgpLab) startFRR(t *testing.T, n int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "udr-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	conf := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(conf, []byte(frrConf(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The daemons run as frr: the directory is theirs.
	for _, p := range []string{dir, conf} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l.frrDir = dir
	for _, daemon := range []string{"zebra", "bgpd"} {
		log, err := os.Create(filepath.Join(dir, daemon+".out"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { log.Close() })
		cmd := l.Router.Command("/usr/lib/frr/"+daemon, "-f", conf, "-i", filepath.Join(dir, daemon+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "--log", "stdout")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", daemon, err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("%s output:\n%s", daemon, out)
			}
		})
		if daemon == "zebra" {
			// bgpd connects to zebra's socket at start.
			waitUntil(t, "zebra's socket", 20*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(dir, "zserv.api"))
				return err == nil
			})
		}
	}
	waitUntil(t, "bgpd's vty socket", 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "bgpd.vty"))
		return err == nil
	})
}

// vtysh runs an FRR show command in the router.
func (l *bgpLab) vtysh(t *testing.T, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.Router.Namespace(), "vtysh", "--vty_socket", l.frrDir, "-c", command).CombinedOutput()
	if err != nil {
		t.Fatalf("vtysh -c %q: %v\n%s", command, err, out)
	}
	return string(out)
}

// vipGateways returns the next hops of the router's kernel route to
// bgpVIP (zebra installs bgpd's best paths), sorted; none when it has no
// such route.
func (l *bgpLab) vipGateways(t *testing.T) []netip.Addr { return l.gateways(t, bgpVIP) }

// gateways returns the next hops of the router's kernel route to vip/32.
func (l *bgpLab) gateways(t *testing.T, vip netip.Addr) []netip.Addr {
	t.Helper()
	dst := &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(32, 32)}
	routes, err := l.Router.Netlink().RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
	if err != nil {
		t.Fatalf("router's routes: %v", err)
	}
	var gws []netip.Addr
	for _, r := range routes {
		if r.Gw != nil {
			a, _ := netip.AddrFromSlice(r.Gw.To4())
			gws = append(gws, a)
		}
		for _, nh := range r.MultiPath {
			a, _ := netip.AddrFromSlice(nh.Gw.To4())
			gws = append(gws, a)
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return gws
}

// waitGateways waits for the router's route to bgpVIP to have exactly the
// directors want as next hops (none: no route), and returns how long it
// took.
func (l *bgpLab) waitGateways(t *testing.T, what string, timeout time.Duration, want ...int) time.Duration {
	t.Helper()
	var addrs []netip.Addr
	for _, i := range want {
		addrs = append(addrs, bgpDirectorAddr(i).Addr())
	}
	start := time.Now()
	var got []netip.Addr
	for {
		if got = l.vipGateways(t); slices.Equal(got, addrs) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: the router's route to %s goes via %v after %v, want %v\n%s", what, bgpVIP, got, timeout, addrs, l.vtysh(t, "show bgp ipv4 unicast"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitUntil polls cond every 50 ms for up to timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bgpConfig is director i's udr.yaml: a service with scheduler sched and
// flags (ipvsadm -b) on the echo port of bgpVIP over the three real
// servers, and a bgp section that peers with the router.
func bgpConfig(dir string, i int, sched, flags string, minHealthy int) string {
	return fmt.Sprintf(`interface: eth0
control_socket: %s
state_file: "off"
services:
  - address: %s
    port: %d
    scheduler: %s
    flags: [%s]
    servers: [{address: 192.0.2.11}, {address: 192.0.2.12}, {address: 192.0.2.13}]
bgp:
  asn: %d
  router_id: %s
  min_healthy: %d
  drain: 3s
  peers:
    - {address: %s, asn: %d, hold_time: 3s, keepalive: 1s, connect_retry: 1s}
`, filepath.Join(dir, fmt.Sprintf("udr%d.sock", i)), bgpVIP, echoPort, sched, flags, bgpUDRASN, bgpDirectorAddr(i).Addr(),
		minHealthy, drlab.Router.Addr(), bgpRouterASN)
}

// bgpDaemon is `udr run --config` in one director's namespace.
type bgpDaemon struct {
	*daemon
}

// startBGPDaemon runs udr with the config file in h's namespace and waits
// for its "udr running" line. The test's cleanup kills it if it still runs.
func startBGPDaemon(t *testing.T, h *netlab.Host, bin udrBinary, config, sock string) *bgpDaemon {
	t.Helper()
	d := &bgpDaemon{daemon: spawnDaemon(t, h, bin, sock, bin.exe, "run", "--config", config)}
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("udr run in %s log:\n%s", h.Name(), d.log)
		}
	})
	if _, err := d.log.wait(0, "udr running", daemonStartTimeout, d.exited); err != nil {
		t.Fatalf("udr run in %s: %v\n%s", h.Name(), err, d.log)
	}
	return d
}

// admin runs `udr admin` against the daemon.
func (d *bgpDaemon) admin(t *testing.T, args ...string) result {
	t.Helper()
	return runCommand(t, "", nil, nil, d.bin.exe, append([]string{"admin", "--control", d.sock}, args...)...)
}

// metricsClient is an HTTP client whose connections are made from h's
// namespace (where udr's metrics listen on daemonMetrics).
func metricsClient(h *netlab.Host) *http.Client { return drlab.HTTPClient(h, commandTimeout) }
