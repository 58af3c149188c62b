package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
)

// sample is a state with every kind of record: an rr and a wrr position,
// IPv4 and IPv6 servers, a connection, a template and a controlled
// connection.
func sample() *State {
	vip := netip.MustParseAddrPort("192.0.2.100:80")
	vip6 := netip.MustParseAddrPort("[2001:db8::100]:443")
	client := netip.MustParseAddrPort("198.51.100.7:40000")
	conn := conntrack.NewKey(6, client, vip)
	tmpl := conntrack.Persistence{Timeout: 300, Netmask: 24}.TemplateKey(conn)
	conn6 := conntrack.NewKey(6, netip.MustParseAddrPort("[2001:db8:1::7]:5555"), vip6)
	return &State{
		Saved: time.Unix(1765000000, 123456789),
		Services: []Service{
			{Proto: 6, Addr: vip.Addr(), Port: 80, Scheduler: "wrr", Digest: 0x1122334455667788, Position: 0xffffffff00000002},
			{Proto: 6, Addr: vip6.Addr(), Port: 443, Scheduler: "rr", Digest: 7, Position: 1},
		},
		Dests: []dest.Key{
			{Proto: 6, VIP: vip, Real: netip.MustParseAddrPort("192.0.2.11:80")},
			{Proto: 6, VIP: vip6, Real: netip.MustParseAddrPort("[2001:db8::11]:443")},
		},
		Neighbors: []Neighbor{
			{Addr: netip.MustParseAddr("192.0.2.11"), MAC: [6]byte{2, 0, 0, 0, 0, 0x11}},
			{Addr: netip.MustParseAddr("2001:db8::11"), MAC: [6]byte{2, 0, 0, 0, 0, 0x12}},
		},
		Entries: []Entry{
			{Key: tmpl, Dest: 0, Left: 299 * time.Second, State: conntrack.StateAssured, Flags: conntrack.FlagTemplate},
			{Key: conn, Dest: 0, Left: 899*time.Second + 990*time.Millisecond, State: conntrack.StateEstablished,
				Flags: conntrack.FlagActive | conntrack.FlagControlled, Netmask: 24},
			{Key: conn6, Dest: 1, Left: 2 * time.Minute, State: conntrack.StateFinWait},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	s := sample()
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := HeaderSize + 2*ServiceSize + 2*DestSize + 2*NeighborSize + 3*EntrySize; len(b) != want {
		t.Fatalf("encoded %d bytes, want %d", len(b), want)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Saved.Equal(s.Saved) {
		t.Errorf("saved %v, want %v", got.Saved, s.Saved)
	}
	got.Saved = s.Saved
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, s)
	}
	// An empty state is valid too.
	b, err = Encode(&State{Saved: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Decode(b); err != nil || len(e.Entries)+len(e.Dests)+len(e.Services) != 0 {
		t.Fatalf("empty state: %+v, %v", e, err)
	}
}

func TestLeftSaturatesAndRoundsDown(t *testing.T) {
	s := sample()
	s.Entries[0].Left = 2000 * time.Hour // beyond 2^32 ms
	s.Entries[1].Left = -time.Second
	s.Entries[2].Left = 1500 * time.Microsecond
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries[0].Left != maxLeft || got.Entries[1].Left != 0 || got.Entries[2].Left != time.Millisecond {
		t.Errorf("left %v %v %v, want %v 0 1ms", got.Entries[0].Left, got.Entries[1].Left, got.Entries[2].Left, maxLeft)
	}
}

func TestEncodeRefuses(t *testing.T) {
	s := sample()
	s.Entries[2].Dest = 2
	if _, err := Encode(s); err == nil {
		t.Error("entry with real server index 2 of 2 encoded")
	}
	s = sample()
	s.Services[0].Scheduler = "wrrrrrrrr"
	if _, err := Encode(s); err == nil {
		t.Error("scheduler name of 9 bytes encoded")
	}
}

// reseal recomputes the checksum of a file changed on purpose, so that the
// check under test is the one that fires.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[40:], checksum(b))
	return b
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	neigh0 := HeaderSize + 2*ServiceSize + 2*DestSize
	entry0 := neigh0 + 2*NeighborSize
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMagic},
		{"other file", []byte("-A -t 192.0.2.100:80 -s wrr\n"), ErrMagic},
		{"magic only", []byte(magic), ErrSize},
		{"version 2", mod(func(b []byte) []byte { b[8] = 2; return reseal(b) }), ErrVersion},
		{"version 0, checksum not resealed", mod(func(b []byte) []byte { b[8] = 0; return b }), ErrVersion},
		{"header truncated", good[:HeaderSize-1], ErrSize},
		{"body truncated", good[:len(good)-1], ErrSize},
		{"one byte more", append(bytes.Clone(good), 0), ErrSize},
		{"huge entry count", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[32:], MaxEntries); return reseal(b) }), ErrSize},
		{"entry count over the limit", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[32:], MaxEntries+1); return reseal(b) }), ErrRecord},
		{"body bit flipped", mod(func(b []byte) []byte { b[len(b)-5] ^= 1; return b }), ErrChecksum},
		{"saved time changed", mod(func(b []byte) []byte { b[16] ^= 1; return b }), ErrChecksum},
		{"checksum changed", mod(func(b []byte) []byte { b[40] ^= 0x80; return b }), ErrChecksum},
		{"header size", mod(func(b []byte) []byte { b[10] = 64; return reseal(b) }), ErrRecord},
		{"unknown scheduler", mod(func(b []byte) []byte { copy(b[HeaderSize+20:], "xyz"); return reseal(b) }), ErrRecord},
		{"state out of range", mod(func(b []byte) []byte { b[entry0+EntrySize+38] = 13; return reseal(b) }), ErrRecord},
		{"unknown flag", mod(func(b []byte) []byte { b[entry0+EntrySize+39] |= 0x80; return reseal(b) }), ErrRecord},
		{"template byte 2", mod(func(b []byte) []byte { b[entry0+37] = 2; return reseal(b) }), ErrRecord},
		{"template flag without byte", mod(func(b []byte) []byte { b[entry0+37] = 0; return reseal(b) }), ErrRecord},
		{"real server index out of range", mod(func(b []byte) []byte { b[entry0+44] = 2; return reseal(b) }), ErrRecord},
		{"reserved header bytes", mod(func(b []byte) []byte { b[13] = 1; return reseal(b) }), ErrRecord},
		{"reserved service byte", mod(func(b []byte) []byte { b[HeaderSize+1] = 1; return reseal(b) }), ErrRecord},
		{"reserved real server bytes", mod(func(b []byte) []byte { b[HeaderSize+2*ServiceSize+22] = 1; return reseal(b) }), ErrRecord},
		{"reserved neighbour bytes", mod(func(b []byte) []byte { b[neigh0+NeighborSize+23] = 1; return reseal(b) }), ErrRecord},
		{"neighbour count over the limit", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[36:], MaxNeighbors+1); return reseal(b) }), ErrRecord},
		{"reserved entry bytes", mod(func(b []byte) []byte { b[entry0+42] = 1; return reseal(b) }), ErrRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Decode(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, %v; want an error wrapping %q", s, err, tc.want)
			}
			if s != nil {
				t.Errorf("Decode returned a state with error %v", err)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "udr.state")
	s := sample()
	// An older state file is replaced.
	if err := Write(path, &State{Saved: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, s); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", path, err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	got.Saved = s.Saved
	if !reflect.DeepEqual(got, s) {
		t.Errorf("Read:\n got %+v\nwant %+v", got, s)
	}

	// A header that claims a billion entries in a small file is refused
	// before the body is read.
	b, _ := Encode(s)
	binary.LittleEndian.PutUint32(b[32:], 200_000_000)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); !errors.Is(err, ErrSize) {
		t.Errorf("Read of a file claiming 2e8 entries: %v, want ErrSize", err)
	}
	if _, err := Read(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Errorf("Read of a missing file: %v, want not-exist", err)
	}
	// Write never replaces what is not a state file.
	other := filepath.Join(dir, "rules")
	if err := os.WriteFile(other, []byte("-A -t 192.0.2.100:80 -s wrr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(other, s); err == nil {
		t.Error("Write replaced a rules file")
	}
	if b, _ := os.ReadFile(other); string(b) != "-A -t 192.0.2.100:80 -s wrr\n" {
		t.Errorf("the rules file now holds %q", b)
	}
	if err := Write(dir, s); err == nil {
		t.Error("Write replaced a directory")
	}
	if _, err := Read(dir); !errors.Is(err, ErrMagic) {
		t.Errorf("Read of a directory: %v, want ErrMagic", err)
	}
	// Write into a directory that does not exist fails and leaves nothing.
	if err := Write(filepath.Join(dir, "no", "udr.state"), s); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}
