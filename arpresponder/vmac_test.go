package arpresponder

import (
	"crypto/sha256"
	"math/rand/v2"
	"net/netip"
	"testing"
)

var ifMAC = [6]byte{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}

// TestVirtualMACDocumented recomputes VirtualMAC from its documentation:
// sha256 of the domain string, the interface MAC and the sorted unique VIPs
// as 16 bytes each, first 6 bytes, U/L set and I/G clear.
func TestVirtualMACDocumented(t *testing.T) {
	var in []byte
	in = append(in, "udr virtual mac v1\x00"...)
	in = append(in, ifMAC[:]...)
	for _, a := range []netip.Addr{vip4, vip4b, vip6} { // sorted as 16 bytes
		b := a.As16()
		in = append(in, b[:]...)
	}
	sum := sha256.Sum256(in)
	var want [6]byte
	copy(want[:], sum[:])
	want[0] = want[0]&^0x01 | 0x02

	got := VirtualMAC(ifMAC, []netip.Addr{vip6, vip4b, vip4})
	if got != want {
		t.Fatalf("VirtualMAC = %s, want %s", mac(got), mac(want))
	}
}

func TestVirtualMACProperties(t *testing.T) {
	base := VirtualMAC(ifMAC, []netip.Addr{vip4, vip4b, vip6})
	same := []struct {
		name string
		vips []netip.Addr
	}{
		{"reordered", []netip.Addr{vip6, vip4, vip4b}},
		{"duplicates", []netip.Addr{vip4, vip6, vip4, vip4b, vip6}},
		{"IPv4-mapped", []netip.Addr{netip.AddrFrom16(vip4.As16()), vip4b, vip6}},
		{"zone", []netip.Addr{vip4, vip4b, vip6.WithZone("eth0")}},
		{"ignored addresses", []netip.Addr{vip4, {}, zero4, vip4b, allNodes6, zero6, vip6}},
	}
	for _, tt := range same {
		if got := VirtualMAC(ifMAC, tt.vips); got != base {
			t.Errorf("%s: VirtualMAC = %s, want %s as for the plain set", tt.name, mac(got), mac(base))
		}
	}

	other := ifMAC
	other[5] ^= 1
	differ := []struct {
		name  string
		ifMAC [6]byte
		vips  []netip.Addr
	}{
		{"other interface MAC", other, []netip.Addr{vip4, vip4b, vip6}},
		{"VIP removed", ifMAC, []netip.Addr{vip4, vip6}},
		{"VIP added", ifMAC, []netip.Addr{vip4, vip4b, vip6, client4}},
		{"no VIPs", ifMAC, nil},
	}
	for _, tt := range differ {
		if got := VirtualMAC(tt.ifMAC, tt.vips); got == base {
			t.Errorf("%s: VirtualMAC = %s, the same as for the base set", tt.name, mac(got))
		}
	}
}

// TestVirtualMACLocalUnicast checks the address bits over many pseudo-random
// interface MACs and VIP sets (fixed seed, so failures reproduce).
func TestVirtualMACLocalUnicast(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[[6]byte]bool)
	for range 2000 {
		var m [6]byte
		for i := range m {
			m[i] = byte(rng.UintN(256))
		}
		vips := make([]netip.Addr, rng.IntN(4))
		for i := range vips {
			vips[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.UintN(256))})
		}
		v := VirtualMAC(m, vips)
		if v[0]&0x02 == 0 || v[0]&0x01 != 0 {
			t.Fatalf("VirtualMAC(%s, %v) = %s: not locally administered unicast", mac(m), vips, mac(v))
		}
		if v == m {
			t.Fatalf("VirtualMAC(%s, %v) equals the interface MAC", mac(m), vips)
		}
		seen[v] = true
	}
	// Distinct inputs almost surely give distinct MACs (46 random bits);
	// a collapse to few values would mean the hash input is not used.
	if len(seen) < 1900 {
		t.Fatalf("2000 inputs gave only %d distinct MACs", len(seen))
	}
}
