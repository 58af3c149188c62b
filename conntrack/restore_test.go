package conntrack

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRestore copies a table with connections in several states, a
// template with controlled connections and a UDP connection into a fresh
// table, templates first, as a restart does, and checks that the copy has
// the same entries, the same time left, the templates' controlled counts
// and the real servers' counts.
func TestRestore(t *testing.T) {
	src, srcReg, ids := newTestTable(t, 64, 2, Options{})
	const now = 100
	p := Persistence{Timeout: 300, Netmask: 24}
	// Two established, one in FIN_WAIT, one half-open, one UDP.
	for i, flags := range [][]uint8{{TCPSyn, TCPAck}, {TCPSyn, TCPAck}, {TCPSyn, TCPAck, TCPFin | TCPAck}, {TCPSyn}} {
		k := testKey(tcp, i)
		mustInsert(t, src, k, ids[i%2], now)
		for _, f := range flags {
			mustUpdate(t, src, k, f, now)
		}
	}
	mustInsert(t, src, testKey(udp, 9), ids[1], now)
	mustUpdate(t, src, testKey(udp, 9), 0, now)
	// A template controlling two connections, one established.
	c1, c2 := testKey(tcp, 20), testKey(tcp, 21)
	if err := src.InsertTemplate(p.TemplateKey(c1), ids[0], p.Timeout, now); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{c1, c2} {
		if _, err := src.InsertControlled(k, p, now); err != nil {
			t.Fatal(err)
		}
	}
	mustUpdate(t, src, c1, TCPSyn, now)
	mustUpdate(t, src, c1, TCPAck, now)

	dst, dstReg, dstIDs := newTestTable(t, 64, 2, Options{})
	if dstIDs[0] != ids[0] || dstIDs[1] != ids[1] {
		t.Fatalf("registries differ: %v %v", ids, dstIDs)
	}
	const later = 5000
	restore := func(templates bool) {
		src.Range(func(k Key, e Entry) bool {
			if k.Template == templates {
				if err := dst.Restore(k, e, e.Expires(now), later); err != nil {
					t.Fatalf("Restore(%v): %v", k, err)
				}
			}
			return true
		})
	}
	restore(true)
	restore(false)

	type row struct {
		E    Entry
		Left uint32
	}
	dump := func(tb *Table, at uint32) map[Key]row {
		m := make(map[Key]row)
		tb.Range(func(k Key, e Entry) bool {
			left := e.Expires(at)
			e.Expiry = 0
			m[k] = row{e, left}
			return true
		})
		return m
	}
	if diff := cmp.Diff(dump(src, now), dump(dst, later)); diff != "" {
		t.Errorf("restored table differs (-src +dst):\n%s", diff)
	}
	for _, id := range ids {
		if a, b := countsOf(srcReg, id), countsOf(dstReg, id); a != b {
			t.Errorf("server %v: counts %+v after restore, want %+v", id, b, a)
		}
	}
	if e, ok := dst.Lookup(p.TemplateKey(c1), later); !ok || e.Controlled != 2 {
		t.Errorf("template after restore: %+v %v, want 2 controlled", e, ok)
	}

	// The restored entries live on: the template still controls its
	// connections, which expire and release it as in the source table.
	if n := dst.Sweep(later+src.timeouts[StateEstablished]+1, 1<<20); n == 0 {
		t.Error("nothing expired after the longest timeout")
	}
	if dst.Len() != 0 {
		// The template is re-armed while it controls connections and
		// expires after them.
		dst.Sweep(later+src.timeouts[StateEstablished]+1000, 1<<20)
	}
	if dst.Len() != 0 {
		t.Errorf("%d entries left after every timer fired", dst.Len())
	}
	for _, id := range ids {
		if c := countsOf(dstReg, id); c != (counts{}) {
			t.Errorf("server %v: counts %+v after every entry expired, want zero", id, c)
		}
	}
}

func TestRestoreRefuses(t *testing.T) {
	tb, reg, ids := newTestTable(t, 2, 1, Options{})
	k := testKey(tcp, 1)
	est := Entry{Dest: ids[0], State: StateEstablished, Flags: FlagActive}
	tk := Persistence{Timeout: 60, Netmask: 32}.TemplateKey(k)
	for _, tc := range []struct {
		name string
		k    Key
		e    Entry
		left uint32
	}{
		{"no dest", k, Entry{State: StateEstablished}, 10},
		{"no time left", k, est, 0},
		{"template flag on a connection", k, Entry{Dest: ids[0], State: StateNone, Flags: FlagTemplate}, 10},
		{"template key without flag", tk, Entry{Dest: ids[0], State: StateNone}, 10},
		{"template established", tk, Entry{Dest: ids[0], State: StateEstablished, Flags: FlagTemplate}, 10},
		{"TCP in state UDP", k, Entry{Dest: ids[0], State: StateUDP}, 10},
		{"TCP in state ASSURED", k, Entry{Dest: ids[0], State: StateAssured}, 10},
		{"UDP in state ESTABLISHED", testKey(udp, 1), est, 10},
		{"re-armed connection", k, Entry{Dest: ids[0], State: StateEstablished, Flags: FlagRearmed}, 10},
	} {
		if err := tb.Restore(tc.k, tc.e, tc.left, 1); err == nil {
			t.Errorf("%s: restored", tc.name)
		}
	}
	if tb.Len() != 0 || countsOf(reg, ids[0]) != (counts{}) {
		t.Fatalf("refused restores changed the table: %d entries, counts %+v", tb.Len(), countsOf(reg, ids[0]))
	}
	// A controlled connection without its template comes back
	// uncontrolled; a duplicate is refused; a full table refuses
	// without evicting.
	ctl := Entry{Dest: ids[0], State: StateEstablished, Flags: FlagControlled | FlagAllPorts, Netmask: 24}
	if err := tb.Restore(k, ctl, 10, 1); err != nil {
		t.Fatal(err)
	}
	if e, _ := tb.Lookup(k, 1); e.Flags != FlagActive || e.Netmask != 0 {
		t.Errorf("orphan controlled connection restored as %+v, want active and uncontrolled", e)
	}
	if err := tb.Restore(k, est, 10, 1); !errors.Is(err, errDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
	if err := tb.Restore(testKey(tcp, 2), est, 10, 1); err != nil {
		t.Fatal(err)
	}
	if err := tb.Restore(testKey(tcp, 3), est, 10, 1); !errors.Is(err, ErrTableFull) {
		t.Errorf("full table: %v, want ErrTableFull", err)
	}
	if c := countsOf(reg, ids[0]); c != (counts{Active: 2}) {
		t.Errorf("counts %+v, want 2 active", c)
	}
}
