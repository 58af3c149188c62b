//go:build linux

package host

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/internal/netlab"
)

var (
	vip4 = netip.MustParseAddr("192.0.2.100")
	vip6 = netip.MustParseAddr("2001:db8::100")
)

// missing is what CheckRealServer reports on a fresh namespace whose lo is
// down.
var missing = []CheckItem{
	{Name: "lo is up", Fix: "ip link set dev lo up"},
	{Name: "net.ipv4.conf.all.arp_ignore = 1 (found 0)", Fix: "sysctl -w net.ipv4.conf.all.arp_ignore=1"},
	{Name: "net.ipv4.conf.all.arp_announce = 2 (found 0)", Fix: "sysctl -w net.ipv4.conf.all.arp_announce=2"},
	{Name: "net.ipv4.conf.lo.arp_ignore = 1 (found 0)", Fix: "sysctl -w net.ipv4.conf.lo.arp_ignore=1"},
	{Name: "net.ipv4.conf.lo.arp_announce = 2 (found 0)", Fix: "sysctl -w net.ipv4.conf.lo.arp_announce=2"},
	{Name: "192.0.2.100/32 on lo", Fix: "ip addr add 192.0.2.100/32 dev lo"},
	{Name: "2001:db8::100/128 on lo", Fix: "ip -6 addr add 2001:db8::100/128 dev lo"},
}

var configured = []CheckItem{
	{Name: "lo is up", OK: true, Fix: "ip link set dev lo up"},
	{Name: "net.ipv4.conf.all.arp_ignore = 1", OK: true, Fix: "sysctl -w net.ipv4.conf.all.arp_ignore=1"},
	{Name: "net.ipv4.conf.all.arp_announce = 2", OK: true, Fix: "sysctl -w net.ipv4.conf.all.arp_announce=2"},
	{Name: "net.ipv4.conf.lo.arp_ignore = 1", OK: true, Fix: "sysctl -w net.ipv4.conf.lo.arp_ignore=1"},
	{Name: "net.ipv4.conf.lo.arp_announce = 2", OK: true, Fix: "sysctl -w net.ipv4.conf.lo.arp_announce=2"},
	{Name: "192.0.2.100/32 on lo", OK: true, Fix: "ip addr add 192.0.2.100/32 dev lo"},
	{Name: "2001:db8::100/128 on lo", OK: true, Fix: "ip -6 addr add 2001:db8::100/128 dev lo"},
}

func TestPrivilegedRealServer(t *testing.T) {
	lab := netlab.ForTest(t, "rs")
	rs, err := lab.AddHost("rs")
	if err != nil {
		t.Fatal(err)
	}
	lo, err := rs.Netlink().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Netlink().LinkSetDown(lo); err != nil {
		t.Fatal(err)
	}
	vips := []netip.Addr{vip4, vip6}
	check := func(t *testing.T, step string, want []CheckItem) {
		t.Helper()
		var got []CheckItem
		if err := rs.Run(func() error { got = CheckRealServer(vips); return nil }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("CheckRealServer %s (-want +got):\n%s", step, diff)
		}
	}
	run := func(t *testing.T, step string, fn func() error) {
		t.Helper()
		if err := rs.Run(fn); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

	check(t, "on a fresh host", missing)
	run(t, "first setup", func() error { return SetupRealServer(vips) })
	check(t, "after setup", configured)
	run(t, "second setup", func() error { return SetupRealServer(vips) })
	check(t, "after the second setup", configured)

	// Removing one VIP keeps ARP silenced for the other.
	run(t, "partial teardown", func() error { return TeardownRealServer([]netip.Addr{vip6}) })
	partial := append([]CheckItem(nil), configured...)
	partial[6] = missing[6]
	check(t, "after removing the IPv6 VIP", partial)

	run(t, "teardown", func() error { return TeardownRealServer(vips) })
	restored := append([]CheckItem(nil), missing...)
	restored[0] = configured[0] // lo stays up
	check(t, "after teardown", restored)
	run(t, "second teardown", func() error { return TeardownRealServer(vips) })
}

func TestPrivilegedRealServerIPv6Only(t *testing.T) {
	lab := netlab.ForTest(t, "rs6")
	rs, err := lab.AddHost("rs")
	if err != nil {
		t.Fatal(err)
	}
	var got []CheckItem
	if err := rs.Run(func() error {
		if err := SetupRealServer([]netip.Addr{vip6}); err != nil {
			return err
		}
		got = CheckRealServer([]netip.Addr{vip6})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []CheckItem{configured[0], configured[6]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("CheckRealServer with an IPv6 VIP only (-want +got):\n%s", diff)
	}
}

func TestRealServerRejectsBadVIPs(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.1", "fe80::1", "::"} {
		vips := []netip.Addr{netip.MustParseAddr(s)}
		if err := SetupRealServer(vips); err == nil {
			t.Errorf("SetupRealServer(%s) succeeded, want an error", s)
		}
		if err := TeardownRealServer(vips); err == nil {
			t.Errorf("TeardownRealServer(%s) succeeded, want an error", s)
		}
		if items := CheckRealServer(vips); len(items) != 1 || items[0].OK {
			t.Errorf("CheckRealServer(%s) = %+v, want one failed item", s, items)
		}
	}
}
