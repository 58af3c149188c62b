//go:build linux

package director_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedVIPMACStable: a VIP keeps its MAC while it exists. Adding
// a service on another VIP by a reload, and restarting the director, leave
// the MAC the client learns for the first VIP as it was, and a client that
// pinned that MAC (a static neighbour entry, as a switch or a neighbour
// that missed the announcements would keep it) still reaches the service.
func TestPrivilegedVIPMACStable(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "vipmac", drlab.Options{IPv6: true})
	for _, h := range append([]*netlab.Host{l.Client, l.Director}, l.RS...) {
		noTentative(t, h)
	}
	const vip6 = "[2001:db8::100]:80"
	one := []string{
		"-A -t " + vipPort + " -s rr",
		"-a -t " + vipPort + " -r " + rs1 + ":80 -g -w 1",
		"-a -t " + vipPort + " -r " + rs2 + ":80 -g -w 1",
	}
	two := append(append([]string(nil), one...),
		"-A -t "+vip6+" -s rr",
		"-a -t "+vip6+" -r [2001:db8::11]:80 -g -w 1",
		"-a -t "+vip6+" -r [2001:db8::12]:80 -g -w 1",
	)
	l.writeRules(one...)
	stop := startStoppable(t, l, 2, director.Config{Settings: director.Settings{Iface: "eth0"}, Rules: l.rules})
	c := drlab.HTTPClient(l.Client, requestTimeout)

	first := learnMAC(t, l, drlab.VIP, "http://192.0.2.100/")
	t.Logf("%s is at %s", drlab.VIP, first)
	// From here the client sends to that MAC whatever udr announces.
	if err := l.Client.Run(func() error { return pinNeighbor(drlab.VIP, first) }); err != nil {
		t.Fatal(err)
	}

	l.reload(two...)
	if _, err := drlab.Get(c, "http://192.0.2.100/"); err != nil {
		t.Errorf("GET through the pinned MAC %s after a reload that added %s: %v", first, drlab.VIP6, err)
	}
	if got := learnMAC(t, l, drlab.VIP, "http://192.0.2.100/"); got != first {
		t.Errorf("after a reload that added %s, %s is at %s, want %s as before", drlab.VIP6, drlab.VIP, got, first)
	}
	if got := learnMAC(t, l, drlab.VIP6, "http://[2001:db8::100]/"); got != first {
		t.Errorf("the added VIP %s is at %s, want %s as the other VIP", drlab.VIP6, got, first)
	}

	// A restart: the next director answers with the same MAC.
	stop()
	if err := l.Client.Run(func() error { return pinNeighbor(drlab.VIP, first) }); err != nil {
		t.Fatal(err)
	}
	startStoppable(t, l, 2, director.Config{Settings: director.Settings{Iface: "eth0"}, Rules: l.rules})
	if _, err := drlab.Get(c, "http://192.0.2.100/"); err != nil {
		t.Errorf("GET through the pinned MAC %s after a restart: %v", first, err)
	}
	if got := learnMAC(t, l, drlab.VIP, "http://192.0.2.100/"); got != first {
		t.Errorf("after a restart, %s is at %s, want %s as before", drlab.VIP, got, first)
	}
}

// startStoppable starts a director as lab.startWith does, and returns the
// function that stops it; the director is stopped when t ends if the test
// did not stop it.
func startStoppable(t *testing.T, l *lab, nServers int, cfg director.Config) (stop func()) {
	t.Helper()
	l.log = newLogWatch(t)
	cfg = withTestWorkers(t, withTestIO(t, cfg))
	cfg.Logger = slog.New(l.log.handler())
	var d *director.Director
	if err := l.Director.Run(func() (err error) {
		d, err = director.New(cfg)
		return err
	}); err != nil {
		l.log.stop()
		t.Fatalf("director.New: %v", err)
	}
	l.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped, log := false, l.log
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("director Run: %v", err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("director Run did not return within %v of its context's end", stopTimeout)
		}
		if err := d.Close(); err != nil {
			t.Errorf("director Close: %v", err)
		}
		log.stop()
	}
	t.Cleanup(stop)
	if err := l.log.await("real server reachable", nServers, eventTimeout); err != nil {
		t.Fatal(err)
	}
	return stop
}

// learnMAC forgets the client's neighbour entry for vip, fetches url so
// that the client resolves vip again, and returns the MAC it learnt.
func learnMAC(t *testing.T, l *lab, vip netip.Addr, url string) string {
	t.Helper()
	if err := l.Client.Run(func() error { return forgetNeighbor(vip) }); err != nil {
		t.Fatal(err)
	}
	if _, err := drlab.Get(drlab.HTTPClient(l.Client, requestTimeout), url); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	mac, ok := neighborMAC(t, l.Client, vip)
	if !ok {
		t.Fatalf("the client has no neighbour entry for %s after reaching it", vip)
	}
	return mac.String()
}

// forgetNeighbor deletes eth0's neighbour entry for ip, if any.
func forgetNeighbor(ip netip.Addr) error {
	link, err := netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	err = netlink.NeighDel(neighOf(link, ip, nil))
	if err != nil && !strings.Contains(err.Error(), "no such file") {
		return fmt.Errorf("delete neighbour %s: %w", ip, err)
	}
	return nil
}

// pinNeighbor makes eth0's neighbour entry for ip a permanent one to mac.
func pinNeighbor(ip netip.Addr, mac string) error {
	link, err := netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	n := neighOf(link, ip, hw)
	n.State = netlink.NUD_PERMANENT
	return netlink.NeighSet(n)
}

func neighOf(link netlink.Link, ip netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	return &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: family, IP: ip.AsSlice(), HardwareAddr: mac}
}
