//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// vrrpTimeout bounds the election and the takeover: keepalived declares a
// silent master down after 3 advert_int (1 s) and its skew, and TCP's
// retransmission timer, doubled at each loss, brings the connections'
// next segment a few seconds later.
const vrrpTimeout = 30 * time.Second

// needKeepalived skips t, or fails it when CI=true, unless keepalived is
// installed.
func needKeepalived(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("keepalived")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("keepalived is not installed (.ci/run installs the Debian package keepalived): %v", err)
		}
		t.Skip("keepalived is not installed (apt-get install keepalived; .ci/run installs it)")
	}
	return path
}

// pairDirector is one director of the pair: udr run and keepalived in the
// director's namespace, each with its own files under dir.
type pairDirector struct {
	name string
	host *netlab.Host
	dir  string
	sock string
	args []string // of udr run
	udr  *restartDaemon
	ka   *keepalivedProc
}

// vrrpState is what keepalived last told the director's udr, as the
// notify script recorded it ("" before the first notification).
func (d *pairDirector) vrrpState() string {
	b, err := os.ReadFile(d.sock + ".vrrp")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// standby reports whether the director's udr is in standby, from its
// listing (-L -n -j); ok is false when udr did not answer.
func (d *pairDirector) standby(t *testing.T) (standby, ok bool) {
	t.Helper()
	r := d.udr.admin(t, nil, "-L", "-n", "-j")
	if r.code != 0 {
		return false, false
	}
	return strings.Contains(r.stdout, `"standby": true`), true
}

// keepalivedProc is keepalived (-n: the parent stays in the foreground, and
// its VRRP child writes vrrpPid).
type keepalivedProc struct {
	cmd     *exec.Cmd
	conf    string
	vrrpPid string
	log     *lineLog
	exited  chan struct{}
}

// childPid returns the VRRP child's pid, if its pid file names a running
// keepalived of this configuration.
func (k *keepalivedProc) childPid() (int, bool) {
	b, err := os.ReadFile(k.vrrpPid)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), k.conf) {
		return 0, false
	}
	return pid, true
}

// kill ends keepalived as a crash would: the parent stopped (so that it
// neither respawns the child nor makes it leave cleanly), SIGKILL to its
// VRRP child, so that no last advertisement leaves, then to the parent.
func (k *keepalivedProc) kill(t *testing.T) {
	t.Helper()
	k.cmd.Process.Signal(syscall.SIGSTOP)
	if pid, ok := k.childPid(); ok {
		syscall.Kill(pid, syscall.SIGKILL)
	} else {
		t.Errorf("keepalived %s: no VRRP child to kill", k.conf)
	}
	k.cmd.Process.Kill()
	select {
	case <-k.exited:
	case <-time.After(daemonStopTimeout):
		t.Errorf("keepalived %s did not exit within %v of SIGKILL", k.conf, daemonStopTimeout)
	}
}

