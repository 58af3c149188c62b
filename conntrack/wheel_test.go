package conntrack

import (
	"math/rand/v2"
	"testing"

	"github.com/udr-lb/udr/service"
)

// TestSweepOnTime: in a large table, each connection leaves the table, and
// its count leaves its real server, at the sweep of its deadline, with one
// small Sweep per clock step and no packet.
func TestSweepOnTime(t *testing.T) {
	tb, reg, ids := newTestTable(t, 1_000_000, 1, Options{})
	// Three connections, one per timeout: UDP 300 s, CLOSE 10 s (a RST),
	// ESTABLISHED 900 s.
	udpKey, rstKey, estKey := testKey(udp, 1), testKey(tcp, 500_000), testKey(tcp, 999_999)
	for _, k := range []Key{udpKey, rstKey, estKey} {
		mustInsert(t, tb, k, ids[0], 1)
	}
	mustUpdate(t, tb, udpKey, 0, 1)
	mustUpdate(t, tb, rstKey, TCPRst, 1)
	mustUpdate(t, tb, estKey, TCPSyn, 1)
	mustUpdate(t, tb, estKey, TCPAck, 1)
	deadline := map[Key]uint32{rstKey: 11, udpKey: 301, estKey: 901}
	for now := uint32(2); now <= 902; now++ {
		tb.Sweep(now, 256)
		left := 0
		for k, d := range deadline {
			_, in := find(tb, k)
			if in != (now < d) {
				t.Fatalf("at %d (deadline %d) %v in the table: %v", now, d, k, in)
			}
			if in {
				left++
			}
		}
		if c := countsOf(reg, ids[0]); int(c.Active+c.Inactive) != left || tb.Len() != left {
			t.Fatalf("at %d: server counts %+v, Len %d, want %d connections", now, c, tb.Len(), left)
		}
	}
}

// find reports whether k has a slot, without expiring it as Lookup would.
func find(tb *Table, k Key) (Entry, bool) {
	i := tb.find(&k)
	if i < 0 {
		return Entry{}, false
	}
	return tb.slots[i].entry(), true
}

// checkWheel checks the wheel's invariants: every block holding an entry
// is filed in one bucket under a bound not after any of its entries'
// expiry times, the buckets' lists are well linked, and the bitmap says
// which buckets are in use.
func checkWheel(t *testing.T, tb *Table) {
	t.Helper()
	w := &tb.w
	filed := make(map[int32]bool)
	for h := range w.head {
		prev := int32(listHead)
		for b := w.head[h]; b != noBlock; b = w.blocks[b].next {
			bl := &w.blocks[b]
			if bl.prev != prev || bl.bucket != uint32(h) || filed[b] {
				t.Fatalf("bucket %d: block %d prev %d bucket %d (want prev %d), seen before %v", h, b, bl.prev, bl.bucket, prev, filed[b])
			}
			filed[b] = true
			prev = b
		}
		if used := w.used[h>>6]&(1<<(h&63)) != 0; used != (w.head[h] != noBlock) {
			t.Fatalf("bucket %d: used bit %v, head %d", h, used, w.head[h])
		}
	}
	for i := range tb.slots {
		s := &tb.slots[i]
		if s.empty() {
			continue
		}
		b := int32(i >> blockShift)
		if !filed[b] || w.blocks[b].prev == unfiled {
			t.Fatalf("slot %d holds an entry but block %d is not filed", i, b)
		}
		if int32(s.expiry-w.blocks[b].min) < 0 {
			t.Fatalf("slot %d expires at %d, before its block's bound %d", i, s.expiry, w.blocks[b].min)
		}
	}
	for b := range w.blocks {
		if (w.blocks[b].prev != unfiled) != filed[int32(b)] {
			t.Fatalf("block %d: prev %d but filed %v", b, w.blocks[b].prev, filed[int32(b)])
		}
	}
}

