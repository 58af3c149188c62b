//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// startHostDaemon starts `udr run ARGS...` as startDaemon does, with env
// added to its environment (through env(1), which execs udr: the pid stays
// udr's). The test may stop it itself with stop.
func startHostDaemon(t *testing.T, lab *drlab.Lab, bin udrBinary, sock string, env []string, args ...string) *daemon {
	t.Helper()
	var wrap []string
	if len(env) > 0 {
		wrap = append([]string{"env"}, env...)
	}
	return startDaemonWith(t, lab, bin, sock, wrap, args...)
}

// needEthtool skips t, or fails it when CI=true, unless ethtool is
// installed: the offload test reads the features with it, independently of
// udr's own ioctl code.
func needEthtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ethtool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ethtool is not installed (.ci/run installs the Debian package ethtool): %v", err)
		}
		t.Skipf("skipping: ethtool is not installed (apt-get install ethtool): %v", err)
	}
}

// ethtoolFeatures returns `ethtool -k IFACE` in h's namespace: every
// feature (the legacy group names such as tcp-segmentation-offload too)
// and whether it is on.
func ethtoolFeatures(t *testing.T, h *netlab.Host, iface string) map[string]bool {
	t.Helper()
	out, err := h.Command("ethtool", "-k", iface).Output()
	if err != nil {
		t.Fatalf("ethtool -k %s in %s: %v", iface, h.Name(), err)
	}
	m := make(map[string]bool)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ": ")
		if !ok {
			continue
		}
		m[name] = strings.HasPrefix(value, "on")
	}
	if len(m) < 10 {
		t.Fatalf("ethtool -k %s printed %d features:\n%s", iface, len(m), out)
	}
	return m
}

