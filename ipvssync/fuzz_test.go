package ipvssync

import (
	"bytes"
	"testing"
)

// FuzzSyncDecode: DecodeMessage never panics and never returns more
// connections than the bytes allow; what it accepts re-encodes to a
// canonical message that decodes to the same connections and re-encodes
// to itself; a golden message re-encodes to its own bytes.
func FuzzSyncDecode(f *testing.F) {
	var golden [][]byte
	for _, g := range goldens() {
		golden = append(golden, unhex(f, g.dump))
		f.Add(golden[len(golden)-1])
	}
	f.Add(unhex(f, v0Message))
	f.Add(AppendHello(nil, 3))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b, nil)
		if len(m.Conns)*ConnLenV0 > len(b) {
			t.Fatalf("%d conns from %d bytes", len(m.Conns), len(b))
		}
		if err != nil || m.Skipped != 0 {
			return
		}
		var e Encoder
		e.SyncID, e.MaxLen = m.SyncID, 0xffff
		for i := range m.Conns {
			if m.Conns[i].Check() != nil {
				return // one-packet, sequence-adjusted: never sent
			}
			if full, ok := e.Add(&m.Conns[i]); !ok || full != nil {
				t.Fatalf("Add(%+v) = %x, %v", m.Conns[i], full, ok)
			}
		}
		enc := e.Flush()
		if enc == nil {
			enc = AppendHello(nil, m.SyncID)
		}
		m2, err := DecodeMessage(enc, nil)
		if err != nil || m2.SyncID != m.SyncID || len(m2.Conns) != len(m.Conns) {
			t.Fatalf("re-encoded %x: syncid %d, %d conns, %v; want %d, %d", enc, m2.SyncID, len(m2.Conns), err, m.SyncID, len(m.Conns))
		}
		for i, c := range m.Conns {
			c.Flags &^= FlagHashed
			if m2.Conns[i] != c {
				t.Fatalf("conn %d: %+v re-decoded as %+v", i, c, m2.Conns[i])
			}
		}
		var e2 Encoder
		e2.SyncID, e2.MaxLen = m.SyncID, 0xffff
		for i := range m2.Conns {
			e2.Add(&m2.Conns[i])
		}
		enc2 := e2.Flush()
		if enc2 == nil {
			enc2 = AppendHello(nil, m.SyncID)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not canonical: %x re-encodes to %x", enc, enc2)
		}
		for _, g := range golden {
			if bytes.Equal(b, g) && !bytes.Equal(enc, b) {
				t.Fatalf("golden %x re-encodes to %x", g, enc)
			}
		}
	})
}
