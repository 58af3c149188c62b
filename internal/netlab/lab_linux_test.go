//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		name string
		p    string
		ok   bool
	}{
		{name: "test-net-1 host", p: "192.0.2.10/24", ok: true},
		{name: "test-net-2 host", p: "198.51.100.1/32", ok: true},
		{name: "test-net-3 host", p: "203.0.113.254/24", ok: true},
		{name: "ipv6 documentation", p: "2001:db8:1::5/64", ok: true},
		{name: "wider than the range", p: "192.0.2.0/23", ok: false},
		{name: "private range", p: "10.0.0.1/8", ok: false},
		{name: "loopback", p: "127.0.0.1/8", ok: false},
		{name: "next to test-net-1", p: "192.0.3.1/24", ok: false},
		{name: "ipv6 outside", p: "2001:db9::1/64", ok: false},
		{name: "ipv6 wider than /32", p: "2001:db8::/31", ok: false},
		{name: "v4-mapped test-net", p: "::ffff:192.0.2.1/128", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidPrefix(netip.MustParsePrefix(tt.p))
			if (err == nil) != tt.ok {
				t.Fatalf("ValidPrefix(%s) = %v, want ok=%v", tt.p, err, tt.ok)
			}
		})
	}
}

func TestNewRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "Upper", "9lead", "has-dash", "waytoolongname"} {
		if _, err := New(name); err == nil {
			t.Errorf("New(%q) succeeded, want an error", name)
		}
	}
}

func TestPrivilegedLab(t *testing.T) {
	lab := ForTest(t, "lab")
	a, err := lab.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddHost("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddHost("a"); err == nil {
		t.Fatal("second AddHost(a) succeeded, want an error")
	}
	if err := lab.Connect(a, "eth0", netip.MustParsePrefix("10.1.1.1/24")); err == nil {
		t.Fatal("Connect with 10.1.1.1/24 succeeded, want an error")
	}
	if err := lab.Connect(a, "eth0", netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64")); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(b, "eth0", netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("2001:db8::2/64")); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{a, b} {
		mac, err := h.MAC("eth0")
		if err != nil || len(mac) != 6 {
			t.Fatalf("%s.MAC(eth0) = %v, %v; want a 6-byte address", h.Name(), mac, err)
		}
	}

	// IPv6 must work at once: DAD is off.
	for _, dst := range []string{"192.0.2.2", "2001:db8::2"} {
		t.Run("udp to "+dst, func(t *testing.T) {
			var srv net.PacketConn
			if err := b.Run(func() (err error) {
				srv, err = net.ListenPacket("udp", net.JoinHostPort(dst, "7000"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if err := a.Run(func() error {
				c, err := net.Dial("udp", net.JoinHostPort(dst, "7000"))
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte("hello"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, _, err := srv.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("ReadFrom = %q, %v; want hello", buf[:n], err)
			}
		})
	}

	out, err := a.Command("ip", "-br", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.1/24") || strings.Contains(string(out), "tentative") {
		t.Fatalf("ip addr in %s: %q, %v; want 192.0.2.1/24, not tentative", a.Namespace(), out, err)
	}

	// Close kills what still runs inside the lab, and is idempotent.
	sleeper := b.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if got := Leftovers(lab.Prefix()); len(got) != 3 {
		t.Fatalf("Leftovers before Close = %q, want 3 namespaces (sw, a, b)", got)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := sleeper.Wait(); !errors.As(err, &exitErr) {
		t.Fatalf("sleep inside the lab after Close: %v, want killed", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := Leftovers(lab.Prefix()); len(got) != 0 {
		t.Fatalf("Leftovers after Close = %q, want none", got)
	}
	if _, err := lab.AddHost("c"); err == nil {
		t.Fatal("AddHost after Close succeeded, want an error")
	}
}

func TestPrivilegedPair(t *testing.T) {
	lab := ForTest(t, "pair")
	a, err := lab.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddHost("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Pair(a, "veth0", b, "veth1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Run(func() error {
		ifi, err := net.InterfaceByName("veth1")
		if err != nil {
			return err
		}
		if ifi.Flags&net.FlagUp == 0 {
			return fmt.Errorf("veth1 is down")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(func() error {
		_, err := net.InterfaceByName("veth1")
		if err == nil {
			return fmt.Errorf("veth1 visible in host a")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPrivilegedRemoveStale(t *testing.T) {
	Privileged(t)
	// No process has a pid above pid_max (at most 2^22).
	name := namePrefix + "4194305-stale"
	h, err := newNamedNS(name)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() { _ = deleteNamed(name) })
	removed, err := RemoveStale()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != name {
		t.Fatalf("RemoveStale = %q, want [%q]", removed, name)
	}
	if got := Leftovers(name); len(got) != 0 {
		t.Fatalf("Leftovers(%q) = %q after RemoveStale, want none", name, got)
	}
}
