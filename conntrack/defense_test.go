package conntrack

import (
	"testing"

	"github.com/udr-lb/udr/dest"
)

func TestEvidence(t *testing.T) {
	tb, _, ids := newTestTable(t, 16, 1, Options{TicksPerSecond: 100})
	k := testKey(tcp, 1)
	mustInsert(t, tb, k, ids[0], 1000)
	slot := func() *slot { return &tb.slots[tb.find(&k)] }
	for i, f := range []uint8{TCPSyn, TCPAck, TCPAck, TCPAck} {
		e := mustUpdate(t, tb, k, f, 1000+uint32(i)*20) // 200 ms apart
		if e.Controlled != 0 {
			t.Fatalf("packet %d: a connection's Entry.Controlled %d, want 0", i+1, e.Controlled)
		}
		if got, want := evPacketsOf(slot().controlled), min(uint32(i+1), 3); got != want {
			t.Fatalf("packet %d: counted %d packets, want %d", i+1, got, want)
		}
		if slot().controlled&evConfirmed != 0 {
			t.Fatalf("packet %d, %d ms after the first: confirmed", i+1, i*200)
		}
	}
	mustUpdate(t, tb, k, TCPAck, 1099)
	if slot().controlled&evConfirmed != 0 {
		t.Fatal("confirmed by a packet 990 ms after the first")
	}
	mustUpdate(t, tb, k, TCPAck, 1100)
	if slot().controlled&evConfirmed == 0 {
		t.Fatal("not confirmed by a packet 1 s after the first")
	}
	// The tick of the first packet is kept modulo 2^24: across the wrap
	// of the table's clock too.
	k2 := testKey(tcp, 2)
	mustInsert(t, tb, k2, ids[0], 1<<32-50)
	mustUpdate(t, tb, k2, TCPSyn, 1<<32-50)
	if mustUpdate(t, tb, k2, TCPAck, 49); tb.slots[tb.find(&k2)].controlled&evConfirmed != 0 {
		t.Fatal("confirmed 990 ms after the first packet, across the clock's wrap")
	}
	if mustUpdate(t, tb, k2, TCPAck, 50); tb.slots[tb.find(&k2)].controlled&evConfirmed == 0 {
		t.Fatal("not confirmed 1 s after the first packet, across the clock's wrap")
	}
}

func TestDefenseLevels(t *testing.T) {
	// 8 entries, 7/8 of them is 7: the pressure threshold.
	tb, _, ids := newTestTable(t, 8, 1, Options{DropEntry: DefenseAuto, SecureTCP: DefenseAuto})
	now := uint32(10)
	modes := func() [2]DefenseMode { d, s := tb.Defense(); return [2]DefenseMode{d, s} }
	tb.Sweep(now, 100)
	if got := modes(); got != [2]DefenseMode{DefenseAuto, DefenseAuto} {
		t.Fatalf("empty table: modes %v, want auto, off", got)
	}
	for i := range 7 {
		mustInsert(t, tb, testKey(tcp, i), ids[0], now)
		mustUpdate(t, tb, testKey(tcp, i), TCPSyn, now)
		mustUpdate(t, tb, testKey(tcp, i), TCPAck, now)
	}
	if !tb.Pressure() {
		t.Fatal("7 of 8 entries: no pressure")
	}
	// The levels change once a second, as update_defense_level runs.
	tb.Sweep(now, 100)
	if got := modes(); got != [2]DefenseMode{DefenseAuto, DefenseAuto} {
		t.Fatalf("within the second: modes %v, want unchanged", got)
	}
	now++
	tb.Sweep(now, 100)
	if got := modes(); got != [2]DefenseMode{DefenseAutoOn, DefenseAutoOn} {
		t.Fatalf("under pressure: modes %v, want both on", got)
	}
	// secure_tcp's state table: a new SYN leads to SYNACK.
	k := testKey(tcp, 100)
	mustInsert(t, tb, k, ids[0], now)
	if e := mustUpdate(t, tb, k, TCPSyn, now); e.State != StateSynAck {
		t.Fatalf("SYN with secure_tcp on: %v, want SYNACK", e.State)
	}
	// Below 7/8 again: both off at the next second.
	for i := range 7 {
		tb.Delete(testKey(tcp, i), now)
	}
	tb.Delete(k, now)
	tb.Sweep(now, 100)
	if got := modes(); got != [2]DefenseMode{DefenseAutoOn, DefenseAutoOn} {
		t.Fatalf("within the second: modes %v, want unchanged", got)
	}
	now++
	tb.Sweep(now, 100)
	if got := modes(); got != [2]DefenseMode{DefenseAuto, DefenseAuto} {
		t.Fatalf("no pressure: modes %v, want auto, off", got)
	}
	mustInsert(t, tb, k, ids[0], now)
	if e := mustUpdate(t, tb, k, TCPSyn, now); e.State != StateSynRecv {
		t.Fatalf("SYN with secure_tcp off: %v, want SYN_RECV", e.State)
	}
	// Always on and off take effect at once.
	tb.SetDefense(DefenseOff, DefenseAlways)
	if got := modes(); got != [2]DefenseMode{DefenseOff, DefenseAlways} {
		t.Fatalf("modes %v after SetDefense(off, always)", got)
	}
	k2 := testKey(tcp, 101)
	mustInsert(t, tb, k2, ids[0], now)
	if e := mustUpdate(t, tb, k2, TCPSyn, now); e.State != StateSynAck {
		t.Fatalf("SYN with secure_tcp always: %v, want SYNACK", e.State)
	}
	if _, err := ParseDefenseMode(4); err == nil {
		t.Fatal("ParseDefenseMode(4): no error")
	}
}

