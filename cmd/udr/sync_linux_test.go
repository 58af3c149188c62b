//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// The sync test's service: wlc, whose picks depend on the director's own
// counts, over three real servers.
const syncRules = `-A -t 192.0.2.100:7002 -s wlc
-a -t 192.0.2.100:7002 -r 192.0.2.11:7002 -g -w 1
-a -t 192.0.2.100:7002 -r 192.0.2.12:7002 -g -w 1
-a -t 192.0.2.100:7002 -r 192.0.2.13:7002 -g -w 1
`

var (
	director2 = netip.MustParsePrefix("192.0.2.3/24")
	vipMACA   = net.HardwareAddr{0x02, 0, 0, 0, 0x0a, 0x01}
	vipMACB   = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x01}
)

// startSyncDaemon is startRestartDaemon on host h.
func startSyncDaemon(t *testing.T, h *netlab.Host, bin udrBinary, sock string, args ...string) *restartDaemon {
	t.Helper()
	d := spawnDaemon(t, h, bin, sock, append([]string{bin.exe, "run"}, args...)...)
	rd := &restartDaemon{daemon: d}
	t.Cleanup(func() {
		rd.stop(t)
		if t.Failed() {
			t.Logf("udr run on %s %s log:\n%s", h.Name(), strings.Join(args, " "), d.log)
		}
	})
	if _, err := d.log.wait(0, "udr running", daemonStartTimeout, d.exited); err != nil {
		t.Fatalf("udr run on %s: %v\n%s", h.Name(), err, d.log)
	}
	return rd
}

// pairLab adds to lab a second director on the segment, at director2,
// and restartClients client addresses (addClients), and runs echoServer on
// port in every real server. It returns the second director and the client
// addresses.
func pairLab(t *testing.T, lab *drlab.Lab, port int) (*netlab.Host, []netip.Addr) {
	t.Helper()
	h2, err := lab.AddHost("director2")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(h2, "eth0", director2); err != nil {
		t.Fatal(err)
	}
	clients := addClients(t, lab)
	for i, rs := range lab.RS {
		echoServer(t, rs, fmt.Sprintf("rs%d", i+1), port)
	}
	return h2, clients
}

// syncMetrics is where B serves its metrics, in its own namespace.
const syncMetrics = "127.0.0.1:9780"