// TestPrivilegedOffloadsRestored: udr run turns off GRO, TSO and GSO as
// `ethtool -k` shows them (every tcp segmentation feature, so that
// tcp-segmentation-offload reads off), its log names exactly the features
// that went off, and after SIGTERM every feature is as it was before.
func TestPrivilegedOffloadsRestored(t *testing.T) {
	netlab.Privileged(t)
	needEthtool(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "offl")
	if out, err := lab.Director.Command("ethtool", "-K", "eth0", "gro", "on").CombinedOutput(); err != nil {
		t.Fatalf("ethtool -K eth0 gro on: %v\n%s", err, out)
	}
	before := ethtoolFeatures(t, lab.Director, "eth0")
	for _, f := range []string{"generic-receive-offload", "tcp-segmentation-offload", "generic-segmentation-offload"} {
		if !before[f] {
			t.Fatalf("%s is off on the lab's veth before udr starts; the test needs it on", f)
		}
	}
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startHostDaemon(t, lab, bin, sock, nil, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", "off")

	during := ethtoolFeatures(t, lab.Director, "eth0")
	for _, f := range []string{"generic-receive-offload", "tcp-segmentation-offload", "generic-segmentation-offload", "large-receive-offload"} {
		if during[f] {
			t.Errorf("while udr runs, ethtool -k shows %s: on, want off", f)
		}
	}
	// The log names the features that went off, as ethtool shows them.
	line, err := d.log.wait(0, "turned off offloads", daemonEventTimeout, d.exited)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`features=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("log line %q names no features", line)
	}
	logged := strings.Split(m[1], ",")
	var wentOff []string
	for f, on := range before {
		// tcp-segmentation-offload is ethtool's summary of the
		// tx-tcp*-segmentation features listed under it.
		if on && !during[f] && f != "tcp-segmentation-offload" {
			wentOff = append(wentOff, f)
		}
	}
	slices.Sort(logged)
	slices.Sort(wentOff)
	if diff := cmp.Diff(wentOff, logged); diff != "" {
		t.Errorf("features the log says udr turned off (+) and those ethtool shows turned off (-):\n%s", diff)
	}

	d.stop(t)
	after := ethtoolFeatures(t, lab.Director, "eth0")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("ethtool -k eth0 after udr stopped (-before +after):\n%s", diff)
	}
	if _, err := d.log.wait(0, "turned offloads on again", time.Second, d.exited); err != nil {
		t.Errorf("the log does not say the offloads were turned on again: %v", err)
	}
}

// procCaps is what /proc/PID/task/TID/status says of a thread's
// privileges.
type procCaps struct {
	CapInh, CapPrm, CapEff, CapBnd, CapAmb, NoNewPrivs string
}

// threadCaps returns procCaps for every thread of pid.
func threadCaps(t *testing.T, pid int) map[string]procCaps {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tids, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]procCaps)
	for _, tid := range tids {
		b, err := os.ReadFile(filepath.Join(dir, tid.Name(), "status"))
		if err != nil {
			continue // the thread ended
		}
		var c procCaps
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "CapInh":
				c.CapInh = v
			case "CapPrm":
				c.CapPrm = v
			case "CapEff":
				c.CapEff = v
			case "CapBnd":
				c.CapBnd = v
			case "CapAmb":
				c.CapAmb = v
			case "NoNewPrivs":
				c.NoNewPrivs = v
			}
		}
		out[tid.Name()] = c
	}
	if len(out) == 0 {
		t.Fatalf("no thread of pid %d", pid)
	}
	return out
}

// TestPrivilegedCapabilities: `udr run` started by hand as root keeps only
// CAP_NET_ADMIN and CAP_NET_RAW, in every thread and in its bounding set,
// with no_new_privs set; and with them it still reloads, runs its health
// checks and turns the offloads on again when it stops.
func TestPrivilegedCapabilities(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "caps")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "udr.yaml")
	const (
		web = "  - address: 192.0.2.100\n" +
			"    port: 80\n" +
			"    scheduler: rr\n" +
			"    health_check: {kind: http, path: /, interval: 500ms, timeout: 400ms, rise: 1, fall: 1}\n" +
			"    servers:\n" +
			"      - address: 192.0.2.11\n" +
			"      - address: 192.0.2.12\n"
		more = "  - address: 192.0.2.100\n" +
			"    port: 8080\n" +
			"    scheduler: rr\n" +
			"    servers:\n" +
			"      - address: 192.0.2.11\n"
	)
	write := func(services string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(reloadConfig(sock, services)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(web)
	// A CPU profile runs through the re-execution (its interval timer
	// must not kill the new image) and is written at the end.
	profile := filepath.Join(bin.dir, "cpu.pprof")
	d := startHostDaemon(t, lab, bin, sock, []string{profileEnv + "=" + profile}, "--config", conf)

	// CAP_NET_ADMIN (12) and CAP_NET_RAW (13).
	const kept = "0000000000003000"
	want := procCaps{CapInh: "0000000000000000", CapPrm: kept, CapEff: kept, CapBnd: kept, CapAmb: "0000000000000000", NoNewPrivs: "1"}
	for tid, got := range threadCaps(t, d.cmd.Process.Pid) {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("udr run's thread %s (-want +got):\n%s", tid, diff)
		}
	}
	if _, err := d.log.wait(0, "kept=cap_net_admin,cap_net_raw", daemonEventTimeout, d.exited); err != nil {
		t.Errorf("the log does not name the capabilities kept: %v", err)
	}

	// A reload still works.
	write(web + more)
	if r := d.admin(t, nil, "--reload"); r.code != 0 || r.stderr != "" {
		t.Fatalf("udr admin --reload: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := d.mustIpvsadm(t, "-S", "-n"); !strings.Contains(got, "-A -t 192.0.2.100:8080 -s rr") {
		t.Errorf("table after the reload:\n%s\nwant the service on :8080", got)
	}
	// Health checks still run: rs1 fails, then recovers.
	mark := d.log.len()
	if err := lab.StopHTTP(1, 80); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.wait(mark, "real server failed its health check", daemonEventTimeout, d.exited); err != nil {
		t.Errorf("a stopped real server: %v", err)
	}
	mark = d.log.len()
	if err := lab.StartHTTP(1, 80); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.wait(mark, "real server healthy again", daemonEventTimeout, d.exited); err != nil {
		t.Errorf("a restarted real server: %v", err)
	}
	// And the threads started since have no more.
	for tid, got := range threadCaps(t, d.cmd.Process.Pid) {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("udr run's thread %s after reload and checks (-want +got):\n%s", tid, diff)
		}
	}
	d.stop(t)
	if strings.Contains(d.log.String(), "cannot turn the offloads") {
		t.Errorf("udr could not turn the offloads on again without its other capabilities")
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("%s=%s after udr run stopped: %v, want a profile", profileEnv, profile, err)
	}
}

// TestPrivilegedOffloadsAfterHandOff: a udr that hands its table over
// leaves the offloads off for the one taking over, and tells it which it
// turned off, so that when the last one stops every feature is as it was
// before the first started.
func TestPrivilegedOffloadsAfterHandOff(t *testing.T) {
	netlab.Privileged(t)
	needEthtool(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "offho")
	if out, err := lab.Director.Command("ethtool", "-K", "eth0", "gro", "on").CombinedOutput(); err != nil {
		t.Fatalf("ethtool -K eth0 gro on: %v\n%s", err, out)
	}
	before := ethtoolFeatures(t, lab.Director, "eth0")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	args := []string{"--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", "off", "--state", "off"}
	first := startRestartDaemon(t, lab, bin, sock, args...)
	second := startRestartDaemon(t, lab, bin, sock, append(args, "--takeover")...)
	first.handedOff(t)
	during := ethtoolFeatures(t, lab.Director, "eth0")
	for _, f := range []string{"generic-receive-offload", "tcp-segmentation-offload", "generic-segmentation-offload"} {
		if during[f] {
			t.Errorf("after the hand-off, ethtool -k shows %s: on, want off for the udr that took over", f)
		}
	}
	second.stop(t)
	after := ethtoolFeatures(t, lab.Director, "eth0")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("ethtool -k eth0 after the udr that took over stopped (-before +after):\n%s", diff)
	}
}
