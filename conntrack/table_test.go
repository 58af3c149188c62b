package conntrack

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

var testSvc = service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}

// newTestTable returns a table and n real servers 192.0.2.11.. of testSvc.
func newTestTable(t testing.TB, capacity, n int, opts Options) (*Table, *dest.Registry, []dest.ID) {
	t.Helper()
	reg := dest.NewRegistry(n)
	ids := make([]dest.ID, n)
	for i := range ids {
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})
		id, err := reg.Assign(testSvc.DestKey(service.Dest{Addr: addr, Port: 80, Weight: 1}))
		if err != nil {
			t.Fatalf("registry ID: %v", err)
		}
		ids[i] = id
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.TicksPerSecond == 0 {
		opts.TicksPerSecond = 1 // the tests count in seconds
	}
	return New(capacity, reg, opts), reg, ids
}

// testKey returns the i-th of 16M distinct IPv4 connection keys to
// 192.0.2.100:80.
func testKey(proto uint8, i int) Key {
	return Key{
		Client: [16]byte{10: 0xff, 11: 0xff, 12: 203, 13: 0, 14: byte(i >> 24), 15: byte(i >> 16)},
		VIP:    [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 100},
		CPort:  uint16(i),
		VPort:  80,
		Proto:  proto,
	}
}

const tcp, udp = uint8(service.TCP), uint8(service.UDP)

// counts is a real server's connection counters, for comparisons.
type counts struct {
	Active, Inactive, Persist int32
	Overloaded                bool
}

func countsOf(reg *dest.Registry, id dest.ID) counts {
	d := reg.State(id)
	return counts{d.Active.Load(), d.Inactive.Load(), d.Persist.Load(), d.Overloaded.Load()}
}

func mustInsert(t testing.TB, tb *Table, k Key, dest dest.ID, now uint32) {
	t.Helper()
	if err := tb.Insert(k, dest, now); err != nil {
		t.Fatalf("Insert(%v): %v", k, err)
	}
}

