//go:build linux

package main

import (
	"bufio"
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

// hostDaemon is `udr run` in the lab director's namespace, for the tests
// of what udr does to its host, which stop it themselves.
type hostDaemon struct {
	*daemon
	done bool
}

// startHostDaemon starts `udr run ARGS...` as startDaemon does; the test
// stops it with terminate, or it is killed when t ends.
func startHostDaemon(t *testing.T, lab *drlab.Lab, bin udrBinary, sock string, args ...string) *hostDaemon {
	t.Helper()
	d := &hostDaemon{daemon: &daemon{bin: bin, sock: sock, log: newLineLog(), exited: make(chan struct{})}}
	d.cmd = lab.Director.Command(bin.exe, append([]string{"run"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start udr run: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if !d.done {
			d.terminate(t)
		}
		if t.Failed() {
			t.Logf("udr run log:\n%s", d.log)
		}
	})
	if _, err := d.log.wait(0, "udr running", daemonStartTimeout, d.exited); err != nil {
		t.Fatalf("udr run %s: %v\n%s", strings.Join(args, " "), err, d.log)
	}
	return d
}

// terminate stops the daemon with SIGTERM and fails t unless it exits
// cleanly in time.
func (d *hostDaemon) terminate(t *testing.T) {
	t.Helper()
	d.done = true
	d.daemon.stop(t)
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
	d := startHostDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", "off")

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

	d.terminate(t)
	after := ethtoolFeatures(t, lab.Director, "eth0")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("ethtool -k eth0 after udr stopped (-before +after):\n%s", diff)
	}
	if _, err := d.log.wait(0, "turned offloads on again", time.Second, d.exited); err != nil {
		t.Errorf("the log does not say the offloads were turned on again: %v", err)
	}
}