// TestDropEntry: the drop_entry walk removes what the kernel's
// ip_vs_random_dropentry would, and no confirmed connection.
func TestDropEntry(t *testing.T) {
	tb, reg, ids := newTestTable(t, 16, 1, Options{DropEntry: DefenseAlways}) // 19 slots: one walk
	type conn struct {
		key  Key
		pkts []uint32 // times of its packets: a SYN, then ACKs
		drop bool     // dropped by the walks up to time 200
	}
	conns := []conn{
		{testKey(tcp, 1), []uint32{0, 0, 2}, false},           // confirmed, idle 198 s
		{testKey(tcp, 2), []uint32{200}, false},               // half-open, new at 200
		{testKey(tcp, 3), []uint32{150}, true},                // half-open, idle 50 s
		{testKey(tcp, 4), []uint32{100, 100, 100}, true},      // unconfirmed, idle 100 s
		{testKey(tcp, 5), []uint32{190, 190, 190}, false},     // unconfirmed, idle 10 s
		{testKey(udp, 6), []uint32{10}, true},                 // UDP, one packet, idle 190 s
		{testKey(tcp, 7), []uint32{0, 0, 0, 120, 150}, false}, // confirmed, idle 50 s
	}
	for _, c := range conns {
		mustInsert(t, tb, c.key, ids[0], c.pkts[0])
		for i, at := range c.pkts {
			f := TCPAck
			if i == 0 {
				f = TCPSyn
			}
			mustUpdate(t, tb, c.key, f, at)
		}
	}
	p := Persistence{Timeout: 300, Netmask: 32}
	unused := p.TemplateKey(testKey(tcp, 20<<16)) // another client
	if err := tb.InsertTemplate(unused, ids[0], p.Timeout, 190); err != nil {
		t.Fatal(err)
	}
	ctl := testKey(tcp, 21<<16)
	if err := tb.InsertTemplate(p.TemplateKey(ctl), ids[0], p.Timeout, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(ctl, p, 100); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, tb, ctl, TCPSyn, 100) // half-open: dropped, then its template
	tb.Sweep(200, 1000)
	for _, c := range conns {
		if _, ok := tb.Lookup(c.key, 200); ok == c.drop {
			t.Errorf("connection %d (packets at %v): present %v, want dropped %v", c.key.CPort, c.pkts, ok, c.drop)
		}
	}
	for _, k := range []Key{unused, ctl, p.TemplateKey(ctl)} {
		if _, ok := tb.Lookup(k, 200); ok {
			t.Errorf("%+v not dropped", k)
		}
	}
	// The controlled connection's template goes with it, uncounted.
	if tb.Len() != 4 || tb.Stats() != (Stats{Dropped: 5}) {
		t.Fatalf("Len %d, Stats %+v, want 4 entries left and 5 dropped", tb.Len(), tb.Stats())
	}
	if got := countsOf(reg, ids[0]); got != (counts{Active: 4}) {
		t.Fatalf("counts %+v after the drops", got)
	}
}