// stop ends keepalived with SIGTERM, as systemctl stop does, and makes sure
// its child is gone too.
func (k *keepalivedProc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-k.exited:
	default:
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.exited:
		case <-time.After(daemonStopTimeout):
			t.Errorf("keepalived %s did not exit within %v of SIGTERM", k.conf, daemonStopTimeout)
			k.cmd.Process.Kill()
			<-k.exited
		}
	}
	deadline := time.Now().Add(daemonStopTimeout)
	for {
		pid, ok := k.childPid()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("keepalived's VRRP child %d outlived its parent: killed", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// distKeepalived returns dist/keepalived/keepalived.conf for director name
// of the pair with priority prio: the example as shipped, with its paths,
// router_id and priority replaced.
func distKeepalived(t *testing.T, name string, prio int, script, sock string) string {
	t.Helper()
	b, err := os.ReadFile("../../dist/keepalived/keepalived.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, r := range [][2]string{
		{"/etc/udr/keepalived/udr-vrrp", script},
		{"/run/udr/udr.sock", sock},
		{"router_id udr1", "router_id " + name},
		{"priority 150", fmt.Sprintf("priority %d", prio)},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("dist/keepalived/keepalived.conf has no %q to replace", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	return conf
}

// startPairDirector starts udr run --standby with rules on host, then
// keepalived with the dist example, both with their files under a
// directory of their own in bin.dir.
func startPairDirector(t *testing.T, bin udrBinary, host *netlab.Host, name string, prio int, rules string, extra ...string) *pairDirector {
	t.Helper()
	d := &pairDirector{name: name, host: host, dir: filepath.Join(bin.dir, name)}
	if err := os.Mkdir(d.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.sock = filepath.Join(d.dir, "udr.sock")
	args := append([]string{"--iface", "eth0", "--rules", rules, "--control", d.sock, "--metrics", "off",
		"--state", "off", "--standby"}, extra...)
	d.args = args
	d.udr = startSyncDaemon(t, host, bin, d.sock, args...)
	waitReachable(t, d.udr.daemon)

	script := filepath.Join(d.dir, "udr-vrrp")
	s, err := os.ReadFile("../../dist/keepalived/udr-vrrp")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, s, 0o755); err != nil {
		t.Fatal(err)
	}
	k := &keepalivedProc{conf: filepath.Join(d.dir, "keepalived.conf"), vrrpPid: filepath.Join(d.dir, "keepalived.vrrp.pid"),
		log: newLineLog(), exited: make(chan struct{})}
	if err := os.WriteFile(k.conf, []byte(distKeepalived(t, name, prio, script, d.sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	k.cmd = host.Command("keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--use-file", k.conf,
		"--pid", filepath.Join(d.dir, "keepalived.pid"), "--vrrp_pid", k.vrrpPid,
		"--checkers_pid", filepath.Join(d.dir, "keepalived.checkers.pid"), "--bfd_pid", filepath.Join(d.dir, "keepalived.bfd.pid"))
	k.cmd.Env = append(os.Environ(), "UDR="+bin.exe)
	k.cmd.Stdout, k.cmd.Stderr = k.log, k.log
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start keepalived: %v", err)
	}
	go func() {
		k.cmd.Wait()
		close(k.exited)
	}()
	d.ka = k
	t.Cleanup(func() {
		k.stop(t)
		if t.Failed() {
			t.Logf("keepalived %s log:\n%s", name, k.log)
		}
	})
	return d
}

// awaitRoles waits until master's keepalived is master and its udr
// active, and backup's keepalived backup and its udr in standby.
func awaitRoles(t *testing.T, master, backup *pairDirector) {
	t.Helper()
	deadline := time.Now().Add(vrrpTimeout)
	for {
		sm, okm := master.standby(t)
		sb, okb := backup.standby(t)
		if master.vrrpState() == "master" && backup.vrrpState() == "backup" && okm && okb && !sm && sb {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s master and %s backup within %v: %s keepalived %q, udr answered %v, standby %v; %s keepalived %q, udr answered %v, standby %v",
				master.name, backup.name, vrrpTimeout, master.name, master.vrrpState(), okm, sm, backup.name, backup.vrrpState(), okb, sb)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitElection waits until one director of the pair is master and the
// other backup (awaitRoles); it returns them.
func awaitElection(t *testing.T, pair []*pairDirector) (master, backup *pairDirector) {
	t.Helper()
	deadline := time.Now().Add(vrrpTimeout)
	for pair[0].vrrpState() != "master" && pair[1].vrrpState() != "master" {
		if time.Now().After(deadline) {
			t.Fatalf("no master within %v: %s %q, %s %q", vrrpTimeout, pair[0].name, pair[0].vrrpState(), pair[1].name, pair[1].vrrpState())
		}
		time.Sleep(100 * time.Millisecond)
	}
	master, backup = pair[0], pair[1]
	if backup.vrrpState() == "master" {
		master, backup = backup, master
	}
	awaitRoles(t, master, backup)
	return master, backup
}

// takeover waits, after the master's death at killed, until every
// connection has exchanged data again through next, the new master, whose
// udr logged its switch to active after its log line mark, and three
// times more. It returns how long after killed that switch, the first
// connection's and the last connection's next echo came.
func takeover(t *testing.T, x *exchanger, conns []*longConn, marks []int64, killed time.Time, next *pairDirector, mark int) (active, first, last time.Duration) {
	t.Helper()
	resumed := make([]bool, len(conns))
	deadline := time.Now().Add(carryOnTimeout)
	for n := 0; n < len(conns); {
		if errs := x.failed(); len(errs) > 0 {
			t.Fatalf("%d of %d connections broke across the takeover; first: %v", len(errs), len(conns), errors.Join(errs...))
		}
		for i, lc := range conns {
			if !resumed[i] && lc.done.Load() > marks[i] {
				resumed[i] = true
				n++
				if n == 1 {
					first = time.Since(killed)
				}
				last = time.Since(killed)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections made no exchange within %v of the master's death", len(conns)-n, len(conns), carryOnTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	line, err := next.udr.log.wait(mark, "active: announcing the VIPs and forwarding", daemonEventTimeout, next.udr.exited)
	if err != nil {
		t.Fatalf("the new master's udr: %v", err)
	}
	if f := strings.Fields(line); len(f) > 0 {
		if at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil {
			active = at.Sub(killed)
		}
	}
	if sb, ok := next.standby(t); !ok || sb {
		t.Errorf("the new master's udr: answered %v, standby %v; want active", ok, sb)
	}
	markDone(conns, marks)
	waitCarryOn(t, x, conns, marks, 3)
	return active, first, last
}

// vrrpLab builds the pair's topology: newDaemonLab's, with pairLab's
// second director, client addresses and echo servers on port.
func vrrpLab(t *testing.T, name string, port int) (*drlab.Lab, *netlab.Host, []netip.Addr) {
	t.Helper()
	lab := newDaemonLab(t, name)
	h2, clients := pairLab(t, lab, port)
	return lab, h2, clients
}

// TestPrivilegedVRRPPair: two udr directors on one segment, each under its
// own keepalived with the example of dist/keepalived (VRRP only, no
// virtual_ipaddress), both started in standby. keepalived elects one and
// its notify script makes that udr active; 20 long connections from 10
// client addresses go through it to an sh service, each exchanging data
// checked end to end every 250 ms. Then the master dies as a machine
// would: SIGKILL to udr, then to keepalived (its VRRP child first, so that
// no last advertisement leaves). The backup's keepalived takes over when
// the VRRP timers run out, its udr becomes active and announces the VIP,
// and every connection goes on with the same real server (sh picks it
// statelessly from the client address for a segment without an entry): no
// reset, no connection lost. Then the first director comes back: it stays
// backup (nopreempt) in standby; and the master's udr alone dies: the
// track script puts its keepalived in FAULT, and the director that came
// back takes over, the connections still going on. Last, udr is restarted
// on the master: it starts in standby and the track script makes it
// active again. The log says how long each takeover took.
func TestPrivilegedVRRPPair(t *testing.T) {
	netlab.Privileged(t)
	needKeepalived(t)
	needFlock(t)
	bin := buildUDR(t)
	lab, h2, clients := vrrpLab(t, "vrrp", 7001)
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.0.2.100:7001 -s sh\n"+
		"-a -t 192.0.2.100:7001 -r 192.0.2.11:7001 -g -w 1\n"+
		"-a -t 192.0.2.100:7001 -r 192.0.2.12:7001 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pair := []*pairDirector{
		startPairDirector(t, bin, lab.Director, "d1", 150, rules),
		startPairDirector(t, bin, h2, "d2", 100, rules),
	}
	master, backup := awaitElection(t, pair)
	t.Logf("elected: %s master, %s backup", master.name, backup.name)

	conns := dialSpread(t, lab, clients, 2, 7001)
	x := exchangeAll(conns)
	defer x.end()
	marks := make([]int64, len(conns))
	markDone(conns, marks)
	waitCarryOn(t, x, conns, marks, 2)

	// The master dies.
	markDone(conns, marks)
	mark := backup.udr.log.len()
	killed := time.Now()
	master.udr.kill(t)
	master.ka.kill(t)
	active, first, last := takeover(t, x, conns, marks, killed, backup, mark)
	t.Logf("master killed: %s's udr active %v after the kill; the connections' first echo %v after the kill, the last's %v",
		backup.name, active.Round(time.Millisecond), first.Round(time.Millisecond), last.Round(time.Millisecond))
	if st := backup.vrrpState(); st != "master" {
		t.Errorf("%s's keepalived last said %q, want master", backup.name, st)
	}

	// The dead director comes back, as backup: nopreempt.
	back := startPairDirector(t, bin, master.host, "d1again", 150, rules)
	awaitRoles(t, backup, back)

	// The master's udr alone dies: its keepalived sees it (track script)
	// and goes to FAULT, which hands over at once.
	markDone(conns, marks)
	mark = back.udr.log.len()
	killed = time.Now()
	backup.udr.kill(t)
	active, first, last = takeover(t, x, conns, marks, killed, back, mark)
	t.Logf("master's udr killed: %s's udr active %v after the kill; the connections' first echo %v after the kill, the last's %v",
		back.name, active.Round(time.Millisecond), first.Round(time.Millisecond), last.Round(time.Millisecond))
	deadline := time.Now().Add(vrrpTimeout)
	for backup.vrrpState() != "fault" {
		if time.Now().After(deadline) {
			t.Fatalf("%s's keepalived, its udr dead, last said %q within %v; want fault", backup.name, backup.vrrpState(), vrrpTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// udr restarted on the master: it starts in standby, and the track
	// script makes it active again.
	markDone(conns, marks)
	back.udr.stop(t)
	restarted := time.Now()
	back.udr = startSyncDaemon(t, back.host, bin, back.sock, back.args...)
	if _, err := back.udr.log.wait(0, "active: announcing the VIPs and forwarding", vrrpTimeout, back.udr.exited); err != nil {
		t.Fatalf("udr restarted on the master: %v", err)
	}
	t.Logf("udr restarted on the master: active again %v after it started", time.Since(restarted).Round(time.Millisecond))
	waitCarryOn(t, x, conns, marks, 3)

	errs := x.end()
	t.Logf("connections lost: %d of %d", len(errs), len(conns))
	if len(errs) > 0 {
		t.Fatalf("connections broke: %v", errors.Join(errs...))
	}
	// Each still reaches its own real server (the echo checks the name).
	exchangeEach(t, conns)
}

// needFlock skips t, or fails it when CI=true, when flock(1), which the
// notify script takes its lock with, is missing.
func needFlock(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("flock(1) is not installed (Debian package util-linux): %v", err)
		}
		t.Skip("flock(1) (util-linux) is not installed")
	}
}

// TestPrivilegedVRRPPairSync is TestPrivilegedVRRPPair's first takeover
// with a wlc service, whose picks depend on the director's own counts, and
// both connection sync daemons on both directors: the backup, in standby,
// receives the master's connections and binds each to the real server the
// master picked; when the master dies (udr, then keepalived, SIGKILLed)
// the backup takes over and every connection goes on through it to its
// real server, none lost.
func TestPrivilegedVRRPPairSync(t *testing.T) {
	netlab.Privileged(t)
	needKeepalived(t)
	needFlock(t)
	bin := buildUDR(t)
	lab, h2, clients := vrrpLab(t, "vrrpsync", 7002)
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.0.2.100:7002 -s wlc\n"+
		"-a -t 192.0.2.100:7002 -r 192.0.2.11:7002 -g -w 1\n"+
		"-a -t 192.0.2.100:7002 -r 192.0.2.12:7002 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pair := []*pairDirector{
		startPairDirector(t, bin, lab.Director, "d1", 150, rules, "--sync", "master,backup"),
		startPairDirector(t, bin, h2, "d2", 100, rules, "--sync", "master,backup"),
	}
	master, backup := awaitElection(t, pair)
	t.Logf("elected: %s master, %s backup", master.name, backup.name)

	conns := dialSpread(t, lab, clients, 2, 7002)
	x := exchangeAll(conns)
	defer x.end()
	marks := make([]int64, len(conns))
	markDone(conns, marks)
	waitCarryOn(t, x, conns, marks, 3)

	// The backup, in standby, has every connection, bound as on the
	// master.
	onMaster := connBindings(master.udr.mustIpvsadm(t, "-L", "-c", "-n"))
	if len(onMaster) != len(conns) {
		t.Fatalf("the master lists %d connections, want %d", len(onMaster), len(conns))
	}
	waitListing(t, backup.udr, "the backup in standby lists the master's connections", vrrpTimeout, func(out string) bool {
		on := connBindings(out)
		for c, bind := range onMaster {
			if boundTo(on[c]) != boundTo(bind) {
				return false
			}
		}
		return true
	}, "-L", "-c", "-n")
	if sb, ok := backup.standby(t); !ok || !sb {
		t.Fatalf("the backup's udr: answered %v, standby %v; want standby", ok, sb)
	}

	markDone(conns, marks)
	mark := backup.udr.log.len()
	killed := time.Now()
	master.udr.kill(t)
	master.ka.kill(t)
	active, first, last := takeover(t, x, conns, marks, killed, backup, mark)
	errs := x.end()
	t.Logf("master killed: %s's udr active %v after the kill; the connections' first echo %v after the kill, the last's %v; connections lost %d of %d",
		backup.name, active.Round(time.Millisecond), first.Round(time.Millisecond), last.Round(time.Millisecond), len(errs), len(conns))
	if len(errs) > 0 {
		t.Fatalf("connections broke: %v", errors.Join(errs...))
	}
	onBackup := connBindings(backup.udr.mustIpvsadm(t, "-L", "-c", "-n"))
	for _, lc := range conns {
		c := lc.c.LocalAddr().String()
		if boundTo(onBackup[c]) != boundTo(onMaster[c]) {
			t.Errorf("connection %d from %s: the new master binds it as %q, the old one did as %q", lc.id, c, onBackup[c], onMaster[c])
		}
		if err := lc.exchange(); err != nil {
			t.Error(err)
		}
	}
}

// boundTo returns the real server of a connBindings value, "" for none.
func boundTo(binding string) string {
	if f := strings.Fields(binding); len(f) > 0 {
		return f[0]
	}
	return ""
}
