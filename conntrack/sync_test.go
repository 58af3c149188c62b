package conntrack

import (
	"slices"
	"testing"
)

// The packet count follows in_pkts modulo the period over many cycles,
// whatever the threshold, and still reads "three or more" for eviction.
func TestSyncCount(t *testing.T) {
	for _, c := range [][2]int{{3, 50}, {0, 7}, {1, 2}, {5, 125}} {
		tb, _, ids := newTestTable(t, 16, 1, Options{})
		if err := tb.SetSync(true, c[0], c[1], false); err != nil {
			t.Fatal(err)
		}
		k := testKey(udp, 1)
		mustInsert(t, tb, k, ids[0], 10)
		var due []int
		for pkts := 1; pkts <= 400; pkts++ {
			if e := mustUpdate(t, tb, k, 0, 10); e.SyncDue {
				due = append(due, pkts)
			}
			if n, want := evPacketsOf(tb.slots[tb.find(&k)].controlled), min(pkts, 3); min(n, 3) != uint32(want) {
				t.Fatalf("%v: packet %d counts as %d packets, want %d", c, pkts, n, want)
			}
		}
		var want []int
		for pkts := 1; pkts <= 400; pkts++ {
			if pkts%c[1] == c[0] {
				want = append(want, pkts)
			}
		}
		if !slices.Equal(due, want) {
			t.Errorf("threshold %d period %d: due at %v, want %v", c[0], c[1], due, want)
		}
	}
	tb, _, _ := newTestTable(t, 16, 1, Options{})
	for _, c := range [][2]int{{3, 0}, {3, 3}, {-1, 50}, {3, MaxSyncPeriod + 1}} {
		if err := tb.SetSync(true, c[0], c[1], false); err == nil {
			t.Errorf("threshold %d period %d: no error", c[0], c[1])
		}
	}
}

// Off, nothing is due and the count stops at 3, as before sync existed.
func TestSyncOff(t *testing.T) {
	tb, _, ids := newTestTable(t, 16, 1, Options{})
	k := testKey(udp, 1)
	mustInsert(t, tb, k, ids[0], 10)
	for pkts := 1; pkts <= 60; pkts++ {
		if e := mustUpdate(t, tb, k, 0, 10); e.SyncDue {
			t.Fatalf("sync off: packet %d due", pkts)
		}
	}
	if n := evPacketsOf(tb.slots[tb.find(&k)].controlled); n != 3 {
		t.Errorf("sync off: count %d after 60 packets, want 3", n)
	}
}

// A record that no entry could be is refused with an error, the table
// unchanged.
func TestApplySyncRefuses(t *testing.T) {
	tb, reg, ids := newTestTable(t, 16, 1, Options{})
	tk := testKey(tcp, 2)
	tk.Template = true
	for _, c := range []struct {
		k Key
		e Entry
	}{
		{testKey(tcp, 1), Entry{Dest: ids[0], State: numTCPStates}},
		{testKey(udp, 1), Entry{Dest: ids[0], State: StateEstablished}},
		{testKey(tcp, 1), Entry{Dest: ids[0], State: StateEstablished, Flags: FlagTemplate}},
		{tk, Entry{Dest: ids[0], State: StateEstablished}},
		{testKey(tcp, 1), Entry{State: StateEstablished}},
	} {
		if _, err := tb.ApplySync(c.k, c.e, 100, 10); err == nil {
			t.Errorf("%+v: no error", c.e)
		}
	}
	if tb.Len() != 0 || reg.State(ids[0]).Total() != 0 {
		t.Errorf("refused records left %d entries, %d counted", tb.Len(), reg.State(ids[0]).Total())
	}
}

// The kernel's state numbers convert both ways; out of range is an error.
func TestKernelState(t *testing.T) {
	for s := StateNone; s < numStates; s++ {
		proto, tmpl := tcp, false
		switch s {
		case StateUDP:
			proto = udp
		case StateAssured:
			tmpl = true
		}
		if got, err := StateFromKernel(s.KernelState(), proto, tmpl); err != nil || got != s {
			t.Errorf("%v: back as %v, %v", s, got, err)
		}
	}
	for _, c := range []struct {
		v     uint16
		proto uint8
		tmpl  bool
	}{{11, tcp, false}, {1, udp, false}, {2, tcp, true}} {
		if _, err := StateFromKernel(c.v, c.proto, c.tmpl); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
