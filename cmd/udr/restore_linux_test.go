//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/netlab"
)

// bigRestore is a restore of n lines (n a multiple of 4): -C, then
// services over as many VIPs of 203.0.113.0/24 as it takes, 3500 ports
// each, every third with one of the lab's real servers. It returns the
// services and real servers it defines.
func bigRestore(n int) (rules string, services, servers int) {
	var b strings.Builder
	b.WriteString("-C\n")
	for lines := 1; lines < n; services++ {
		svc := fmt.Sprintf("-t 203.0.113.%d:%d", 1+services/3500, 10000+services%3500)
		fmt.Fprintf(&b, "-A %s -s wlc\n", svc)
		lines++
		if services%3 == 0 && lines < n {
			fmt.Fprintf(&b, "-a %s -r 192.0.2.%d:%d -g -w 1\n", svc, 11+services%2, 10000+services%3500)
			lines++
			servers++
		}
	}
	return b.String(), services, servers
}

// TestPrivilegedAdminRestore runs `ipvsadm -R` against `udr run` through
// its control socket: a restore with a bad line in the middle changes
// nothing and names the line, as does one the host refuses (a local VIP);
// a restore of 200,000 lines is applied as one
// change within a generous bound, listed whole by -L -n afterwards, and
// logged in a line or two, not one per rule; the same restore with a bad
// last line leaves it in place.
func TestPrivilegedAdminRestore(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "restore")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(walkthroughRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", "off")

	// A bad line (the lower threshold above the upper one) between good
	// ones: nothing is applied, the line is named.
	bad := "-A -t 192.0.2.101:80 -s rr\n" +
		"-a -t 192.0.2.101:80 -r 192.0.2.11:80\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.13:80 -x 1 -y 5\n" +
		"-D -t 192.0.2.100:80\n"
	r := d.ipvsadm(t, bad, "-R")
	wantErr := "stdin:3: -a -t 192.0.2.100:80 -r 192.0.2.13:80: Numerical result out of range\n"
	if r.code != 255 || r.stdout != "" || !strings.HasPrefix(r.stderr, wantErr) {
		t.Errorf("ipvsadm -R with a bad third line: exit %d, stdout %q, stderr %q; want 255 and %q", r.code, r.stdout, r.stderr, wantErr)
	}
	if got := d.mustIpvsadm(t, "-S", "-n"); got != walkthroughRules {
		t.Errorf("table after a restore with a bad line:\n%s\nwant it unchanged:\n%s", got, walkthroughRules)
	}

	// Lines the kernel would take but the host refuses (a VIP that is
	// the director's own address): the whole restore is refused.
	r = d.ipvsadm(t, "-A -t 192.0.2.101:80 -s rr\n-A -t 192.0.2.2:80 -s rr\n", "-R")
	wantErr = "udr: restore refused, the running table is unchanged: VIP 192.0.2.2 is configured on this host"
	if r.code != 255 || !strings.HasPrefix(r.stderr, wantErr) {
		t.Errorf("ipvsadm -R with the director's address as a VIP: exit %d, stderr %q; want 255 and %q", r.code, r.stderr, wantErr)
	}
	if got := d.mustIpvsadm(t, "-S", "-n"); got != walkthroughRules {
		t.Errorf("table after a restore the host refused:\n%s\nwant it unchanged:\n%s", got, walkthroughRules)
	}

	const n = 200_000
	in, services, servers := bigRestore(n)
	mark := d.log.len()
	start := time.Now()
	r = d.ipvsadm(t, in, "-R")
	took := time.Since(start)
	t.Logf("ipvsadm -R of %d lines (%d services, %d real servers, %.1f MB): %v", n, services, servers, float64(len(in))/1e6, took.Round(time.Millisecond))
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("ipvsadm -R of %d lines: exit %d, stdout %.300q, stderr %.300q", n, r.code, r.stdout, r.stderr)
	}
	if bound := 60 * time.Second; took > bound {
		t.Errorf("ipvsadm -R of %d lines took %v, want under %v", n, took.Round(time.Millisecond), bound)
	}
	line, err := d.log.wait(mark, "applied a restore", daemonEventTimeout, d.exited)
	if err != nil {
		t.Errorf("log after the restore: %v", err)
	}
	want := fmt.Sprintf("services=%d services_added=%d services_removed=1 services_edited=0 servers_added=%d servers_removed=2", services, services, servers)
	if !strings.Contains(line, want) {
		t.Errorf("log line of the restore:\n%s\nwant it to say %q", line, want)
	}
	logged := strings.Split(d.log.String(), "\n")[mark:]
	t.Logf("logged during the restore:\n%s", strings.Join(logged[:min(len(logged), 10)], "\n"))
	if len(logged) > 10 {
		t.Errorf("the restore logged %d lines, want a few, not one per rule; the first ones:\n%s", len(logged), strings.Join(logged[:10], "\n"))
	}

	start = time.Now()
	list := d.mustIpvsadm(t, "-L", "-n")
	t.Logf("ipvsadm -L -n of the restored table: %v", time.Since(start).Round(time.Millisecond))
	gotServices, gotServers := strings.Count(list, "\nTCP  203.0.113."), strings.Count(list, "\n  -> 192.0.2.1")
	if gotServices != services || gotServers != servers {
		t.Errorf("ipvsadm -L -n lists %d services and %d real servers, want %d and %d", gotServices, gotServers, services, servers)
	}
	for _, want := range []string{"\nTCP  203.0.113.1:10000 wlc\n  -> 192.0.2.11:10000", fmt.Sprintf("\nTCP  203.0.113.%d:%d wlc\n", 1+(services-1)/3500, 10000+(services-1)%3500)} {
		if !strings.Contains(list, want) {
			t.Errorf("ipvsadm -L -n has no %q", want)
		}
	}

	// The same restore with a bad last line changes nothing.
	r = d.ipvsadm(t, in+"-a -t 203.0.113.1:10000 -r 192.0.2.11:10000\n", "-R")
	wantErr = fmt.Sprintf("stdin:%d: -a -t 203.0.113.1:10000 -r 192.0.2.11:10000: Destination already exists\n", n+1)
	if r.code != 255 || !strings.HasPrefix(r.stderr, wantErr) {
		t.Errorf("ipvsadm -R of %d lines and a bad one: exit %d, stderr %.300q; want 255 and %q", n, r.code, r.stderr, wantErr)
	}
	if got := d.mustIpvsadm(t, "-L", "-n"); got != list {
		t.Errorf("the refused restore changed the table")
	}
}