// TestWheelRandom runs random inserts, packets, deletes and clock steps on
// a crowded table (long clusters, so that deletion moves entries across
// blocks) and checks after each step the wheel's invariants, the counts,
// and that a Sweep with budget for the whole table leaves no entry whose
// timer has fired.
func TestWheelRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb, reg, ids := newTestTable(t, 2000, 2, Options{})
	reg.State(ids[0]).Available.Store(true)
	reg.State(ids[1]).Available.Store(true)
	// Long ESTABLISHED and UDP timeouts keep the table crowded: long
	// clusters, across blocks.
	tb.SetTimeouts(service.Timeouts{TCP: 20_000, UDP: 5_000})
	p := Persistence{Timeout: 30, Netmask: 24}
	now := uint32(1)
	flags := []uint8{TCPSyn, TCPSyn, TCPSyn, TCPAck, TCPAck, TCPRst, TCPFin | TCPAck, 0}
	for step := range 60_000 {
		conn := rng.IntN(6000)
		k := testKey(tcp, conn)
		if conn%5 == 0 {
			k.Proto = udp
		}
		switch r := rng.IntN(1000); {
		case r < 700:
			fuzzPacket(t, tb, k, conn%7 == 0, p, ids[conn&1], flags[rng.IntN(len(flags))], now)
		case r < 800:
			tb.Delete(k, now)
		case r < 960:
			if rng.IntN(16) == 0 {
				now++
			}
			tb.Sweep(now, 64)
		case r < 962:
			// Server 1 deleted (expire_nodest_conn=1 flush), or back.
			st := reg.State(ids[1])
			if !st.Available.Load() {
				st.Available.Store(true)
				break
			}
			st.Available.Store(false)
			var f Flush
			for !tb.FlushNodest(&f, now, 1+rng.IntN(300)) {
			}
			tb.Range(func(k Key, e Entry) bool {
				if e.Dest == ids[1] && !(k.Template && e.Controlled > 0) {
					t.Fatalf("step %d: %v of the deleted server left after the flush: %+v", step, k, e)
				}
				return true
			})
		default:
			now += uint32(rng.IntN(3))
			tb.Sweep(now, len(tb.slots))
			tb.Range(func(k Key, e Entry) bool {
				if int32(now-e.Expiry) >= 0 {
					t.Fatalf("step %d: %v expired at %d, still there at %d after a full Sweep", step, k, e.Expiry, now)
				}
				return true
			})
		}
		if step%97 == 0 {
			checkWheel(t, tb)
			checkTable(t, tb, reg, ids)
		}
	}
	checkWheel(t, tb)
	t.Logf("at the end: %d entries of %d, stats %+v", tb.Len(), tb.Cap(), tb.Stats())
}

// TestNextDue: NextDue tells when the next timer fires, so that an idle
// owner can sleep until then.
func TestNextDue(t *testing.T) {
	tb, _, ids := newTestTable(t, 1000, 1, Options{TicksPerSecond: 100})
	if _, ok := tb.NextDue(0); ok {
		t.Fatal("NextDue of an empty table: ok")
	}
	k := testKey(udp, 1)
	mustInsert(t, tb, k, ids[0], 100)
	mustUpdate(t, tb, k, 0, 100) // UDP: 300 s, 30,000 ticks
	tb.Sweep(100, 64)
	due, ok := tb.NextDue(0)
	if !ok || int32(due-100) <= 0 || int32(due-30_100) > 0 {
		t.Fatalf("NextDue = %d, %v; want in (100, 30100]", due, ok)
	}
	// Step from due to due as an idle owner would: the entry goes at
	// exactly 30,100.
	for now := uint32(100); tb.Len() > 0; {
		due, ok := tb.NextDue(0)
		if !ok {
			t.Fatal("NextDue: none with an entry in the table")
		}
		if int32(due-now) > 0 {
			now = due
		}
		tb.Sweep(now, 64)
		if tb.Len() == 0 && now != 30_100 {
			t.Fatalf("expired at %d, want 30100", now)
		}
	}
}

