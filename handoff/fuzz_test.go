package handoff

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecode feeds Decode arbitrary bytes: it must return a state or an
// error, never panic, and never allocate more than the input allows; a
// state it accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	good, err := Encode(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:HeaderSize])
	f.Add([]byte(magic))
	empty, _ := Encode(&State{})
	f.Add(empty)
	huge := bytes.Clone(good)
	binary.LittleEndian.PutUint32(huge[32:], MaxEntries)
	f.Add(reseal(huge))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if s != nil {
				t.Fatalf("state and error %v", err)
			}
			return
		}
		// What was decoded came from the bytes: no more records than
		// they hold.
		if n := len(s.Services)*ServiceSize + len(s.Dests)*DestSize + len(s.Neighbors)*NeighborSize + len(s.Entries)*EntrySize; n > len(b) {
			t.Fatalf("%d bytes of records from %d bytes", n, len(b))
		}
		out, err := Encode(s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded bytes differ")
		}
	})
}
