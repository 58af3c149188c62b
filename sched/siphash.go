package sched

import "math/bits"

// hsipKey is an hsiphash_key_t of a 64-bit kernel: two 64-bit words.
type hsipKey [2]uint64

// hsiphash32 is the kernel's hsiphash() of a 4-byte message on a 64-bit
// kernel (lib/siphash.c hsiphash_1u32): there "HalfSipHash1-3" is really
// SipHash-1-3 with 64-bit key words, the message is the u32 in memory
// order (little-endian on the architectures udr runs on), and the 64-bit
// result is truncated to 32 bits. A 32-bit kernel computes HalfSipHash-1-3
// and gets other values; udr follows the 64-bit kernels.
func hsiphash32(m uint32, k *hsipKey) uint32 {
	v0 := k[0] ^ 0x736f6d6570736575
	v1 := k[1] ^ 0x646f72616e646f6d
	v2 := k[0] ^ 0x6c7967656e657261
	v3 := k[1] ^ 0x7465646279746573
	b := uint64(4)<<56 | uint64(m) // length in the top byte, message below

	v3 ^= b
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3) // one compression round
	v0 ^= b
	v2 ^= 0xff
	for range 3 { // three finalisation rounds
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return uint32(v0 ^ v1 ^ v2 ^ v3)
}

// sipRound is SIPHASH_PERMUTATION (include/linux/siphash.h).
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}
