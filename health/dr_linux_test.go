//go:build linux

package health

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/service"
)

type result struct {
	t   Target
	err error
}

// TestPrivilegedDR checks dr mode on a lab: a director 192.0.2.2 and a
// real server 192.0.2.11 with the VIP 192.0.2.100 on lo and a listener on
// 0.0.0.0:80. Both the dr check (SYN to VIP:80 at the server's MAC) and a
// plain tcp check (connect to 192.0.2.11:80) pass; with the VIP removed
// from lo, the dr check fails while the plain one still passes, which is
// the case dr mode exists for; with the VIP back, it passes again.
func TestPrivilegedDR(t *testing.T) {
	lab := netlab.ForTest(t, "health")
	director, err := lab.AddHost("director")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := lab.AddHost("rs")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(director, "eth0", netip.MustParsePrefix("192.0.2.2/24")); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(rs, "eth0", netip.MustParsePrefix("192.0.2.11/24")); err != nil {
		t.Fatal(err)
	}
	vip := []netip.Addr{netip.MustParseAddr("192.0.2.100")}
	var ln net.Listener
	if err := rs.Run(func() error {
		if err := host.SetupRealServer(vip); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", "0.0.0.0:80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hw, err := rs.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	rsMAC := [6]byte(hw)
	rip := netip.MustParseAddr("192.0.2.11")

	var c *Checker
	cfg := Config{DR: DRConfig{
		Iface: "eth0",
		NeighborMAC: func(a netip.Addr) ([6]byte, bool) {
			return rsMAC, a == rip
		},
	}}
	if err := director.Run(func() error {
		c, err = New(cfg, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	results := make(chan result, 64)
	real := c.probe
	c.probe = func(ctx context.Context, tg Target) error {
		err := real(ctx, tg)
		select {
		case results <- result{tg, err}:
		default: // the test has stopped reading
		}
		return err
	}
	check := CheckConfig{Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond}
	drCheck := check
	drCheck.Mode = ModeDR
	// A server has one check per service: the plain check is that of a
	// second service on the same server.
	other := service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.101"), Port: 80}
	server := netip.AddrPortFrom(rip, 80)
	if err := c.Set([]Target{
		{Service: web, Server: server, Check: drCheck},
		{Service: other, Server: server, Check: check},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// expect waits for a dr result that is drOK and a tcp result that is
	// tcpOK. When strict, every tcp result must be tcpOK: once the lab
	// has settled, the plain check never fails.
	expect := func(stage string, drOK, tcpOK, strict bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		var gotDR, gotTCP bool
		for !gotDR || !gotTCP {
			select {
			case r := <-results:
				ok := r.err == nil
				if r.t.Check.Mode == ModeDR {
					if ok != drOK {
						t.Logf("%s: dr check: %v", stage, r.err)
					}
					if !ok && !drOK && !strings.Contains(r.err.Error(), "no SYN-ACK") {
						t.Fatalf("%s: dr check error = %v, want no SYN-ACK", stage, r.err)
					}
					gotDR = ok == drOK
				} else {
					if ok != tcpOK && strict {
						t.Fatalf("%s: tcp check to %s: ok=%v (%v), want ok=%v", stage, r.t.Server, ok, r.err, tcpOK)
					}
					gotTCP = ok == tcpOK
				}
			case <-deadline:
				t.Fatalf("%s: no dr check with ok=%v and tcp check with ok=%v within 10 s", stage, drOK, tcpOK)
			}
		}
	}
	expect("VIP on lo", true, true, false) // the first checks may meet ARP resolution

	if err := rs.Run(func() error { return host.TeardownRealServer(vip) }); err != nil {
		t.Fatal(err)
	}
	expect("VIP removed", false, true, true)
	// Results keep coming: three more rounds with the same outcome.
	for range 3 {
		expect("VIP still removed", false, true, true)
	}

	if err := rs.Run(func() error { return host.SetupRealServer(vip) }); err != nil {
		t.Fatal(err)
	}
	expect("VIP back", true, true, true)
}
