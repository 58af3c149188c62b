package checksum

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
)

// refSum is the plain RFC 1071 §4.1 loop: add 16-bit big-endian words
// into 32 bits, the odd last byte as the high byte of a word, then fold the
// carries back in.
func refSum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// RFC 1071 §3 works this example: the words 0001 f203 f4f5 f6f7 sum to
// ddf2, and the checksum is its complement.
func TestRFC1071Example(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(Add(0, b)); got != 0xddf2 {
		t.Errorf("Fold(Add(example)) = %#04x, want 0xddf2", got)
	}
	if got := Checksum(b); got != ^uint16(0xddf2) {
		t.Errorf("Checksum(example) = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	if got := Fold(Add(0, []byte{0x12, 0x34, 0x56})); got != 0x1234+0x5600 {
		t.Errorf("odd byte: sum = %#04x, want %#04x", got, 0x1234+0x5600)
	}
}

// fill returns n bytes of one of the patterns that stress a one's complement
// sum differently: random, all ones (a carry from every word), all zeros,
// and random bytes among runs of 0xff.
func fill(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	switch r.IntN(4) {
	case 0:
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	case 1:
		for i := range b {
			b[i] = 0xff
		}
	case 2:
	case 3:
		for i := range b {
			if r.IntN(8) == 0 {
				b[i] = byte(r.Uint32())
			} else {
				b[i] = 0xff
			}
		}
	}
	return b
}

// TestAddReference compares Add with refSum over every length up to 300
// at every start offset modulo 8, and over random lengths up to 64 KiB,
// from random initial accumulators.
func TestAddReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(data []byte, init uint16) {
		t.Helper()
		want := refSum(append(binary.BigEndian.AppendUint16(nil, init), data...))
		if got := Fold(Add(uint64(init), data)); got != want {
			t.Fatalf("Fold(Add(%#04x, %d bytes %x...)) = %#04x, want %#04x", init, len(data), data[:min(len(data), 16)], got, want)
		}
	}
	for n := 0; n <= 300; n++ {
		buf := fill(r, n+8)
		for start := range 8 {
			check(buf[start:start+n], uint16(r.Uint32()))
		}
	}
	for range 2000 {
		n := r.IntN(1 << 16)
		start := r.IntN(8)
		check(fill(r, start+n)[start:], uint16(r.Uint32()))
	}
}

// TestAddIncremental checks that a message summed in pieces of even length
// (and an odd last piece) gets the sum of the whole, as the pseudo-header
// and checksum callers rely on.
func TestAddIncremental(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		b := fill(r, r.IntN(3000))
		want := Add(0, b)
		var sum uint64
		rest := b
		for len(rest) > 0 {
			n := min(len(rest), 2*r.IntN(300))
			if n == 0 {
				n = len(rest) // an odd remainder, or a zero-length pick: the last piece
			}
			sum = Add(sum, rest[:n])
			rest = rest[n:]
		}
		if Fold(sum) != Fold(want) {
			t.Fatalf("%d bytes in pieces: sum %#04x, in one %#04x", len(b), Fold(sum), Fold(want))
		}
	}
}

// TestFinishValid checks the round trip the protocols rely on: a message
// carrying the checksum Finish computed for it is Valid, and a flipped bit
// makes it invalid.
func TestFinishValid(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		b := fill(r, 2+r.IntN(1500))
		b[0], b[1] = 0, 0
		binary.BigEndian.PutUint16(b, Checksum(b))
		if !Valid(Add(0, b)) {
			t.Fatalf("%x with its checksum is not valid", b)
		}
		i := r.IntN(len(b))
		bit := byte(1) << r.IntN(8)
		b[i] ^= bit
		// A flipped bit changes the sum by ±2^k, never by a multiple of
		// 0xffff, so it is always detected.
		if Valid(Add(0, b)) {
			t.Fatalf("%x with bit %#x of byte %d flipped is still valid", b, bit, i)
		}
	}
}

