//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedAdminStandby runs `udr run --standby` and switches it with
// `udr admin --active` and `--standby`: each prints the state and whether
// it changed, the listing says standby on stderr only in standby, the
// metrics have udr_standby, the log one line per switch, and the API
// refuses a request that does not say which state.
func TestPrivilegedAdminStandby(t *testing.T) {
	netlab.Privileged(t)
	needCurl(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "adminsb")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(walkthroughRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", daemonMetrics, "--standby")
	metric := func() string {
		t.Helper()
		out, err := lab.Director.Command("curl", "-sS", "--fail", "--max-time", "10", "http://"+daemonMetrics+"/metrics").Output()
		if err != nil {
			t.Fatalf("curl metrics: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "udr_standby ") {
				return l
			}
		}
		t.Fatalf("no udr_standby in the metrics:\n%s", out)
		return ""
	}
	list := func(standby bool) {
		t.Helper()
		r := d.admin(t, nil, "-L", "-n")
		wantErr := ""
		if standby {
			wantErr = "udr: standby: this director answers no ARP/NDP for the VIPs and forwards nothing (udr admin --active)\n"
		}
		if r.code != 0 || r.stdout != walkthroughList || r.stderr != wantErr {
			t.Errorf("udr admin -L -n (standby %v): exit %d, stderr %q, stdout:\n%s\nwant stderr %q, stdout:\n%s", standby, r.code, r.stderr, r.stdout, wantErr, walkthroughList)
		}
	}
	if m := metric(); m != "udr_standby 1" {
		t.Errorf("started with --standby: %q, want udr_standby 1", m)
	}
	list(true)
	for _, step := range []struct {
		args, out, metric, log string
	}{
		{"--active", "active (was standby)\n", "udr_standby 0", "msg=\"active: announcing the VIPs and forwarding\""},
		{"--active", "active (already)\n", "udr_standby 0", ""},
		{"--standby", "standby (was active)\n", "udr_standby 1", "msg=\"standby: no ARP/NDP answers, announcements or forwarding for the VIPs\""},
		{"--standby", "standby (already)\n", "udr_standby 1", ""},
	} {
		mark := d.log.len()
		r := d.admin(t, nil, step.args)
		if r.code != 0 || r.stdout != step.out || r.stderr != "" {
			t.Errorf("udr admin %s: exit %d, stdout %q, stderr %q; want 0 and %q", step.args, r.code, r.stdout, r.stderr, step.out)
		}
		if m := metric(); m != step.metric {
			t.Errorf("after udr admin %s: %q, want %q", step.args, m, step.metric)
		}
		if step.log != "" {
			if _, err := d.log.wait(mark, step.log, daemonEventTimeout, d.exited); err != nil {
				t.Errorf("after udr admin %s: %v\n%s", step.args, err, d.log)
			}
		}
		list(step.args == "--standby")
	}
	// A request that does not say the state is refused, and changes
	// nothing.
	r := runCommand(t, "", nil, nil, "curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", sock,
		"-X", "POST", "-d", `{}`, "http://udr/v1/standby")
	if r.stdout != "400" {
		t.Errorf("POST /v1/standby {}: status %q, want 400", r.stdout)
	}
	if m := metric(); m != "udr_standby 1" {
		t.Errorf("after a refused request: %q, want udr_standby 1", m)
	}
	// Only alone is --standby udr's: with more, the line is ipvsadm's, for
	// which it is an unknown option.
	if r := d.admin(t, nil, "--standby", "-L"); r.code != 255 || r.stdout != "" || !strings.HasPrefix(r.stderr, "Try `ipvsadm -h'") {
		t.Errorf("udr admin --standby -L: exit %d, stdout %q, stderr %q; want ipvsadm's unknown-option error", r.code, r.stdout, r.stderr)
	}
}