// syncScrape returns the udr_sync_* samples of the metrics h serves at
// syncMetrics, by name and labels.
func syncScrape(t *testing.T, h *netlab.Host) map[string]float64 {
	t.Helper()
	var body []byte
	err := h.Run(func() error {
		// Dialled here, on the thread in h's namespace (http.Client
		// dials from another goroutine, which may run elsewhere).
		c, err := net.DialTimeout("tcp", syncMetrics, 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: udr\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		t.Fatalf("scrape %s: %v", h.Name(), err)
	}
	m := make(map[string]float64)
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "udr_sync_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// kill ends the daemon with SIGKILL, as a crash would.
func (d *restartDaemon) kill(t *testing.T) {
	d.once.Do(func() {
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
	})
}

// connBindings returns, from ipvsadm -L -c -n, each connection's real
// server and state by client address and port.
func connBindings(listing string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "TCP" {
			m[f[3]] = f[5] + " " + f[2]
		}
	}
	return m
}

// waitListing polls ipvsadm args on d until ok accepts its output.
func waitListing(t *testing.T, d *restartDaemon, what string, timeout time.Duration, ok func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := d.mustIpvsadm(t, args...)
		if ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last ipvsadm %s:\n%s", what, timeout, strings.Join(args, " "), out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPrivilegedSyncFailover: two directors on one segment, A running the
// master and backup sync daemons, B the backup and master; 20 long TCP
// connections through A's wlc service. B learns them from A's sync
// messages, bound to the same real servers with the same counts; then A is
// killed and the client's neighbour entry for the VIP moves to B (as a
// VRRP switch-over's gratuitous ARP would): every connection carries on
// through B to the real server it had, with no reset, and new ones are
// served. A started again sends a hello, B answers with its table, and A
// lists the 20 connections.
func TestPrivilegedSyncFailover(t *testing.T) { syncFailover(t, false) }

// TestPrivilegedSyncFailoverUnicast is TestPrivilegedSyncFailover with no
// multicast group: both directors list both as unicast peers (each leaves
// itself out).
func TestPrivilegedSyncFailoverUnicast(t *testing.T) { syncFailover(t, true) }

func syncFailover(t *testing.T, unicast bool) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	name := "sync"
	if unicast {
		name = "syncu"
	}
	lab := newLab(t, name, drlab.Options{RealServers: 3})
	hostB, clients := pairLab(t, lab, 7002)
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(syncRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sockA, sockB := filepath.Join(bin.dir, "a.sock"), filepath.Join(bin.dir, "b.sock")
	args := func(sock string, mac net.HardwareAddr, workers string) []string {
		metrics := "off"
		if sock == sockB {
			metrics = syncMetrics // in B's namespace
		}
		a := []string{"--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", metrics, "--state", "off",
			"--vip-mac", mac.String(), "--workers", workers, "--sync", "master,backup"}
		if unicast {
			a = append(a, "--sync-group", "none", "--sync-peers", drlab.Director.Addr().String()+","+director2.Addr().String())
		}
		return a
	}
	neighbour := func(mac net.HardwareAddr) {
		t.Helper()
		if out, err := lab.Client.Command("ip", "neigh", "replace", drlab.VIP.String(), "lladdr", mac.String(),
			"dev", "eth0", "nud", "permanent").CombinedOutput(); err != nil {
			t.Fatalf("ip neigh replace %s: %v\n%s", mac, err, out)
		}
	}
	// The client reaches the VIP through A; B runs beside it.
	neighbour(vipMACA)
	a := startSyncDaemon(t, lab.Director, bin, sockA, args(sockA, vipMACA, "2")...)
	b := startSyncDaemon(t, hostB, bin, sockB, args(sockB, vipMACB, "1")...)
	for _, d := range []*restartDaemon{a, b} {
		for range 3 {
			if _, err := d.log.wait(0, "real server reachable", daemonEventTimeout, d.exited); err != nil {
				t.Fatal(err)
			}
		}
	}
	group := "group=224.0.0.81, "
	if unicast {
		group = ""
	}
	want := "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, " + group + "port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth0, syncid=0, maxlen=1472, " + group + "port=8848, ttl=1)\n"
	if got := b.mustIpvsadm(t, "-L", "--daemon"); got != want {
		t.Errorf("ipvsadm -L --daemon on B:\n%swant\n%s", got, want)
	}

	conns := dialSpread(t, lab, clients, 3, 7002)
	x := exchangeAll(conns)
	defer x.end()
	marks := make([]int64, len(conns))
	markDone(conns, marks)
	waitCarryOn(t, x, conns, marks, 3)

	// B learns every connection, bound to the server A picked, and counts
	// them as A does.
	onA := connBindings(a.mustIpvsadm(t, "-L", "-c", "-n"))
	if len(onA) != len(conns) {
		t.Fatalf("A lists %d connections, want %d", len(onA), len(conns))
	}
	syncStart := time.Now()
	waitListing(t, b, "B lists A's connections", 30*time.Second, func(out string) bool {
		onB := connBindings(out)
		for c, bind := range onA {
			if onB[c] != bind {
				return false
			}
		}
		return true
	}, "-L", "-c", "-n")
	t.Logf("B had every connection %v after A listed them", time.Since(syncStart).Round(time.Millisecond))
	listA := a.mustIpvsadm(t, "-L", "-n")
	listB := waitListing(t, b, "B counts the connections as A", 10*time.Second, func(out string) bool { return out == listA }, "-L", "-n")
	t.Logf("ipvsadm -L -n on B before the failover:\n%s", listB)

	// A dies; the VIP's neighbour entry moves to B.
	markDone(conns, marks)
	killed := time.Now()
	a.kill(t)
	neighbour(vipMACB)
	waitCarryOn(t, x, conns, marks, 4)
	t.Logf("every connection made 4 exchanges through B %v after A was killed", time.Since(killed).Round(time.Millisecond))
	if errs := x.failed(); len(errs) > 0 {
		t.Fatalf("%d connections lost: %v", len(errs), errors.Join(errs...))
	}
	onB := connBindings(b.mustIpvsadm(t, "-L", "-c", "-n"))
	for _, lc := range conns {
		c := lc.c.LocalAddr().String()
		if got, want := strings.Fields(onB[c]+" "), strings.Fields(onA[c]); len(got) == 0 || got[0] != want[0] {
			t.Errorf("connection %d from %s: B binds it as %q, A did as %q", lc.id, c, onB[c], onA[c])
		}
	}
	// New connections through B.
	fresh := dialLong(t, lab, clients[:1], 7002)
	for _, lc := range fresh {
		if err := lc.exchange(); err != nil {
			t.Errorf("a new connection through B: %v", err)
		}
	}
	for _, lc := range fresh {
		lc.c.Close()
	}

	// A comes back: its hello makes B send the table.
	restart := time.Now()
	a2 := startSyncDaemon(t, lab.Director, bin, sockA, args(sockA, vipMACA, "2")...)
	line, err := a2.log.wait(0, "resync: received the peers' connection table", 30*time.Second, a2.exited)
	if err != nil {
		t.Fatalf("A after its restart: %v", err)
	}
	took := "?"
	if m := regexp.MustCompile(`took=(\S+)`).FindStringSubmatch(line); m != nil {
		took = m[1]
	}
	onB = connBindings(b.mustIpvsadm(t, "-L", "-c", "-n"))
	waitListing(t, a2, "A lists B's connections after its restart", 10*time.Second, func(out string) bool {
		onA2 := connBindings(out)
		for _, lc := range conns {
			c := lc.c.LocalAddr().String()
			if onA2[c] == "" || onA2[c] != onB[c] {
				return false
			}
		}
		return true
	}, "-L", "-c", "-n")
	if _, err := b.log.wait(0, "resync: sent the connection table to a peer that started", daemonEventTimeout, b.exited); err != nil {
		t.Errorf("B: %v", err)
	}
	t.Logf("resync: A listed the %d connections %v after its start; its log: took=%s", len(conns),
		time.Since(restart).Round(time.Millisecond), took)

	markDone(conns, marks)
	waitCarryOn(t, x, conns, marks, 2)
	if errs := x.end(); len(errs) > 0 {
		t.Fatalf("connections broke: %v", errors.Join(errs...))
	}
	lost := exchangeEach(t, conns)
	t.Logf("connections lost: %d of %d", lost, len(conns))
	// B's metrics count what it sent and received.
	m := syncScrape(t, hostB)
	for name, min := range map[string]float64{
		`udr_sync_daemon_running{state="master"}`:       1,
		`udr_sync_daemon_running{state="backup"}`:       1,
		`udr_sync_messages_total{direction="received"}`: 1, // A's
		`udr_sync_messages_total{direction="sent"}`:     1, // the resync at least
		`udr_sync_hellos_total{direction="received"}`:   1,
		`udr_sync_resyncs_total`:                        1,
		`udr_sync_resync_connections_total`:             float64(len(conns)),
	} {
		if m[name] < min {
			t.Errorf("B's metric %s = %v, want at least %v", name, m[name], min)
		}
	}
	if n := m[`udr_sync_dropped_total{reason="decode"}`]; n != 0 {
		t.Errorf("B dropped %v messages as malformed", n)
	}
	if got := b.mustIpvsadm(t, "--stop-daemon", "master"); got != "" {
		t.Errorf("--stop-daemon master printed %q", got)
	}
	if r := b.ipvsadm(t, "", "--stop-daemon", "master"); r.code != 255 || r.stderr != "No daemon is running\n" {
		t.Errorf("a second --stop-daemon master: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestPrivilegedSyncReload: the sync block of udr.yaml starts the daemons
// at udr run; a reload that changes it starts, stops and restarts the
// daemons whose options changed, keeping the connection table's entries; a
// reload that leaves it as it was leaves the daemons started or stopped
// with udr admin as they are; an invalid block is refused with its field.
func TestPrivilegedSyncReload(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "syncrl")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "udr.yaml")
	write := func(sync string) {
		t.Helper()
		web := "  - {address: 192.0.2.100, port: 80, scheduler: wrr, servers: [{address: 192.0.2.11}]}\n"
		if err := os.WriteFile(conf, []byte(reloadConfig(sock, web)+"sync: "+sync+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reload := func() result {
		t.Helper()
		return runCommand(t, "", nil, nil, bin.exe, "admin", "--control", sock, "--reload")
	}
	const (
		master = "master sync daemon (mcast=eth0, syncid=%d, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
		backup = "backup sync daemon (mcast=eth0, syncid=%d, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	)
	write("{backup: true}")
	d := startDaemon(t, lab, bin, sock, "--config", conf)
	daemons := func() string { t.Helper(); return d.mustIpvsadm(t, "-L", "--daemon") }
	if got, want := daemons(), fmt.Sprintf(backup, 0); got != want {
		t.Fatalf("daemons at start:\n%swant\n%s", got, want)
	}
	// A changed block: the backup restarts with syncid 3, a master starts.
	write("{master: true, backup: true, syncid: 3}")
	if r := reload(); r.code != 0 {
		t.Fatalf("reload: exit %d: %s", r.code, r.stderr)
	}
	if got, want := daemons(), fmt.Sprintf(master, 3)+fmt.Sprintf(backup, 3); got != want {
		t.Errorf("daemons after the reload:\n%swant\n%s", got, want)
	}
	// udr admin stops the master; a reload of the same block leaves it so.
	d.mustIpvsadm(t, "--stop-daemon", "master")
	if r := reload(); r.code != 0 {
		t.Fatalf("reload: exit %d: %s", r.code, r.stderr)
	}
	if got, want := daemons(), fmt.Sprintf(backup, 3); got != want {
		t.Errorf("daemons after a reload of the same block:\n%swant\n%s", got, want)
	}
	// An invalid block changes nothing.
	write("{master: true, ttl: 0}")
	if r := reload(); r.code != 1 || !strings.Contains(r.stderr, "sync.ttl: 0 out of range 1..255") {
		t.Errorf("reload of an invalid sync block: exit %d, stderr %q", r.code, r.stderr)
	}
	if got, want := daemons(), fmt.Sprintf(backup, 3); got != want {
		t.Errorf("daemons after a refused reload:\n%swant\n%s", got, want)
	}
	// No block: every daemon stops.
	write("{}")
	if r := reload(); r.code != 0 {
		t.Fatalf("reload: exit %d: %s", r.code, r.stderr)
	}
	if got := daemons(); got != "" {
		t.Errorf("daemons after a reload with none:\n%s", got)
	}
	for _, line := range []string{`msg="sync daemon started" state=backup mcast=eth0 syncid=0`, `msg="sync daemon stopped" state=backup mcast=eth0 syncid=0`,
		`msg="sync daemon started" state=master mcast=eth0 syncid=3`, `msg="sync daemon stopped" state=backup mcast=eth0 syncid=3`} {
		if !strings.Contains(d.log.String(), line) {
			t.Errorf("no %q in the log", line)
		}
	}
}
