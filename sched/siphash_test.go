package sched

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// sipHash is a plain SipHash-c-d over any message, written from the
// SipHash paper (Aumasson and Bernstein, 2012), to check hsiphash32.
func sipHash(c, d int, k0, k1 uint64, msg []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	var last [8]byte
	n := len(msg) / 8 * 8
	copy(last[:], msg[n:])
	last[7] = byte(len(msg))
	words := make([]uint64, 0, n/8+1)
	for i := 0; i < n; i += 8 {
		words = append(words, binary.LittleEndian.Uint64(msg[i:]))
	}
	words = append(words, binary.LittleEndian.Uint64(last[:]))
	for _, m := range words {
		v3 ^= m
		for range c {
			round()
		}
		v0 ^= m
	}
	v2 ^= 0xff
	for range d {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// TestSipHashReference checks the reference model against the SipHash-2-4
// vectors of the reference implementation (key 00..0f, message 00..n-1).
func TestSipHashReference(t *testing.T) {
	k0 := binary.LittleEndian.Uint64([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	k1 := binary.LittleEndian.Uint64([]byte{8, 9, 10, 11, 12, 13, 14, 15})
	msg := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	for _, tt := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{2, 0x0d6c8009d9a94f5a},
		{3, 0x85676696d7fb7e2d},
		{4, 0xcf2794e0277187b7},
		{8, 0x93f5f5799a932462},
		{15, 0xa129ca6149be45e5}, // the SipHash paper, appendix A
	} {
		if got := sipHash(2, 4, k0, k1, msg[:tt.n]); got != tt.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#x, want %#x", tt.n, got, tt.want)
		}
	}
}

// TestHSipHash32 checks the kernel's 64-bit hsiphash of a u32 against
// SipHash-1-3 of its four little-endian bytes, truncated to 32 bits.
func TestHSipHash32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []hsipKey{maglevKey1, maglevKey2, {0, 0}, {r.Uint64(), r.Uint64()}}
	for _, k := range keys {
		for range 1000 {
			m := r.Uint32()
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], m)
			want := uint32(sipHash(1, 3, k[0], k[1], b[:]))
			if got := hsiphash32(m, &k); got != want {
				t.Fatalf("hsiphash32(%#x, %x) = %#x, want %#x", m, k, got, want)
			}
		}
	}
}
