//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/status"
)

// TestPrivilegedStatus runs `udr status` against a live director after
// HTTP traffic through it and a connection to a port with no service:
// both real servers' MACs learnt, their health checks up, the table
// holding connections, the drop counted by its reason; `udr status -j`
// gives the same as JSON; and `udr admin -L -n --watch 1 --count 2`
// prints two refreshes of the listing with rates, a second apart.
func TestPrivilegedStatus(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "status")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "udr.yaml")
	const web = "  - address: 192.0.2.100\n" +
		"    port: 80\n" +
		"    scheduler: rr\n" +
		"    health_check: {kind: tcp, interval: 500ms, timeout: 400ms, rise: 1, fall: 1}\n" +
		"    servers:\n" +
		"      - address: 192.0.2.11\n" +
		"      - address: 192.0.2.12\n"
	if err := os.WriteFile(conf, []byte(reloadConfig(sock, web)), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, lab, bin, sock, "--config", conf, "--state", "off")

	client := drlab.HTTPClient(lab.Client, 5*time.Second)
	served := 0
	for i := 0; i < 40 && served < 10; i++ {
		if _, err := drlab.Get(client, "http://192.0.2.100/"); err == nil {
			served++
		} else {
			time.Sleep(250 * time.Millisecond) // the MACs are being learnt
		}
	}
	if served < 10 {
		t.Fatalf("%d of 40 requests through the director answered, want 10", served)
	}
	// A SYN to a port with no service: dropped as no-service.
	drlab.Get(drlab.HTTPClient(lab.Client, time.Second), "http://192.0.2.100:81/")

	macs := map[string]string{}
	for i, rs := range lab.RS {
		link, err := rs.Netlink().LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		macs[fmt.Sprintf("192.0.2.1%d", i+1)] = link.Attrs().HardwareAddr.String()
	}
	checks := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"interface", regexp.MustCompile(`(?m)^Interface  eth0 \(index \d+\) MAC ([0-9a-f]{2}:){5}[0-9a-f]{2} MTU \d+, \d+ workers?, io \S+$`)},
		{"VIP MAC", regexp.MustCompile(`(?m)^VIP MAC    02(:[0-9a-f]{2}){5}$`)},
		{"VIPs", regexp.MustCompile(`(?m)^VIPs       192\.0\.2\.100: TCP 192\.0\.2\.100:80$`)},
		{"announcements", regexp.MustCompile(`(?m)^Announced  gratuitous ARP / unsolicited NA every 10s, last \S+ ago \([1-9]\d* sent\)$`)},
		{"rs1 MAC", regexp.MustCompile(`(?m)^  192\.0\.2\.11 +` + macs["192.0.2.11"] + ` (arp|kernel) +\S+ ago +\S+ ago$`)},
		{"rs2 MAC", regexp.MustCompile(`(?m)^  192\.0\.2\.12 +` + macs["192.0.2.12"] + ` (arp|kernel) +\S+ ago +\S+ ago$`)},
		{"rs1 up", regexp.MustCompile(`(?m)^  TCP 192\.0\.2\.100:80 +192\.0\.2\.11:80 +tcp +up +\S+ ago$`)},
		{"rs2 up", regexp.MustCompile(`(?m)^  TCP 192\.0\.2\.100:80 +192\.0\.2\.12:80 +tcp +up +\S+ ago$`)},
		{"table fill", regexp.MustCompile(`(?m)^Connections [1-9]\d* of \d+ entries`)},
		{"no-service drop", regexp.MustCompile(`(?m)^  no-service +[1-9]\d*$`)},
		{"forwarded", regexp.MustCompile(`(?m)^Frames since start: [1-9]\d* forwarded, [1-9]\d* replied$`)},
	}
	// The workers publish their counters about once a second: poll.
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := runCommand(t, "", nil, nil, bin.exe, "status", "--control", sock)
		if r.code != 0 {
			t.Fatalf("udr status: exit %d, stderr %q", r.code, r.stderr)
		}
		out = r.stdout
		missing := ""
		for _, c := range checks {
			if !c.re.MatchString(out) {
				missing = c.what
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("udr status, after 30 s, has no line for %s:\n%s", missing, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("udr status:\n%s", out)

	r := runCommand(t, "", nil, nil, bin.exe, "status", "--control", sock, "-j")
	var st status.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		t.Fatalf("udr status -j: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if len(st.Neighbors) != 2 || st.Neighbors[0].MAC != macs["192.0.2.11"] || st.Neighbors[1].MAC != macs["192.0.2.12"] ||
		len(st.Health) != 2 || !st.Health[0].Up || !st.Health[1].Up || st.Table.Entries == 0 || st.Iface.Name != "eth0" {
		t.Errorf("udr status -j: %+v", st)
	}

	start := time.Now()
	r = runCommand(t, "", nil, nil, bin.exe, "admin", "--control", sock, "-L", "-n", "--watch", "1", "--count", "2")
	took := time.Since(start)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("udr admin -L -n --watch 1 --count 2: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Logf("udr admin -L -n --watch 1 --count 2 (%v):\n%s", took, r.stdout)
	refresh := regexp.MustCompile(`(?m)^--- (\d): \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, udr admin -L -n --rate \(every 1s\) ---\n` +
		`IP Virtual Server version 1\.2\.1 \(size=\d+\)\n` +
		`Prot LocalAddress:Port +CPS +InPPS +OutPPS +InBPS +OutBPS\n` +
		`  -> RemoteAddress:Port\n` +
		`TCP  192\.0\.2\.100:80( +\d+){5}\n` +
		`  -> 192\.0\.2\.11:80( +\d+){5}\n` +
		`  -> 192\.0\.2\.12:80( +\d+){5}\n`)
	m := refresh.FindAllStringSubmatch(r.stdout, -1)
	if len(m) != 2 || m[0][1] != "1" || m[1][1] != "2" || len(refresh.ReplaceAllString(r.stdout, "")) != 0 {
		t.Errorf("--watch 1 --count 2 printed, in %v:\n%s\nwant two refreshes of the listing with rates", took, r.stdout)
	}
	if took < 900*time.Millisecond {
		t.Errorf("--watch 1 --count 2 took %v, want the second refresh a second after the first", took)
	}

	// Without --count, --watch runs until SIGINT or SIGTERM, and exits 0.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(bin.exe, "admin", "--control", sock, "-L", "-n", "--watch", "0.2")
		out := newLineLog()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		var werr error
		go func() { werr = cmd.Wait(); close(exited) }()
		if _, err := out.wait(0, "--- 3: ", daemonEventTimeout, exited); err != nil {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("udr admin -L -n --watch 0.2: %v\n%s", err, out)
		}
		cmd.Process.Signal(sig)
		select {
		case <-exited:
			if werr != nil {
				t.Errorf("--watch after %v: %v, want exit 0\n%s", sig, werr, out)
			}
		case <-time.After(daemonStopTimeout):
			cmd.Process.Kill()
			<-exited
			t.Errorf("--watch did not stop within %v of %v", daemonStopTimeout, sig)
		}
	}
}