func mustUpdate(t testing.TB, tb *Table, k Key, flags uint8, now uint32) Entry {
	t.Helper()
	e, ok := tb.Update(k, flags, now)
	if !ok {
		t.Fatalf("Update(%v, %#x, %d): no entry", k, flags, now)
	}
	return e
}

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name    string
		proto   uint8
		flags   []uint8 // packets, all at time 100
		opts    Options
		state   State
		timeout uint32
	}{
		{"new connection before its first packet", tcp, nil, Options{}, StateNone, 3},
		{"SYN_RECV", tcp, []uint8{TCPSyn}, Options{}, StateSynRecv, 60},
		{"ESTABLISHED", tcp, []uint8{TCPSyn, TCPAck}, Options{}, StateEstablished, 900},
		{"ESTABLISHED set", tcp, []uint8{TCPSyn, TCPAck}, Options{Timeouts: service.Timeouts{TCP: 30}}, StateEstablished, 30},
		{"FIN_WAIT", tcp, []uint8{TCPSyn, TCPAck, TCPFin | TCPAck}, Options{}, StateFinWait, 120},
		{"FIN_WAIT set", tcp, []uint8{TCPSyn, TCPAck, TCPFin}, Options{Timeouts: service.Timeouts{TCPFin: 7}}, StateFinWait, 7},
		{"FIN_WAIT stays on ACK", tcp, []uint8{TCPSyn, TCPAck, TCPFin, TCPAck}, Options{}, StateFinWait, 120},
		{"TIME_WAIT", tcp, []uint8{TCPSyn, TCPFin}, Options{}, StateTimeWait, 120},
		{"CLOSE after RST", tcp, []uint8{TCPSyn, TCPAck, TCPRst}, Options{}, StateClose, 10},
		{"CLOSE without flags", tcp, []uint8{0}, Options{}, StateClose, 10},
		{"SYNACK with secure_tcp", tcp, []uint8{TCPSyn}, Options{SecureTCP: DefenseAlways}, StateSynAck, 120},
		{"UDP", udp, []uint8{0}, Options{}, StateUDP, 300},
		{"UDP set", udp, []uint8{0}, Options{Timeouts: service.Timeouts{UDP: 5}}, StateUDP, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const now = 100
			for _, by := range []string{"lookup", "sweep"} {
				tb, _, ids := newTestTable(t, 16, 1, tt.opts)
				k := testKey(tt.proto, 1)
				mustInsert(t, tb, k, ids[0], now)
				for _, f := range tt.flags {
					mustUpdate(t, tb, k, f, now)
				}
				e, ok := tb.Lookup(k, now+tt.timeout-1)
				if !ok {
					t.Fatalf("entry gone at now+%d, want alive until now+%d", tt.timeout-1, tt.timeout)
				}
				if e.State != tt.state || e.Expiry != now+tt.timeout || e.Expires(now) != tt.timeout {
					t.Fatalf("entry %+v, want state %v expiry %d", e, tt.state, now+tt.timeout)
				}
				switch by {
				case "lookup":
					if _, ok := tb.Lookup(k, now+tt.timeout+1); ok {
						t.Fatalf("lookup at now+%d found the entry", tt.timeout+1)
					}
				case "sweep":
					if tt.opts.SecureTCP.Active() {
						// secure_tcp's short timeout: an unconfirmed
						// half-open connection goes once idle for 10 s.
						tb.Sweep(now+halfOpenSecure-1, 1000)
						if tb.Len() != 1 {
							t.Fatalf("secure_tcp: entry gone after %d s idle", halfOpenSecure-1)
						}
						tb.Sweep(now+halfOpenSecure, 1000)
						if tb.Len() != 0 || tb.Stats() != (Stats{Dropped: 1}) {
							t.Fatalf("secure_tcp: after %d s idle: Len %d, Stats %+v, want dropped", halfOpenSecure, tb.Len(), tb.Stats())
						}
						continue
					}
					if n := tb.Sweep(now+tt.timeout-1, 1000); n != 0 {
						t.Fatalf("Sweep before expiry removed %d", n)
					}
					if n := tb.Sweep(now+tt.timeout+1, 1000); n != 1 {
						t.Fatalf("Sweep after expiry removed %d, want 1", n)
					}
				}
				if tb.Len() != 0 || tb.Stats().Expired != 1 {
					t.Fatalf("after expiry by %s: Len %d, Stats %+v", by, tb.Len(), tb.Stats())
				}
			}
		})
	}
}

func TestSetTimeoutsAtNextPacket(t *testing.T) {
	tb, _, ids := newTestTable(t, 16, 1, Options{})
	k := testKey(tcp, 1)
	mustInsert(t, tb, k, ids[0], 0)
	mustUpdate(t, tb, k, TCPSyn, 0)
	mustUpdate(t, tb, k, TCPAck, 0)
	tb.SetTimeouts(service.Timeouts{TCP: 50})
	if e, _ := tb.Lookup(k, 10); e.Expiry != 900 {
		t.Fatalf("expiry %d after SetTimeouts, want the old 900 until the next packet", e.Expiry)
	}
	if e := mustUpdate(t, tb, k, TCPAck, 10); e.Expiry != 60 {
		t.Fatalf("expiry %d after the next packet, want 10+50", e.Expiry)
	}
}

