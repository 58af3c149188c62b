// Package checksum is the Internet checksum (RFC 1071) that IPv4 headers,
// TCP, UDP, ICMP and ICMPv6 carry, and the pseudo-headers that TCP, UDP and
// ICMPv6 include in it (RFC 793, RFC 768, RFC 8200 §8.1). It is the one
// implementation in udr: the forwarder's header checks and the checksums it
// completes, the ICMP errors it sends, the neighbour discovery messages of
// arpresponder and the health checker's TCP segments all use it.
//
// A sum is a uint64 accumulator: start at 0 (or at a pseudo-header sum),
// Add the bytes, then Finish it for the value to store, or ask Valid for a
// message whose checksum field is filled in. Words of the pseudo-header
// (a protocol number, a length) may be added to the accumulator as plain
// integers. Nothing here allocates.
package checksum

import (
	"encoding/binary"
	"math/bits"
)

// Add adds the bytes of b, as big-endian 16-bit words with an odd last byte
// padded with zero, to the one's complement accumulator sum and returns the
// new accumulator. Only the last piece of a message may have an odd length:
// a message summed in pieces gets the same sum as in one piece when every
// piece but the last is of even length.
//
// It reads eight bytes at a time and adds them with end-around carry; as the
// one's complement sum does not depend on byte order (RFC 1071 §2(B)), it
// sums little-endian words and swaps the folded result once.
func Add(sum uint64, b []byte) uint64 {
	var s, c uint64
	for len(b) >= 64 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[32:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[40:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[48:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[56:]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		tail += uint64(b[0]) // the low byte of a little-endian word
	}
	s, c = bits.Add64(s, tail, c)
	s, c = bits.Add64(s, 0, c)
	s += c // a carry here leaves s at 0, so this cannot carry again
	return sum + uint64(bits.ReverseBytes16(fold64(s)))
}

// fold64 folds a 64-bit one's complement sum to 16 bits. Each step adds
// the high half to the low one; the bounds shrink to 2^33-2, 2^32-1,
// 0x1fffe and 0xffff.
func fold64(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// Fold returns the 16-bit one's complement sum that the accumulator holds.
// A message with a valid checksum sums to 0xffff.
func Fold(sum uint64) uint16 { return fold64(sum) }

// Finish returns the checksum of the accumulated message, the one's
// complement of its sum, for a message whose checksum field was zero while
// it was summed.
func Finish(sum uint64) uint16 { return ^fold64(sum) }

// Valid reports whether an accumulated message, its checksum field
// included, has a correct checksum: its sum is all ones.
func Valid(sum uint64) bool { return fold64(sum) == 0xffff }

// Checksum returns the checksum of b: Finish(Add(0, b)).
func Checksum(b []byte) uint16 { return Finish(Add(0, b)) }

// Pseudo returns the sum of the pseudo-header that TCP, UDP and ICMPv6
// include in their checksum: the source and destination addresses, both
// 4 bytes (IPv4: RFC 793 §3.1, RFC 768) or both 16 bytes (IPv6: RFC 8200
// §8.1), the upper-layer protocol and the upper-layer length in bytes.
func Pseudo(src, dst []byte, proto uint8, length int) uint64 {
	return Add(Add(0, src), dst) + uint64(proto) + uint64(length)
}

// IPv4HeaderValid reports whether hdr, a whole IPv4 header (RFC 791: the
// 20 fixed bytes and any options, IHL 32-bit words), has a correct header
// checksum; bytes past the last whole 32-bit word are not read, and a
// header shorter than 20 bytes is not valid. Every IPv4 frame the
// forwarder takes passes here: 32-bit words summed into 64 bits need no
// carry handling.
func IPv4HeaderValid(hdr []byte) bool {
	if len(hdr) < 20 {
		return false
	}
	// The 20 fixed bytes at once, as little-endian words: the one's
	// complement sum does not depend on byte order, and 0xffff reads the
	// same both ways. Options, rare, take the loop.
	le := binary.LittleEndian
	s := uint64(le.Uint32(hdr)) + uint64(le.Uint32(hdr[4:])) + uint64(le.Uint32(hdr[8:])) +
		uint64(le.Uint32(hdr[12:])) + uint64(le.Uint32(hdr[16:]))
	for hdr = hdr[20:]; len(hdr) >= 4; hdr = hdr[4:] {
		s += uint64(le.Uint32(hdr))
	}
	return fold64(s) == 0xffff
}
