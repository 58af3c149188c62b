package sched

import (
	"testing"
)

// TestPositionCarriesOver checks that an rr or wrr scheduler built anew
// over the same servers and given the old one's Position picks what the
// old one would have picked next, and that states no walk reaches are
// refused.
func TestPositionCarriesOver(t *testing.T) {
	for _, name := range []string{"rr", "wrr"} {
		t.Run(name, func(t *testing.T) {
			servers := added(4, 2, 6)
			old, err := New(name, 0, servers, nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				old.Pick(Flow{})
			}
			pos := old.(Positioner).Position()
			fresh, err := New(name, 0, added(4, 2, 6), nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !fresh.(Positioner).SetPosition(pos) {
				t.Fatalf("SetPosition(%#x) refused", pos)
			}
			for i := range 24 {
				if a, b := old.Pick(Flow{}), fresh.Pick(Flow{}); a != b {
					t.Fatalf("pick %d after the restore: %d, the old scheduler %d", i, b, a)
				}
			}
			p := fresh.(Positioner)
			before := p.Position()
			// wrr: cl out of range, cw 0, above mw (6 - (2-1) = 5), not
			// reached (mw - k*di with di 2: 5, 3, 1), negative.
			if name == "wrr" {
				for _, bad := range []uint64{packWRR(3, 2), packWRR(-2, 2), packWRR(0, 0), packWRR(0, 6), packWRR(0, 4), packWRR(0, -1)} {
					if p.SetPosition(bad) {
						t.Errorf("wrr SetPosition(%#x) accepted", bad)
					}
				}
			} else {
				for _, bad := range []uint64{3, uint64(uint32(0xfffffffe)), 1 << 32} {
					if p.SetPosition(bad) {
						t.Errorf("rr SetPosition(%#x) accepted", bad)
					}
				}
			}
			if p.Position() != before {
				t.Errorf("refused positions changed the state: %#x, was %#x", p.Position(), before)
			}
		})
	}
}
