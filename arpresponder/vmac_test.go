package arpresponder

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

var ifMAC = [6]byte{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}

// TestVirtualMACDocumented recomputes VirtualMAC from its documentation:
// 02, then the first 5 bytes of sha256 of the domain string and the
// interface MAC.
func TestVirtualMACDocumented(t *testing.T) {
	var in []byte
	in = append(in, "udr virtual mac v2\x00"...)
	in = append(in, ifMAC[:]...)
	sum := sha256.Sum256(in)
	want := [6]byte{0x02}
	copy(want[1:], sum[:])

	if got := VirtualMAC(ifMAC); got != want {
		t.Fatalf("VirtualMAC = %s, want %s", mac(got), mac(want))
	}
	other := ifMAC
	other[5] ^= 1
	if got := VirtualMAC(other); got == want {
		t.Errorf("VirtualMAC of another interface MAC = %s, the same", mac(got))
	}
}

// TestVirtualMACLocalUnicast checks the address bits over many pseudo-random
// interface MACs (fixed seed, so failures reproduce).
func TestVirtualMACLocalUnicast(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[[6]byte]bool)
	for range 2000 {
		var m [6]byte
		for i := range m {
			m[i] = byte(rng.UintN(256))
		}
		v := VirtualMAC(m)
		if v[0] != 0x02 {
			t.Fatalf("VirtualMAC(%s) = %s: not locally administered unicast", mac(m), mac(v))
		}
		if v == m {
			t.Fatalf("VirtualMAC(%s) equals the interface MAC", mac(m))
		}
		seen[v] = true
	}
	// Distinct inputs almost surely give distinct MACs (46 random bits);
	// a collapse to few values would mean the hash input is not used.
	if len(seen) < 1990 {
		t.Fatalf("2000 inputs gave only %d distinct MACs", len(seen))
	}
}
