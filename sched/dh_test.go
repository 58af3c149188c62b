package sched

import (
	"net/netip"
	"testing"
)

// TestDestHash: buckets are dealt one per server over [C B A] whatever the
// weights, so bucket k is C, B or A as k%3 is 0, 1 or 2. The buckets of the
// virtual IPs were computed with hash_32 by hand (python3:
// (v*0x61C88647 & 0xffffffff) >> 24).
func TestDestHash(t *testing.T) {
	for _, tt := range []struct {
		name, list, counts string
		vip                string
		want               string
	}{
		{name: "bucket 3", list: "C1 B5 A2", vip: "192.0.2.100", want: "C"},
		{name: "bucket 101", list: "C1 B5 A2", vip: "192.0.2.101", want: "A"},
		{name: "bucket 124", list: "C1 B5 A2", vip: "203.0.113.7", want: "B"},
		{name: "bucket 248 v6", list: "C1 B5 A2", vip: "2001:db8::80", want: "A"},
		{name: "quiesced weight only matters at lookup", list: "C0 B5 A2", vip: "203.0.113.7", want: "B"},
		{name: "quiesced owner", list: "C0 B5 A2", vip: "192.0.2.100", want: "-"},
		{name: "overloaded owner, no fallback", list: "C1 B5 A2", counts: "C:o", vip: "192.0.2.100", want: "-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			servers := list(tt.list)
			counts(servers, tt.counts)
			s := mustNew(t, "dh", 0, servers, nil, Options{})
			vip := netip.MustParseAddr(tt.vip)
			fl := Flow{Dst: vip.As16(), Is6: vip.Is6(), Src: netip.MustParseAddr("198.51.100.1").As16()}
			for range 3 { // every client of the address gets the same server
				if got := name(servers, s.Pick(fl)); got != tt.want {
					t.Fatalf("pick = %s, want %s", got, tt.want)
				}
				fl.Src[15]++
				fl.SrcPort += 7
			}
		})
	}
}