func TestDRLifetimeCounts(t *testing.T) {
	tb, reg, ids := newTestTable(t, 16, 1, Options{})
	k := testKey(tcp, 1)
	steps := []struct {
		name  string
		do    func(now uint32)
		now   uint32
		state State
		want  counts
	}{
		{"insert", func(now uint32) { mustInsert(t, tb, k, ids[0], now) }, 0, StateNone, counts{Inactive: 1}},
		{"SYN", func(now uint32) { mustUpdate(t, tb, k, TCPSyn, now) }, 0, StateSynRecv, counts{Active: 1}},
		{"ACK", func(now uint32) { mustUpdate(t, tb, k, TCPAck, now) }, 1, StateEstablished, counts{Active: 1}},
		{"data", func(now uint32) { mustUpdate(t, tb, k, TCPAck|0x08, now) }, 500, StateEstablished, counts{Active: 1}},
		{"FIN", func(now uint32) { mustUpdate(t, tb, k, TCPFin|TCPAck, now) }, 600, StateFinWait, counts{Inactive: 1}},
		{"ACK in FIN_WAIT", func(now uint32) { mustUpdate(t, tb, k, TCPAck, now) }, 700, StateFinWait, counts{Inactive: 1}},
	}
	for _, st := range steps {
		st.do(st.now)
		e, ok := tb.Lookup(k, st.now)
		if !ok || e.State != st.state {
			t.Fatalf("%s: entry %+v ok=%v, want state %v", st.name, e, ok, st.state)
		}
		if diff := cmp.Diff(st.want, countsOf(reg, ids[0])); diff != "" {
			t.Fatalf("%s: counts (-want +got):\n%s", st.name, diff)
		}
	}
	if n := tb.Sweep(700+120, 100); n != 1 {
		t.Fatalf("Sweep at FIN_WAIT expiry removed %d, want 1", n)
	}
	if diff := cmp.Diff(counts{}, countsOf(reg, ids[0])); diff != "" {
		t.Fatalf("after expiry: counts (-want +got):\n%s", diff)
	}
}

func TestUDPAlwaysInactive(t *testing.T) {
	tb, reg, ids := newTestTable(t, 16, 1, Options{})
	k := testKey(udp, 1)
	mustInsert(t, tb, k, ids[0], 0)
	for _, f := range []uint8{0, TCPSyn, TCPAck, TCPSyn | TCPAck, TCPFin, TCPRst} {
		if e := mustUpdate(t, tb, k, f, 1); e.State != StateUDP || e.Flags&FlagActive != 0 {
			t.Fatalf("UDP entry %+v after flags %#x", e, f)
		}
	}
	if diff := cmp.Diff(counts{Inactive: 1}, countsOf(reg, ids[0])); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
}

func TestOverload(t *testing.T) {
	tests := []struct {
		name   string
		u, l   uint32
		set    int32 // connections when the flag gets set
		clears int32 // connections left when the flag clears
	}{
		{"upper only: clear below 3/4 of u", 4, 0, 4, 2},
		{"upper and lower: clear below l", 4, 2, 4, 1},
		{"lower equal to upper", 3, 3, 3, 2},
		{"upper 1", 1, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, reg, ids := newTestTable(t, 64, 1, Options{})
			d := reg.State(ids[0])
			d.UThreshold.Store(tt.u)
			d.LThreshold.Store(tt.l)
			for i := range int(tt.set) {
				if d.Overloaded.Load() {
					t.Fatalf("overloaded with %d connections, want at %d", i, tt.set)
				}
				mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
			}
			if !d.Overloaded.Load() {
				t.Fatalf("not overloaded at %d connections", tt.set)
			}
			for i := int(tt.set) - 1; i >= 0; i-- {
				tb.Delete(testKey(tcp, i), 0)
				if got, want := d.Overloaded.Load(), int32(i) > tt.clears; got != want {
					t.Fatalf("%d connections left: overloaded %v, want %v", i, got, want)
				}
			}
		})
	}
	t.Run("no thresholds: cleared by any unbind", func(t *testing.T) {
		tb, reg, ids := newTestTable(t, 64, 1, Options{})
		d := reg.State(ids[0])
		mustInsert(t, tb, testKey(tcp, 1), ids[0], 0)
		mustInsert(t, tb, testKey(tcp, 2), ids[0], 0)
		d.Overloaded.Store(true) // left over from a threshold since removed
		tb.Delete(testKey(tcp, 1), 0)
		if d.Overloaded.Load() {
			t.Fatal("overload flag kept after an unbind with no thresholds")
		}
	})
}