// TestSweepBudget: a Sweep that runs out of budget leaves NextDue at now,
// and the calls that follow finish the work.
func TestSweepBudget(t *testing.T) {
	tb, reg, ids := newTestTable(t, 100_000, 1, Options{})
	for i := range 50_000 {
		k := testKey(udp, i)
		mustInsert(t, tb, k, ids[0], 1)
		mustUpdate(t, tb, k, 0, 1)
	}
	tb.Sweep(1, 64)
	calls := 0
	for tb.Len() > 0 {
		tb.Sweep(301, 64*blockSlots)
		calls++
		if due, ok := tb.NextDue(0); tb.Len() > 0 && (!ok || int32(due-301) > 0) {
			t.Fatalf("after %d calls, %d entries left but NextDue = %d, %v", calls, tb.Len(), due, ok)
		}
	}
	if nblocks := len(tb.w.blocks); calls > nblocks/64+2 {
		t.Fatalf("%d calls of 64 blocks for %d blocks", calls, nblocks)
	}
	if c := countsOf(reg, ids[0]); c != (counts{}) {
		t.Fatalf("counts %+v after every entry expired", c)
	}
}

// TestFlushNodest: the flush expires every connection of a deleted server
// and its templates, leaves the others, and takes templates that only
// controlled the flushed connections with them.
func TestFlushNodest(t *testing.T) {
	tb, reg, ids := newTestTable(t, 100_000, 2, Options{})
	reg.State(ids[1]).Available.Store(true)
	reg.State(ids[0]).Available.Store(true)
	p := Persistence{Timeout: 360, Netmask: 32}
	for i := range 20_000 {
		k := testKey(tcp, i)
		dest := ids[i&1]
		if i%4 < 2 {
			mustInsert(t, tb, k, dest, 1)
		} else {
			tk := p.TemplateKey(k)
			if err := tb.InsertTemplate(tk, dest, p.Timeout, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := tb.InsertControlled(k, p, 1); err != nil {
				t.Fatal(err)
			}
		}
		mustUpdate(t, tb, k, TCPSyn, 1)
		mustUpdate(t, tb, k, TCPAck, 1)
	}
	before := countsOf(reg, ids[1])
	reg.State(ids[0]).Available.Store(false) // deleted
	var f Flush
	steps := 0
	for !tb.FlushNodest(&f, 2, 4096) {
		steps++
	}
	if steps < 10 {
		t.Fatalf("the flush took %d steps of 4096 slots: not incremental", steps)
	}
	if c := countsOf(reg, ids[0]); c != (counts{}) {
		t.Fatalf("deleted server's counts %+v after the flush", c)
	}
	if c := countsOf(reg, ids[1]); c != before {
		t.Fatalf("other server's counts %+v, were %+v", c, before)
	}
	tb.Range(func(k Key, e Entry) bool {
		if e.Dest == ids[0] {
			t.Fatalf("%v of the deleted server left", k)
		}
		return true
	})
	checkWheel(t, tb)
}

// TestTemplateRearmOnTime: in a large table swept once a second with a
// small budget, a template whose timer fires while it controls a
// connection is re-armed for 60 s (ip_vs_conn_expire, expire_later), and
// leaves the table and its server's PersistConn when the re-armed timer
// fires with no connection left; the connection leaves at its own
// deadline.
func TestTemplateRearmOnTime(t *testing.T) {
	tb, reg, ids := newTestTable(t, 1_000_000, 1, Options{})
	p := Persistence{Timeout: 30, Netmask: 32}
	k := testKey(tcp, 777_777)
	tk := p.TemplateKey(k)
	if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(k, p, 1); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, tb, k, TCPSyn, 1)
	mustUpdate(t, tb, k, TCPAck, 1)  // ESTABLISHED
	mustUpdate(t, tb, k, TCPRst, 50) // CLOSE: 10 s, gone at 60
	// The template fires at 31 with k alive: re-armed to 91; at 91 it
	// controls nothing and goes.
	for now := uint32(2); now <= 100; now++ {
		tb.Sweep(now, 256)
		_, connIn := find(tb, k)
		te, tmplIn := find(tb, tk)
		c := countsOf(reg, ids[0])
		if connIn != (now < 60) || tmplIn != (now < 91) {
			t.Fatalf("at %d: connection in the table %v (want %v), template %v (want %v)", now, connIn, now < 60, tmplIn, now < 91)
		}
		if want := int32(0); tmplIn {
			want = 1
			if c.Persist != want {
				t.Fatalf("at %d: PersistConn %d, want 1", now, c.Persist)
			}
			if now >= 31 && (te.Expiry != 91 || te.Flags&FlagRearmed == 0) {
				t.Fatalf("at %d: template %+v, want re-armed to 91", now, te)
			}
		} else if c.Persist != 0 {
			t.Fatalf("at %d: PersistConn %d after the template left", now, c.Persist)
		}
	}
}