// TestPseudo checks the pseudo-header sums against the layouts of RFC 793
// (IPv4) and RFC 8200 §8.1 (IPv6), written out byte by byte.
func TestPseudo(t *testing.T) {
	src4, dst4 := []byte{192, 0, 2, 1}, []byte{192, 0, 2, 100}
	ph4 := append(append(bytes.Clone(src4), dst4...), 0, 6, 0x05, 0xdc)
	if got, want := Fold(Pseudo(src4, dst4, 6, 1500)), refSum(ph4); got != want {
		t.Errorf("IPv4 pseudo-header sum = %#04x, want %#04x", got, want)
	}
	src6 := []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	dst6 := []byte{0x20, 0x01, 0x0d, 0xb8, 14: 1, 15: 0}
	ph6 := append(append(bytes.Clone(src6), dst6...), 0, 1, 0x00, 0x10, 0, 0, 0, 58) // length 65552
	if got, want := Fold(Pseudo(src6, dst6, 58, 65552)), refSum(ph6); got != want {
		t.Errorf("IPv6 pseudo-header sum = %#04x, want %#04x", got, want)
	}
}

func TestIPv4HeaderValid(t *testing.T) {
	// RFC 791 header from 192.0.2.1 to 192.0.2.100, checksum b75f.
	hdr := []byte{0x45, 0, 0, 0x3c, 0x1c, 0x46, 0x40, 0, 0x40, 6, 0xb7, 0x5f, 192, 0, 2, 1, 192, 0, 2, 100}
	binary.BigEndian.PutUint16(hdr[10:], 0)
	binary.BigEndian.PutUint16(hdr[10:], Checksum(hdr))
	if !IPv4HeaderValid(hdr) {
		t.Fatalf("header %x with its checksum is not valid", hdr)
	}
	hdr[8]--
	if IPv4HeaderValid(hdr) {
		t.Fatalf("header %x with its TTL changed is still valid", hdr)
	}
}

func TestIPv4HeaderValidOptions(t *testing.T) {
	// Every header length from 20 to 60 bytes, with random contents: valid
	// with its checksum filled in, invalid with one bit changed.
	r := rand.New(rand.NewPCG(1, 2))
	for ihl := 5; ihl <= 15; ihl++ {
		for range 100 {
			hdr := make([]byte, ihl*4+3) // trailing bytes that must not be read
			for i := range hdr {
				hdr[i] = byte(r.Uint32())
			}
			h := hdr[:ihl*4]
			binary.BigEndian.PutUint16(h[10:], 0)
			binary.BigEndian.PutUint16(h[10:], Checksum(h))
			if !IPv4HeaderValid(hdr[:ihl*4]) {
				t.Fatalf("IHL %d: header %x with its checksum is not valid", ihl, h)
			}
			h[r.IntN(len(h))] ^= 1 << r.IntN(8)
			if IPv4HeaderValid(h) {
				t.Fatalf("IHL %d: header %x with a bit changed is still valid", ihl, h)
			}
		}
	}
	if IPv4HeaderValid(make([]byte, 16)) {
		t.Fatal("a 16-byte header is valid")
	}
}

func TestAllocs(t *testing.T) {
	b := make([]byte, 1500)
	if a := testing.AllocsPerRun(1000, func() { _ = Valid(Add(Pseudo(b[:16], b[16:32], 6, len(b)), b)) }); a != 0 {
		t.Fatalf("allocs = %v, want 0", a)
	}
}

// FuzzAdd compares Add with refSum for any bytes, any split into an even
// first piece and the rest, and any initial 16-bit sum.
func FuzzAdd(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, uint16(0), uint16(0))
	f.Add(bytes.Repeat([]byte{0xff}, 67), uint16(0xffff), uint16(33))
	f.Add([]byte{}, uint16(1), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, init, split uint16) {
		want := refSum(append(binary.BigEndian.AppendUint16(nil, init), b...))
		if got := Fold(Add(uint64(init), b)); got != want {
			t.Fatalf("Fold(Add(%#04x, %x)) = %#04x, want %#04x", init, b, got, want)
		}
		n := min(int(split)&^1, len(b)&^1)
		if got := Fold(Add(Add(uint64(init), b[:n]), b[n:])); got != want {
			t.Fatalf("in two pieces at %d: %#04x, want %#04x", n, got, want)
		}
	})
}

func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{20, 40, 64, 1500, 9000} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 151)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = Fold(Add(0, buf))
			}
		})
	}
}

func BenchmarkIPv4HeaderValid(b *testing.B) {
	hdr := []byte{0x45, 0, 0, 0x3c, 0x1c, 0x46, 0x40, 0, 0x40, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 100}
	binary.BigEndian.PutUint16(hdr[10:], Checksum(hdr))
	for b.Loop() {
		if !IPv4HeaderValid(hdr) {
			b.Fatal("invalid")
		}
	}
}
