//go:build linux

package host

import (
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/udr-lb/udr/internal/netlab"
)

func TestPrivilegedDirector(t *testing.T) {
	lab := netlab.ForTest(t, "ds")
	ds, err := lab.AddHost("ds")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParsePrefix("192.0.2.1/24")
	if err := lab.Connect(ds, "eth0", addr); err != nil {
		t.Fatal(err)
	}
	mac, err := ds.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		ifi        Interface
		local      []netip.Addr
		v4, v6     bool
		v4on, v6on bool
	)
	if err := ds.Run(func() (err error) {
		if ifi, err = InterfaceInfo("eth0"); err != nil {
			return err
		}
		if local, err = LocalVIPs([]netip.Addr{netip.MustParseAddr("192.0.2.100"), addr.Addr(), netip.MustParseAddr("::1")}); err != nil {
			return err
		}
		if v4, v6, err = ForwardingEnabled("eth0"); err != nil {
			return err
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/eth0/forwarding", []byte("1"), 0); err != nil {
			return err
		}
		v4on, v6on, err = ForwardingEnabled("eth0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := Interface{Name: "eth0", Index: ifi.Index, MTU: 1500}
	copy(want.MAC[:], mac)
	if diff := cmp.Diff(want, ifi); diff != "" || ifi.Index <= 1 {
		t.Errorf("InterfaceInfo(eth0) (-want +got):\n%s (index %d)", diff, ifi.Index)
	}
	if diff := cmp.Diff([]netip.Addr{addr.Addr(), netip.MustParseAddr("::1")}, local, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("LocalVIPs (-want +got):\n%s", diff)
	}
	if v4 || v6 {
		t.Errorf("ForwardingEnabled(eth0) on a fresh namespace = %v, %v; want false, false", v4, v6)
	}
	if !v4on || v6on {
		t.Errorf("ForwardingEnabled(eth0) after enabling ipv4 = %v, %v; want true, false", v4on, v6on)
	}
	if err := ds.Run(func() error {
		_, err := InterfaceInfo("lo")
		if err == nil {
			t.Errorf("InterfaceInfo(lo) succeeded, want an error: lo has no Ethernet address")
		}
		_, err = InterfaceInfo("nosuch0")
		if err == nil {
			t.Errorf("InterfaceInfo(nosuch0) succeeded, want an error")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPrivilegedDisableOffloads: DisableOffloads turns off every feature of
// the four offloads (tx-tcp-accecn-segmentation too, which the legacy
// ETHTOOL_STSO leaves on), says so, changes nothing the second time, and
// Restore gives back the features exactly as they were.
func TestPrivilegedDisableOffloads(t *testing.T) {
	lab := netlab.ForTest(t, "off")
	ds, err := lab.AddHost("ds")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(ds, "eth0"); err != nil {
		t.Fatal(err)
	}
	var (
		before, after, restored Offloads
		orig, final             map[string]bool
		first, second           OffloadChange
		on, off                 []string
	)
	if err := ds.Run(func() (err error) {
		// veth starts with TSO and GSO on; turn GRO on too.
		if err := setOffload("eth0", "gro", true); err != nil {
			return err
		}
		if orig, err = Features("eth0"); err != nil {
			return err
		}
		if before, err = GetOffloads("eth0"); err != nil {
			return err
		}
		if first, err = DisableOffloads("eth0"); err != nil {
			return err
		}
		if second, err = DisableOffloads("eth0"); err != nil {
			return err
		}
		if after, err = GetOffloads("eth0"); err != nil {
			return err
		}
		if _, _, err := second.Restore(); err != nil {
			return err
		}
		if on, off, err = first.Restore(); err != nil {
			return err
		}
		if restored, err = GetOffloads("eth0"); err != nil {
			return err
		}
		final, err = Features("eth0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Offloads{GRO: true, TSO: true, GSO: true}, before); diff != "" {
		t.Errorf("offloads before (-want +got):\n%s", diff)
	}
	var wantOff []string
	for name, active := range orig {
		var o Offloads
		if active && offloadGroup(&o, name) != nil {
			wantOff = append(wantOff, name)
		}
	}
	sort := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	if !slices.Contains(wantOff, "tx-tcp-segmentation") || !slices.Contains(wantOff, "tx-generic-segmentation") || !slices.Contains(wantOff, "rx-gro") {
		t.Errorf("active offload features before: %q, want rx-gro, tx-tcp-segmentation and tx-generic-segmentation among them", wantOff)
	}
	if diff := cmp.Diff(wantOff, first.Off, sort); diff != "" {
		t.Errorf("first DisableOffloads turned off (-want +got):\n%s", diff)
	}
	if len(first.Stuck) != 0 {
		t.Errorf("first DisableOffloads left on %q, want nothing on veth", first.Stuck)
	}
	if second.Changed() || len(second.Off) != 0 {
		t.Errorf("second DisableOffloads changed %q, want nothing", second.Off)
	}
	if after != (Offloads{}) {
		t.Errorf("offloads after DisableOffloads = %+v, want all off", after)
	}
	if diff := cmp.Diff(wantOff, on, sort); diff != "" || len(off) != 0 {
		t.Errorf("Restore turned on (-want +got):\n%s\nand left off %q", diff, off)
	}
	if restored != before {
		t.Errorf("offloads after Restore = %+v, want %+v as before", restored, before)
	}
	if diff := cmp.Diff(orig, final); diff != "" {
		t.Errorf("features after Restore (-before +after):\n%s", diff)
	}
}