// TestSweepAcrossWrap: timers fire on time across the wrap of the uint32
// clock (497 days of 10 ms ticks).
func TestSweepAcrossWrap(t *testing.T) {
	tb, reg, ids := newTestTable(t, 10_000, 1, Options{TicksPerSecond: 100})
	start := uint32(0xffff_ffff - 15_000)
	tb.Sweep(start, 64)
	for i := range 100 {
		k := testKey(udp, i)
		at := start + uint32(i)*300
		mustInsert(t, tb, k, ids[0], at)
		mustUpdate(t, tb, k, 0, at) // expires at + 30,000: across the wrap
	}
	for now := start; tb.Len() > 0; now++ {
		tb.Sweep(now, 64*blockSlots)
		for i := range 100 {
			_, in := find(tb, testKey(udp, i))
			if want := int32(now-(start+uint32(i)*300+30_000)) < 0; in != want {
				t.Fatalf("at %#x: connection %d in the table %v, want %v", now, i, in, want)
			}
		}
		if now == start+100*300+30_000 {
			t.Fatalf("entries left at %#x", now)
		}
	}
	if c := countsOf(reg, ids[0]); c != (counts{}) {
		t.Fatalf("counts %+v", c)
	}
	checkWheel(t, tb)
}

// TestNextDueChecks: with checks, NextDue passes over buckets whose blocks
// are due a round or more later, so an idle owner wakes once, at the
// deadline, instead of once a round.
func TestNextDueChecks(t *testing.T) {
	tb, _, ids := newTestTable(t, 1000, 1, Options{TicksPerSecond: 100})
	k := testKey(udp, 1)
	mustInsert(t, tb, k, ids[0], 100)
	mustUpdate(t, tb, k, 0, 100) // expires at 30,100: 7 rounds of 4096 ahead
	// The block was filed at the insert's 3 s timer, 400: its scan then
	// files it at 30,100.
	tb.Sweep(100, 64)
	if due, ok := tb.NextDue(64); !ok || due != 400 {
		t.Fatalf("NextDue(64) = %d, %v; want 400, the insert's timer", due, ok)
	}
	tb.Sweep(400, 64)
	if due, ok := tb.NextDue(0); !ok || due != 30_100-7*wheelSize {
		t.Errorf("NextDue(0) = %d, %v; want %d, the bucket's first tick", due, ok, 30_100-7*wheelSize)
	}
	if due, ok := tb.NextDue(64); !ok || due != 30_100 {
		t.Errorf("NextDue(64) = %d, %v; want 30100", due, ok)
	}
	if due, ok := tb.NextDue(3); !ok || due != 30_100-4*wheelSize {
		t.Errorf("NextDue(3) = %d, %v; want %d (three rounds passed over)", due, ok, 30_100-4*wheelSize)
	}
	wakes := 0
	for now := uint32(400); tb.Len() > 0; wakes++ {
		due, _ := tb.NextDue(64)
		now = due
		tb.Sweep(now, 64)
	}
	if wakes != 1 {
		t.Errorf("%d wakes to expire one entry, want 1", wakes)
	}
}