// TestFloodKeepsConfirmed is the attack on the table that made a full
// table evict real established connections: 3 s of spoofed SYNs and
// SYN+ACK pairs (200 new tuples per 10 ms tick) into a 1024-entry table,
// while 20
// long connections send a packet every 500 ms and a short connection
// (SYN, ACK and request, FIN, last ACK over 40 ms) starts every tick. No
// long connection and no short one may lose its entry.
func TestFloodKeepsConfirmed(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"auto defences", Options{DropEntry: DefenseAuto, SecureTCP: DefenseAuto}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			floodTable(t, tc.opts)
		})
	}
}

func floodTable(t *testing.T, opts Options) {
	const (
		capacity = 1024
		long     = 20
		perTick  = 200
		start    = 300 // ticks: the long connections begin at 100
		end      = 600 // 3 s of flood
	)
	opts.TicksPerSecond = 100
	tb, _, ids := newTestTable(t, capacity, 2, opts)
	longKey := func(i int) Key { k := testKey(tcp, i); k.Client[12] = 192; return k }
	shortKey := func(i int) Key { k := testKey(tcp, i); k.Client[12] = 198; return k }
	spoofed := 0
	var lostLong, lostShort, shorts int
	lostAt := map[int]uint32{}
	send := func(k Key, id dest.ID, flags uint8, now uint32) bool {
		if flags == TCPSyn {
			mustInsert(t, tb, k, id, now)
		}
		_, ok := tb.Update(k, flags, now)
		return ok
	}
	for now := uint32(100); now <= end+100; now++ {
		tb.Sweep(now, 4096)
		if now >= start && now < end {
			for i := range perTick {
				k := testKey(tcp, spoofed)
				spoofed++
				send(k, ids[spoofed%2], TCPSyn, now)
				if i%2 == 1 {
					send(k, ids[spoofed%2], TCPAck, now)
				}
				if i == perTick/2 {
					// The short connections' packets, amid the flood.
					for id := now - 4; id <= now; id++ {
						if id < start || id >= end {
							continue
						}
						var pkts []uint8
						switch now - id {
						case 0:
							pkts = []uint8{TCPSyn}
							shorts++
						case 1:
							pkts = []uint8{TCPAck, TCPAck | 0x08} // ACK, request
						case 3:
							pkts = []uint8{TCPFin | TCPAck}
						case 4:
							pkts = []uint8{TCPAck}
						}
						for _, f := range pkts {
							if !send(shortKey(int(id)), ids[0], f, now) && lostAt[int(id)] == 0 {
								lostAt[int(id)] = now
								lostShort++
							}
						}
					}
				}
			}
		}
		for i := range long {
			k := longKey(i)
			switch {
			case now == 100:
				send(k, ids[i%2], TCPSyn, now)
				send(k, ids[i%2], TCPAck, now)
			case (int(now)+i*5)%50 == 0:
				if _, ok := tb.Update(k, TCPAck, now); !ok && lostAt[-1-i] == 0 {
					lostAt[-1-i] = now
					lostLong++
				}
			}
		}
		if tb.Len() > tb.Cap() {
			t.Fatalf("Len %d > Cap %d", tb.Len(), tb.Cap())
		}
	}
	st := tb.Stats()
	t.Logf("%d spoofed tuples, %d short connections; table %+v", spoofed, shorts, st)
	if lostLong != 0 {
		t.Errorf("%d of %d long connections lost their entry", lostLong, long)
	}
	if lostShort != 0 {
		t.Errorf("%d of %d short connections lost their entry", lostShort, shorts)
	}
}

// TestRestoredEvidence: a connection taken over from a saved table ranks
// above one- and two-packet entries, and its next packet confirms it.
func TestRestoredEvidence(t *testing.T) {
	tb, _, ids := newTestTable(t, 16, 1, Options{TicksPerSecond: 100})
	k := testKey(tcp, 1)
	if err := tb.Restore(k, Entry{Dest: ids[0], State: StateEstablished}, 90000, 500); err != nil {
		t.Fatal(err)
	}
	s := &tb.slots[tb.find(&k)]
	if c, _ := tb.evictClass(s, 500); c != classUnconfirmed {
		t.Fatalf("restored connection in eviction class %d, want %d", c, classUnconfirmed)
	}
	mustUpdate(t, tb, k, TCPAck, 500)
	if c, _ := tb.evictClass(&tb.slots[tb.find(&k)], 500); c != classConfirmed {
		t.Fatalf("restored connection after a packet in eviction class %d, want %d", c, classConfirmed)
	}
}
