//go:build linux

package director_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedWalkthrough is the LVS-DR walkthrough with an in-process
// director: wrr 1:1, then 2:1 after a reload, then a service on another
// port whose real servers, given as :80, are reached on that port and
// refuse it.
func TestPrivilegedWalkthrough(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "walk", drlab.Options{})
	l.start(2,
		"-A -t "+vipPort+" -s wrr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	c := drlab.HTTPClient(l.Client, requestTimeout)

	// The kernel puts a new real server at the head of the list, and wrr
	// walks from the head: rs2 (added last) comes first.
	want := strings.Fields("rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1")
	if diff := cmp.Diff(want, gets(t, c, "http://192.0.2.100/", 8)); diff != "" {
		t.Fatalf("weights 1:1 (-want +got):\n%s", diff)
	}

	// The client reached the VIP through udr's virtual MAC, not the
	// director's own.
	dirMAC, err := l.Director.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	vmac := arpresponder.VirtualMAC([6]byte(dirMAC))
	if got, ok := neighborMAC(t, l.Client, drlab.VIP); !ok || !bytes.Equal(got, vmac[:]) {
		t.Errorf("client's neighbour entry for %s = %v (found %v), want udr's virtual MAC %v", drlab.VIP, got, ok, net.HardwareAddr(vmac[:]))
	}

	// ipvsadm -e ... -r rs1 -w 2: the file keeps the add order.
	weights21 := []string{
		"-A -t " + vipPort + " -s wrr",
		"-a -t " + vipPort + " -r " + rs1 + ":80 -g -w 2",
		"-a -t " + vipPort + " -r " + rs2 + ":80 -g -w 1",
	}
	l.reload(weights21...)
	want = strings.Fields("rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1")
	if diff := cmp.Diff(want, gets(t, c, "http://192.0.2.100/", 12)); diff != "" {
		t.Fatalf("weights 2:1 after reload (-want +got):\n%s", diff)
	}

	// DR cannot map ports: the real servers get :8099 and have nothing
	// listening there.
	l.reload(append(weights21,
		"-A -t 192.0.2.100:8099 -s wrr",
		"-a -t 192.0.2.100:8099 -r "+rs1+":80 -g -w 1",
		"-a -t 192.0.2.100:8099 -r "+rs2+":80 -g -w 1",
	)...)
	for i := range 2 {
		body, err := drlab.Get(c, "http://192.0.2.100:8099/")
		if !drlab.IsRefused(err) {
			t.Errorf("GET :8099 (%d of 2) = %q, %v; want connection refused by the real server", i+1, body, err)
		}
	}
	// The service on :80 is untouched by the reload.
	if diff := cmp.Diff([]string{"rs2"}, gets(t, c, "http://192.0.2.100/", 1)); diff != "" {
		t.Errorf("GET :80 after adding :8099 (-want +got):\n%s", diff)
	}
}

// TestPrivilegedDemoCommand runs `udr demo` as a user would and checks its
// summary and that it removes its namespaces.
func TestPrivilegedDemoCommand(t *testing.T) {
	netlab.Privileged(t)
	exe := filepath.Join(t.TempDir(), "udr")
	build := exec.Command("go", "build", "-o", exe, "github.com/udr-lb/udr/cmd/udr")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build udr: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "demo")
	// A killed demo must still clean up: SIGTERM first, as Ctrl-C would.
	cmd.Cancel = func() error { return cmd.Process.Signal(unix.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("udr demo stdout:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("udr demo: %v\nstderr:\n%s", err, stderr.String())
	}

	lines := strings.Split(stdout.String(), "\n")
	for _, want := range []string{
		"weights 1:1  rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1",
		"weights 2:1  rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("udr demo printed no line %q", want)
		}
	}
	if !strings.Contains(stdout.String(), "connection refused") {
		t.Errorf("udr demo did not report the refused connection to :8099")
	}

	// netlab names the demo's namespaces udr-<pid>-...
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	mark := fmt.Sprintf("udr-%d-", cmd.Process.Pid)
	for _, ns := range strings.Split(string(out), "\n") {
		if strings.Contains(ns, mark) {
			t.Errorf("namespace %q left by udr demo (pid %d)", ns, cmd.Process.Pid)
		}
	}
}

// TestPrivilegedRoutedClient: a client behind a router reaches the VIP
// through the router, and the real servers answer it through the router.
func TestPrivilegedRoutedClient(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "routed", drlab.Options{Routed: true})
	l.start(2,
		"-A -t "+vipPort+" -s rr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	c := drlab.HTTPClient(l.Routed, requestTimeout)
	want := strings.Fields("rs2 rs1 rs2 rs1 rs2 rs1")
	if diff := cmp.Diff(want, gets(t, c, "http://192.0.2.100/", 6)); diff != "" {
		t.Fatalf("routed client, rr (-want +got):\n%s", diff)
	}
	dirMAC, err := l.Director.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	vmac := arpresponder.VirtualMAC([6]byte(dirMAC))
	if got, ok := neighborMAC(t, l.Router, drlab.VIP); !ok || !bytes.Equal(got, vmac[:]) {
		t.Errorf("router's neighbour entry for %s = %v (found %v), want udr's virtual MAC %v", drlab.VIP, got, ok, net.HardwareAddr(vmac[:]))
	}
}

// TestPrivilegedIPv6: the client resolves the VIP by NDP, udr answers, and
// connections alternate between the real servers.
func TestPrivilegedIPv6(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "six", drlab.Options{IPv6: true})

	// An address still in duplicate address detection is unusable, and
	// the test would race it.
	for _, h := range append([]*netlab.Host{l.Client, l.Director}, l.RS...) {
		noTentative(t, h)
	}

	const vip6 = "[2001:db8::100]:80"
	l.start(2,
		"-A -t "+vip6+" -s rr",
		"-a -t "+vip6+" -r [2001:db8::11]:80 -g -w 1",
		"-a -t "+vip6+" -r [2001:db8::12]:80 -g -w 1",
	)
	c := drlab.HTTPClient(l.Client, requestTimeout)
	want := strings.Fields("rs2 rs1 rs2 rs1 rs2 rs1")
	if diff := cmp.Diff(want, gets(t, c, "http://[2001:db8::100]/", 6)); diff != "" {
		t.Fatalf("IPv6, rr (-want +got):\n%s", diff)
	}
	dirMAC, err := l.Director.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	vmac := arpresponder.VirtualMAC([6]byte(dirMAC))
	if got, ok := neighborMAC(t, l.Client, drlab.VIP6); !ok || !bytes.Equal(got, vmac[:]) {
		t.Errorf("client's NDP entry for %s = %v (found %v), want udr's virtual MAC %v", drlab.VIP6, got, ok, net.HardwareAddr(vmac[:]))
	}
}

// noTentative fails t if h has an IPv6 address still in (or failed by)
// duplicate address detection, or if DAD is on for its eth0.
func noTentative(t *testing.T, h *netlab.Host) {
	t.Helper()
	addrs, err := h.Netlink().AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatalf("addresses of %s: %v", h.Name(), err)
	}
	for _, a := range addrs {
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			t.Errorf("%s: address %s has flags %#x: tentative or DAD failed", h.Name(), a.IPNet, a.Flags)
		}
	}
	var dad []byte
	err = h.Run(func() error {
		var err error
		dad, err = os.ReadFile("/proc/sys/net/ipv6/conf/eth0/accept_dad")
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", h.Name(), err)
	}
	if got := strings.TrimSpace(string(dad)); got != "0" {
		t.Errorf("%s: net.ipv6.conf.eth0.accept_dad = %q, want 0", h.Name(), got)
	}
}
