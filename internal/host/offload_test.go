//go:build linux

package host

import (
	"fmt"
	"slices"
	"testing"
)

// TestAdopt: Adopt takes each feature once, skips empty names, keeps what
// was cleared already, and takes no more than maxAdopted from a list that
// comes from another process.
func TestAdopt(t *testing.T) {
	c := OffloadChange{Iface: "eth0", Off: []string{"rx-gro"}, cleared: []string{"rx-gro"}}
	c.Adopt([]string{"tx-tcp-segmentation", "", "rx-gro", "tx-tcp-segmentation", "tx-generic-segmentation"})
	if want := []string{"rx-gro", "tx-tcp-segmentation", "tx-generic-segmentation"}; !slices.Equal(c.Cleared(), want) || !slices.Equal(c.Off, want) {
		t.Errorf("after Adopt: cleared %q, off %q; want %q for both", c.Cleared(), c.Off, want)
	}
	if !c.Changed() {
		t.Errorf("Changed = false after Adopt, want true")
	}
	var many []string
	for i := range 3 * maxAdopted {
		many = append(many, fmt.Sprintf("f%d", i))
	}
	var d OffloadChange
	d.Adopt(many)
	if n := len(d.Cleared()); n != maxAdopted {
		t.Errorf("Adopt of %d names took %d, want at most %d", len(many), n, maxAdopted)
	}
}

// TestOffloadGroup: the features of each offload, and none else.
func TestOffloadGroup(t *testing.T) {
	var o Offloads
	for name, want := range map[string]*bool{
		"rx-gro": &o.GRO, "rx-gro-hw": &o.GRO, "rx-gro-list": &o.GRO, "rx-lro": &o.LRO,
		"tx-generic-segmentation": &o.GSO, "tx-tcp-segmentation": &o.TSO, "tx-tcp6-segmentation": &o.TSO,
		"tx-tcp-ecn-segmentation": &o.TSO, "tx-tcp-mangleid-segmentation": &o.TSO, "tx-tcp-accecn-segmentation": &o.TSO,
		"tx-udp-segmentation": nil, "tx-checksum-ipv4": nil, "rx-checksum": nil, "tx-gre-segmentation": nil,
	} {
		if got := offloadGroup(&o, name); got != want {
			t.Errorf("offloadGroup(%q) = %p, want %p", name, got, want)
		}
	}
}