func TestDeleteAndInsertReplace(t *testing.T) {
	tb, reg, ids := newTestTable(t, 16, 2, Options{})
	k := testKey(tcp, 1)
	mustInsert(t, tb, k, ids[0], 0)
	mustUpdate(t, tb, k, TCPSyn, 0)
	mustInsert(t, tb, k, ids[1], 1) // rescheduled: replaces the old entry
	if e, _ := tb.Lookup(k, 1); e.Dest != ids[1] || e.State != StateNone {
		t.Fatalf("replaced entry %+v, want NONE on dest %d", e, ids[1])
	}
	if tb.Len() != 1 {
		t.Fatalf("Len %d, want 1", tb.Len())
	}
	if diff := cmp.Diff([]counts{{}, {Inactive: 1}}, []counts{countsOf(reg, ids[0]), countsOf(reg, ids[1])}); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	if !tb.Delete(k, 1) || tb.Delete(k, 1) {
		t.Fatal("Delete: want true then false")
	}
	if tb.Len() != 0 || countsOf(reg, ids[1]) != (counts{}) {
		t.Fatalf("after Delete: Len %d, counts %+v", tb.Len(), countsOf(reg, ids[1]))
	}
}

// TestManyDeletes checks backward-shift deletion: with a tiny table every
// key collides with others, and every remaining key must stay findable.
func TestManyDeletes(t *testing.T) {
	tb, _, ids := newTestTable(t, 14, 1, Options{})
	present := map[int]bool{}
	for round := range 200 {
		i := (round * 7) % 40
		if present[i] {
			tb.Delete(testKey(tcp, i), 0)
			delete(present, i)
		} else if tb.Len() < tb.Cap() {
			mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
			present[i] = true
		}
		for j := range 40 {
			if _, ok := tb.Lookup(testKey(tcp, j), 0); ok != present[j] {
				t.Fatalf("round %d: key %d found=%v, want %v", round, j, ok, present[j])
			}
		}
	}
}

func TestRange(t *testing.T) {
	tb, _, ids := newTestTable(t, 16, 1, Options{})
	want := map[Key]State{}
	for i := range 5 {
		k := testKey(tcp, i)
		mustInsert(t, tb, k, ids[0], 0)
		want[k] = mustUpdate(t, tb, k, TCPSyn, 0).State
	}
	got := map[Key]State{}
	tb.Range(func(k Key, e Entry) bool {
		got[k] = e.State
		return true
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Range (-want +got):\n%s", diff)
	}
	n := 0
	tb.Range(func(Key, Entry) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("Range went on after false: %d calls", n)
	}
}

func TestKeyAddrs(t *testing.T) {
	c, v := netip.MustParseAddrPort("198.51.100.7:40000"), netip.MustParseAddrPort("192.0.2.100:80")
	k := NewKey(tcp, c, v)
	gc, gv := k.Addrs()
	if gc != c || gv != v || k.Template || !k.is4() {
		t.Fatalf("NewKey(%v, %v).Addrs() = %v, %v", c, v, gc, gv)
	}
}

func TestAllocs(t *testing.T) {
	tb, _, ids := newTestTable(t, 1024, 1, Options{})
	for i := range 1000 {
		mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
	}
	k := testKey(tcp, 500)
	now := uint32(1)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Lookup", func() { tb.Lookup(k, now) }},
		{"Update existing", func() { tb.Update(k, TCPAck, now) }},
		{"Insert and Delete", func() {
			if err := tb.Insert(testKey(tcp, 5000), ids[0], now); err != nil {
				panic(err)
			}
			tb.Delete(testKey(tcp, 5000), now)
		}},
		{"Insert replacing", func() { _ = tb.Insert(k, ids[0], now) }},
		{"Sweep", func() { tb.Sweep(now, 64) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(1000, tt.fn); a != 0 {
				t.Fatalf("%s allocs = %v, want 0", tt.name, a)
			}
		})
	}
	t.Run("Insert into a full table", func(t *testing.T) {
		full, _, ids := newTestTable(t, 64, 1, Options{})
		i := 0
		a := testing.AllocsPerRun(1000, func() {
			i++
			if err := full.Insert(testKey(tcp, i), ids[0], 0); err != nil && !errors.Is(err, ErrTableFull) {
				panic(err)
			}
		})
		if a != 0 {
			t.Fatalf("allocs = %v, want 0", a)
		}
	})
}
