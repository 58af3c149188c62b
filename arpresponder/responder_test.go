package arpresponder

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNew(t *testing.T) {
	r := New([]netip.Addr{
		vip6.WithZone("eth0"),
		netip.AddrFrom16(vip4.As16()), // IPv4-mapped: counts as IPv4
		vip4,                          // duplicate
		{},                            // invalid: ignored
		zero4, zero6,                  // unspecified: ignored
		allNodes6, netip.MustParseAddr("224.0.0.18"), // multicast: ignored
	}, vipMAC)

	if got := r.VIPMAC(); got != vipMAC {
		t.Errorf("VIPMAC = %s, want %s", mac(got), mac(vipMAC))
	}
	want := []netip.Addr{vip4, vip6}
	if diff := cmp.Diff(want, r.VIPs(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
	r.VIPs()[0] = notVIP4
	if got := r.VIPs()[0]; got != vip4 {
		t.Errorf("VIPs shares its slice: after a caller's write VIPs()[0] = %v", got)
	}

	// The IPv4-mapped VIP is answered over ARP, the zoned one over NDP.
	if _, why := r.HandleARP(nil, VLAN{}, clientMAC, request(vip4).bytes(t)); why != ReasonNone {
		t.Errorf("ARP for %v: reason %v, want %v", vip4, why, ReasonNone)
	}
	if _, why := r.HandleNDP(nil, VLAN{}, clientMAC, ns(vip6).bytes(t)); why != ReasonNone {
		t.Errorf("NS for %v: reason %v, want %v", vip6, why, ReasonNone)
	}
	// The unspecified address is no VIP: a probe-like request for 0.0.0.0
	// gets no reply.
	if _, why := r.HandleARP(nil, VLAN{}, clientMAC, request(zero4).bytes(t)); why != ReasonNotVIP {
		t.Errorf("ARP for 0.0.0.0: reason %v, want %v", why, ReasonNotVIP)
	}
}

func TestReasonString(t *testing.T) {
	want := map[Reason]string{
		ReasonNone:       "none",
		ReasonMalformed:  "malformed",
		ReasonNotRequest: "not-request",
		ReasonNotNS:      "not-ns",
		ReasonNotVIP:     "not-vip",
		ReasonConflict:   "conflict",
		ReasonLooped:     "looped",
		NumReasons:       "Reason(7)",
		255:              "Reason(255)",
	}
	for r := range Reason(NumReasons) {
		if _, ok := want[r]; !ok {
			t.Errorf("Reason %d has no expected name in this test", r)
		}
	}
	for r, s := range want {
		if got := r.String(); got != s {
			t.Errorf("Reason(%d).String() = %q, want %q", uint8(r), got, s)
		}
	}
}
