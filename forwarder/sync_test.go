package forwarder

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/internal/udrtest"
)

// syncRules: rr on 80, UDP on 53, wlc on 443, a persistent rr on 8080.
const syncRules = `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
-A -t 192.0.2.100:443 -s wlc
-a -t 192.0.2.100:443 -r 192.0.2.11:443 -g -w 1
-a -t 192.0.2.100:443 -r 192.0.2.12:443 -g -w 1
-A -t 192.0.2.100:8080 -s rr -p 60
-a -t 192.0.2.100:8080 -r 192.0.2.11:8080 -g -w 1
-a -t 192.0.2.100:8080 -r 192.0.2.12:8080 -g -w 1
`

var (
	vip443  = netip.AddrPortFrom(udrtest.VIP, 443)
	vip8080 = netip.AddrPortFrom(udrtest.VIP, 8080)
)

// syncOn gives h's pipeline a sync queue of size records, as a worker does
// when sync is turned on.
func syncOn(tb testing.TB, h *harness, threshold, period int, persist bool, size int) *syncQueue {
	tb.Helper()
	if err := h.p.conns.SetSync(true, threshold, period, persist); err != nil {
		tb.Fatal(err)
	}
	q := newSyncQueue(size)
	h.p.sync = q
	return q
}

// take pops every record of q.
func (q *syncQueue) take() []syncEntry {
	t, h := q.tail.Load(), q.head.Load()
	var out []syncEntry
	for i := t; i != h; i++ {
		out = append(out, q.buf[i&q.mask])
	}
	q.tail.Store(h)
	return out
}

// A connection is due on its 3rd, 53rd, 103rd... packet
// (ip_vs_sync_conn_needed with sync_threshold 3 50), TCP in ESTABLISHED,
// with the state's timeout and its server.
func TestSyncThresholds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		frame   func(h *harness, i int) []byte
		state   conntrack.State
		active  bool
		timeout uint32
	}{
		{"tcp", func(h *harness, i int) []byte {
			fl := udrtest.ACK
			if i == 1 {
				fl = udrtest.SYN
			}
			return udrtest.TCP(h.toVIP(), client(1000), vip80, fl, nil)
		}, conntrack.StateEstablished, true, 900},
		{"udp", func(h *harness, i int) []byte {
			return udrtest.UDP(h.toVIP(), client(1000), vip53, []byte("q"))
		}, conntrack.StateUDP, false, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, syncRules, 1024)
			q := syncOn(t, h, 3, 50, false, 64)
			var at []int
			for i := 1; i <= 160; i++ {
				if v, _ := h.p.Process(tc.frame(h, i), epoch.Add(time.Duration(i)*time.Millisecond)); v != VerdictForward {
					t.Fatalf("packet %d: %v", i, v)
				}
				for _, e := range q.take() {
					at = append(at, i)
					k := h.p.f.key
					if e.key != k || e.dest != h.p.Decision().Dest || e.state != tc.state || e.timeout != tc.timeout ||
						(e.flags&conntrack.FlagActive != 0) != tc.active || e.flags&conntrack.FlagTemplate != 0 {
						t.Errorf("packet %d: record %+v, want key %v dest %d state %v timeout %d active %v",
							i, e, k, h.p.Decision().Dest, tc.state, tc.timeout, tc.active)
					}
				}
			}
			if want := []int{3, 53, 103, 153}; !slices.Equal(at, want) {
				t.Errorf("records at packets %v, want %v", at, want)
			}
		})
	}
}

// A change to a synced TCP state other than ESTABLISHED sends at once; a
// connection in a state that is not synced sends nothing.
func TestSyncStateChanges(t *testing.T) {
	h := newHarness(t, syncRules, 1024)
	q := syncOn(t, h, 3, 50, false, 64)
	flags := []int{udrtest.SYN, udrtest.ACK, udrtest.ACK, udrtest.ACK, udrtest.FIN | udrtest.ACK, udrtest.ACK, udrtest.RST, udrtest.ACK}
	type rec struct {
		pkt     int
		state   conntrack.State
		timeout uint32
		active  bool
	}
	var got []rec
	for i, fl := range flags {
		h.p.Process(udrtest.TCP(h.toVIP(), client(2000), vip80, fl, nil), epoch)
		for _, e := range q.take() {
			got = append(got, rec{i + 1, e.state, e.timeout, e.flags&conntrack.FlagActive != 0})
		}
	}
	want := []rec{
		{3, conntrack.StateEstablished, 900, true}, // the threshold
		{5, conntrack.StateFinWait, 120, false},    // FIN: FIN_WAIT at once
		{7, conntrack.StateClose, 10, false},       // RST: CLOSE at once
	}
	if !slices.Equal(got, want) {
		t.Errorf("records %+v, want %+v", got, want)
	}
	// A half-open connection: SYN_RECV is never synced.
	for range 60 {
		h.p.Process(udrtest.TCP(h.toVIP(), client(2001), vip80, udrtest.SYN, nil), epoch)
	}
	if rs := q.take(); len(rs) != 0 {
		t.Errorf("a SYN_RECV connection queued %d records: %+v", len(rs), rs)
	}
}

// The template of a persistent service's connection is sent along, after
// the connection, with every packet (identical copies not drained yet
// once); with sync_persist_mode only the template.
func TestSyncTemplatesAlong(t *testing.T) {
	for _, persist := range []bool{false, true} {
		h := newHarness(t, syncRules, 1024)
		q := syncOn(t, h, 3, 50, persist, 64)
		send := func(fl int) []syncEntry {
			if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(3000), vip8080, fl, nil), epoch); v != VerdictForward {
				t.Fatalf("persist mode %v: flags %#x: %v", persist, fl, v)
			}
			return q.take()
		}
		tk := conntrack.Persistence{Netmask: 32}.TemplateKey(conntrack.NewKey(6, client(3000), vip8080))
		id := func() dest.ID { return h.p.Decision().Dest }
		isTemplate := func(e syncEntry, state conntrack.State) bool {
			return e.key == tk && e.dest == id() && e.state == state && e.timeout == 60 && e.flags&conntrack.FlagTemplate != 0
		}
		// SYN: the connection is not due, its template is.
		if rs := send(udrtest.SYN); len(rs) != 1 || !isTemplate(rs[0], conntrack.StateNone) {
			t.Fatalf("persist mode %v: SYN queued %+v, want the template (NONE, 60 s)", persist, rs)
		}
		// ACK (ESTABLISHED, the template ASSURED), then the 3rd packet.
		if rs := send(udrtest.ACK); len(rs) != 1 || !isTemplate(rs[0], conntrack.StateAssured) {
			t.Fatalf("persist mode %v: ACK queued %+v, want the ASSURED template", persist, rs)
		}
		rs := send(udrtest.ACK)
		if persist {
			if len(rs) != 1 || !isTemplate(rs[0], conntrack.StateAssured) {
				t.Fatalf("persist mode: 3rd packet queued %+v, want the template only", rs)
			}
			continue
		}
		if len(rs) != 2 || rs[0].key != conntrack.NewKey(6, client(3000), vip8080) || rs[0].state != conntrack.StateEstablished ||
			!isTemplate(rs[1], conntrack.StateAssured) {
			t.Fatalf("3rd packet queued %+v, want the connection then its template", rs)
		}
		// Copies of a template not drained yet are not queued again.
		for range 2 {
			h.p.Process(udrtest.TCP(h.toVIP(), client(3000), vip8080, udrtest.ACK, nil), epoch)
		}
		if n := q.head.Load() - q.tail.Load(); n != 1 {
			t.Errorf("two more packets: %d records queued, want 1 (the template once)", n)
		}
	}
}

// A full queue drops and counts; the worker never waits.
func TestSyncQueueFull(t *testing.T) {
	h := newHarness(t, syncRules, 1024)
	q := syncOn(t, h, 0, 1, false, 4) // every packet is due
	for i := range 10 {
		if v, _ := h.p.Process(udrtest.UDP(h.toVIP(), client(uint16(4000+i)), vip53, []byte("q")), epoch); v != VerdictForward {
			t.Fatalf("datagram %d: %v", i, v)
		}
	}
	if q, d := q.head.Load(), q.dropped.Load(); q != 4 || d != 6 {
		t.Errorf("queued %d, dropped %d; want 4 and 6", q, d)
	}
	if n := len(q.take()); n != 4 {
		t.Errorf("%d records in the queue, want 4", n)
	}
}

// With sync on, the packet path allocates nothing: the queue's records
// are fixed-size, a full queue drops.
func TestSyncDoesNotAllocate(t *testing.T) {
	h := newHarness(t, syncRules, 1024)
	q := syncOn(t, h, 0, 1, false, 8)
	est := udrtest.TCP(h.toVIP(), client(5000), vip80, udrtest.ACK, nil)
	pers := udrtest.TCP(h.toVIP(), client(5001), vip8080, udrtest.ACK, nil)
	h.p.Process(udrtest.TCP(h.toVIP(), client(5000), vip80, udrtest.SYN, nil), epoch)
	h.p.Process(udrtest.TCP(h.toVIP(), client(5001), vip8080, udrtest.SYN, nil), epoch)
	buf := make([]byte, 2048)
	for name, f := range map[string][]byte{"connection": est, "persistent": pers} {
		before := q.head.Load() + q.dropped.Load()
		if a := testing.AllocsPerRun(1000, func() {
			n := copy(buf, f)
			if v, _ := h.p.Process(buf[:n], epoch); v != VerdictForward {
				t.Fatalf("%s: %v", name, v)
			}
			if q.head.Load()-q.tail.Load() == 8 {
				q.tail.Store(q.head.Load()) // drained at times, full in between
			}
		}); a != 0 {
			t.Errorf("%s: %v allocs per packet with sync on, want 0", name, a)
		}
		if q.head.Load()+q.dropped.Load() == before {
			t.Errorf("%s: no record queued or dropped: the test did not exercise sync", name)
		}
	}
	// A worker's batch, with sync on through the control plane.
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p, SyncQueue: 16})
	Workers{w}.EnableSync(true)
	batch := func() {
		w.sizes[0] = copy(w.bufs[0], est)
		w.sizes[1] = copy(w.bufs[1], pers)
		w.batch(2, epoch)
	}
	batch()
	if h.p.sync == nil || h.p.sync == q {
		t.Fatal("EnableSync did not give the pipeline the worker's queue")
	}
	Workers{w}.DrainSync(func([]SyncRecord) {})
	if a := testing.AllocsPerRun(1000, batch); a != 0 {
		t.Errorf("worker batch with sync on: %v allocs, want 0", a)
	}
}

// syncRig is two workers over syncRules, sync configured as udr run would.
func syncRig(t *testing.T) *workersRig {
	r := startWorkers(t, syncRules, 2, 1024)
	return r
}

// worker returns the worker the fanout (/32, /128) gives client c.
func (r *workersRig) worker(c netip.AddrPort) int {
	return FanoutWorker(c.Addr().As16(), 32, 128, len(r.ws))
}

// tcp sends one TCP frame from c to vip on c's worker and returns the MAC
// it went to ("" when none within a second).
func (r *workersRig) tcp(t *testing.T, c, vip netip.AddrPort, flags int) string {
	t.Helper()
	mac := r.send(t, r.worker(c), udrtest.TCP(r.h.toVIP(), c, vip, flags, nil), time.Second)
	return mac.String()
}

// entry returns k's entry, its seconds left and its worker.
func (r *workersRig) entry(t *testing.T, k conntrack.Key) (e conntrack.Entry, left uint32, worker int, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i, w := range r.ws {
		err := w.Do(ctx, func(p *Pipeline, now time.Time) {
			if got, found := p.Conns().Lookup(k, p.Ticks(now)); found {
				e, left, worker, ok = got, p.Conns().SecondsLeft(got, p.Ticks(now)), i, true
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return e, left, worker, ok
}

// counts returns ActiveConn, InActConn and PersistConn of real server
// real of the service at vip.
func (r *workersRig) counts(t *testing.T, vip netip.AddrPort, real netip.Addr) [3]int32 {
	t.Helper()
	id, ok := r.h.reg.Lookup(dest.Key{Proto: 6, VIP: vip, Real: netip.AddrPortFrom(real, vip.Port())})
	if !ok {
		t.Fatalf("no server %v of %v", real, vip)
	}
	s := r.h.reg.State(id)
	return [3]int32{s.Active.Load(), s.Inactive.Load(), s.Persist.Load()}
}

func rec(c, vip netip.AddrPort, real netip.Addr, state conntrack.State, flags conntrack.Flags, timeout uint32) SyncRecord {
	return SyncRecord{Key: conntrack.NewKey(6, c, vip), Dest: dest.Key{Proto: 6, VIP: vip, Real: netip.AddrPortFrom(real, vip.Port())},
		State: state, Flags: flags, Timeout: timeout}
}

func (r *workersRig) insert(t *testing.T, recs ...SyncRecord) (InsertStats, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return r.ws.InsertSynced(ctx, recs, 32, 128)
}

// Received records are bound to the server of the same address and port
// and counted as ip_vs_bind_dest counts a synced connection: by the
// activity flag it was sent with, not by its state; templates in
// PersistConn, with the connections of a persistent service linked.
func TestInsertSyncedBindsAndCounts(t *testing.T) {
	r := syncRig(t)
	c1 := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 1001)
	c2 := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.2"), 1002)
	c3 := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.3"), 1003)
	c4 := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.4"), 1004)
	tmpl := rec(netip.AddrPortFrom(c4.Addr(), 0), vip8080, udrtest.RS2, conntrack.StateAssured, conntrack.FlagTemplate, 60)
	tmpl.Key.Template = true
	bad := rec(c1, vip80, udrtest.RS1, 42, conntrack.FlagActive, 900)
	recs := []SyncRecord{
		rec(c1, vip443, udrtest.RS1, conntrack.StateEstablished, conntrack.FlagActive, 900),
		rec(c2, vip443, udrtest.RS1, conntrack.StateFinWait, 0, 120),
		// ESTABLISHED but sent inactive: InActConn, as the kernel counts it.
		rec(c3, vip443, udrtest.RS2, conntrack.StateEstablished, 0, 900),
		// The connection before its template, as the kernel sends them.
		rec(c4, vip8080, udrtest.RS2, conntrack.StateEstablished, conntrack.FlagActive, 900),
		tmpl,
		rec(c1, netip.AddrPortFrom(udrtest.VIP, 9999), udrtest.RS1, conntrack.StateEstablished, conntrack.FlagActive, 900),
		rec(c2, vip443, netip.MustParseAddr("192.0.2.13"), conntrack.StateEstablished, conntrack.FlagActive, 900),
		bad,
	}
	st, err := r.insert(t, recs...)
	if want := (InsertStats{Inserted: 5, NoServer: 2, Refused: 1}); st != want {
		t.Errorf("InsertSynced = %+v, want %+v", st, want)
	}
	if err == nil {
		t.Error("a record in TCP state 42: no error")
	}
	for _, c := range []struct {
		vip  netip.AddrPort
		real netip.Addr
		want [3]int32
	}{
		{vip443, udrtest.RS1, [3]int32{1, 1, 0}},
		{vip443, udrtest.RS2, [3]int32{0, 1, 0}},
		{vip8080, udrtest.RS2, [3]int32{1, 0, 1}},
		{vip80, udrtest.RS1, [3]int32{0, 0, 0}},
	} {
		if got := r.counts(t, c.vip, c.real); got != c.want {
			t.Errorf("%v %v: ActiveConn/InActConn/PersistConn %v, want %v", c.vip, c.real, got, c.want)
		}
	}
	for _, x := range recs[:5] {
		e, left, w, ok := r.entry(t, x.Key)
		if !ok {
			t.Errorf("%v: not in any table", x.Key)
			continue
		}
		if w != r.worker(netip.AddrPortFrom(netip.AddrFrom16(x.Key.Client).Unmap(), 0)) {
			t.Errorf("%v: in worker %d, not the fanout's", x.Key, w)
		}
		if e.State != x.State || left != x.Timeout || e.Flags&conntrack.FlagSynced == 0 {
			t.Errorf("%v: state %v, %d s left, flags %#x; want %v, %d s, synced", x.Key, e.State, left, e.Flags, x.State, x.Timeout)
		}
	}
	if e, _, _, _ := r.entry(t, tmpl.Key); e.Controlled != 1 {
		t.Errorf("template controls %d connections, want 1", e.Controlled)
	}
}

// A director that takes over forwards a synced connection to the server
// it had, whatever its scheduler would pick now (wlc here), and the
// connection goes on through the state machine from its synced state.
func TestInsertSyncedThenForward(t *testing.T) {
	r := syncRig(t)
	x := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.20"), 5000)
	if st, err := r.insert(t, rec(x, vip443, udrtest.RS2, conntrack.StateEstablished, conntrack.FlagActive, 900)); err != nil || st.Inserted != 1 {
		t.Fatalf("InsertSynced = %+v, %v", st, err)
	}
	// wlc now picks rs1 (no connection) for a new one...
	y := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.21"), 5001)
	rs1, rs2 := net.HardwareAddr(udrtest.RS1MAC).String(), net.HardwareAddr(udrtest.RS2MAC).String()
	if got := r.tcp(t, y, vip443, udrtest.SYN); got != rs1 {
		t.Fatalf("new connection: to %s, want rs1 %s (wlc)", got, rs1)
	}
	// ...while the synced one's data goes to rs2.
	if got := r.tcp(t, x, vip443, udrtest.ACK|udrtest.PSH); got != rs2 {
		t.Fatalf("synced connection's data: to %q, want rs2 %s", got, rs2)
	}
	e, _, _, _ := r.entry(t, conntrack.NewKey(6, x, vip443))
	if e.State != conntrack.StateEstablished || e.Flags&conntrack.FlagSynced != 0 {
		t.Errorf("after its packet: state %v flags %#x, want ESTABLISHED, not synced", e.State, e.Flags)
	}
	if got := r.tcp(t, x, vip443, udrtest.FIN|udrtest.ACK); got != rs2 {
		t.Fatalf("FIN: to %q, want rs2", got)
	}
	if e, left, _, _ := r.entry(t, conntrack.NewKey(6, x, vip443)); e.State != conntrack.StateFinWait || left != 120 {
		t.Errorf("after the FIN: %v, %d s left; want FIN_WAIT, 120 s", e.State, left)
	}
	if got := r.counts(t, vip443, udrtest.RS2); got != [3]int32{0, 1, 0} {
		t.Errorf("rs2 counts %v after the FIN, want 0 active, 1 inactive", got)
	}
}

// A record for a synced entry updates it as ip_vs_proc_conn does; one for
// a connection forwarded here leaves it alone.
func TestInsertSyncedUpdates(t *testing.T) {
	r := syncRig(t)
	x := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.30"), 6000)
	k := conntrack.NewKey(6, x, vip443)
	steps := []struct {
		rec      SyncRecord
		want     InsertStats
		dest     netip.Addr
		state    conntrack.State
		left     uint32
		rs1, rs2 [3]int32
	}{
		{rec(x, vip443, udrtest.RS1, conntrack.StateEstablished, conntrack.FlagActive, 900), InsertStats{Inserted: 1},
			udrtest.RS1, conntrack.StateEstablished, 900, [3]int32{1, 0, 0}, [3]int32{}},
		{rec(x, vip443, udrtest.RS1, conntrack.StateFinWait, 0, 120), InsertStats{Updated: 1},
			udrtest.RS1, conntrack.StateFinWait, 120, [3]int32{0, 1, 0}, [3]int32{}},
		// The expiration message of a connection replaced since.
		{rec(x, vip443, udrtest.RS2, conntrack.StateClose, 0, 10), InsertStats{Ignored: 1},
			udrtest.RS1, conntrack.StateFinWait, 120, [3]int32{0, 1, 0}, [3]int32{}},
		// Rescheduled by the other director.
		{rec(x, vip443, udrtest.RS2, conntrack.StateEstablished, conntrack.FlagActive, 900), InsertStats{Replaced: 1},
			udrtest.RS2, conntrack.StateEstablished, 900, [3]int32{}, [3]int32{1, 0, 0}},
	}
	for i, s := range steps {
		st, err := r.insert(t, s.rec)
		if err != nil || st != s.want {
			t.Fatalf("step %d: InsertSynced = %+v, %v; want %+v", i, st, err, s.want)
		}
		e, left, _, _ := r.entry(t, k)
		if r.h.reg.Key(e.Dest).Real.Addr() != s.dest || e.State != s.state || left != s.left {
			t.Errorf("step %d: to %v, %v, %d s left; want %v, %v, %d s", i, r.h.reg.Key(e.Dest).Real, e.State, left, s.dest, s.state, s.left)
		}
		if a, b := r.counts(t, vip443, udrtest.RS1), r.counts(t, vip443, udrtest.RS2); a != s.rs1 || b != s.rs2 {
			t.Errorf("step %d: counts rs1 %v rs2 %v, want %v %v", i, a, b, s.rs1, s.rs2)
		}
	}
	// A connection of this director's own: kept as it is.
	own := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.31"), 6001)
	to := r.tcp(t, own, vip443, udrtest.SYN)
	r.tcp(t, own, vip443, udrtest.ACK)
	before, _, _, _ := r.entry(t, conntrack.NewKey(6, own, vip443))
	other := udrtest.RS1
	if to == net.HardwareAddr(udrtest.RS1MAC).String() {
		other = udrtest.RS2
	}
	for _, x := range []SyncRecord{
		rec(own, vip443, other, conntrack.StateEstablished, conntrack.FlagActive, 900),
		rec(own, vip443, r.h.reg.Key(before.Dest).Real.Addr(), conntrack.StateClose, 0, 10),
	} {
		if st, err := r.insert(t, x); err != nil || st != (InsertStats{Kept: 1}) {
			t.Errorf("record %v for a connection forwarded here: %+v, %v; want kept", x.Dest.Real, st, err)
		}
	}
	if after, _, _, _ := r.entry(t, conntrack.NewKey(6, own, vip443)); after != before {
		t.Errorf("connection forwarded here changed by sync records: %+v, was %+v", after, before)
	}
	if got := r.tcp(t, own, vip443, udrtest.ACK); got != to {
		t.Errorf("its next packet: to %s, want %s as before", got, to)
	}
}

// drain returns the records DrainSync gives now.
func (r *workersRig) drain() []SyncRecord {
	var out []SyncRecord
	r.ws.DrainSync(func(rs []SyncRecord) { out = append(out, rs...) })
	return out
}

// A synced entry is not sent again by this director until its own traffic
// makes it due: the kernel sets in_pkts to sync_threshold on a backup, so
// the 50th packet here is the next one due.
func TestSyncNoResendOfSynced(t *testing.T) {
	r := syncRig(t)
	if err := r.ws.SetSyncConfig(SyncConfig{}); err != nil {
		t.Fatal(err)
	}
	r.ws.EnableSync(true)
	x := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.40"), 7000)
	if _, err := r.insert(t, rec(x, vip80, udrtest.RS1, conntrack.StateEstablished, conntrack.FlagActive, 900)); err != nil {
		t.Fatal(err)
	}
	if rs := r.drain(); len(rs) != 0 {
		t.Fatalf("inserting a synced entry queued %+v", rs)
	}
	for i := 1; i <= 50; i++ {
		if got := r.tcp(t, x, vip80, udrtest.ACK); got != net.HardwareAddr(udrtest.RS1MAC).String() {
			t.Fatalf("packet %d: to %q, want rs1", i, got)
		}
		rs := r.drain()
		if i < 50 && len(rs) != 0 {
			t.Fatalf("packet %d here: queued %+v", i, rs)
		}
		if i == 50 {
			want := rec(x, vip80, udrtest.RS1, conntrack.StateEstablished, conntrack.FlagActive, 900)
			if len(rs) != 1 || rs[0] != want {
				t.Fatalf("packet 50 here: queued %+v, want %+v", rs, want)
			}
		}
	}
	if s := r.ws.SyncStats(); s.Queued != 1 || s.Dropped != 0 {
		t.Errorf("SyncStats %+v, want 1 queued", s)
	}
	// Off: nothing more.
	r.ws.EnableSync(false)
	for range 60 {
		r.tcp(t, x, vip80, udrtest.ACK)
	}
	if rs := r.drain(); len(rs) != 0 {
		t.Errorf("sync off: queued %+v", rs)
	}
}

// DumpSync gives every connection and template of every worker, with the
// time each has left.
func TestDumpSync(t *testing.T) {
	r := syncRig(t)
	want := make(map[conntrack.Key]SyncRecord)
	for i := range 12 {
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}), uint16(8000+i))
		vip := []netip.AddrPort{vip80, vip443, vip8080}[i%3]
		to := r.tcp(t, c, vip, udrtest.SYN)
		r.tcp(t, c, vip, udrtest.ACK)
		real := udrtest.RS1
		if to == net.HardwareAddr(udrtest.RS2MAC).String() {
			real = udrtest.RS2
		}
		cr := rec(c, vip, real, conntrack.StateEstablished, conntrack.FlagActive, 900)
		if vip == vip8080 {
			cr.Flags |= conntrack.FlagControlled
		}
		want[cr.Key] = cr
		if vip == vip8080 {
			tr := rec(netip.AddrPortFrom(c.Addr(), 0), vip8080, real, conntrack.StateAssured, conntrack.FlagTemplate, 60)
			tr.Key.Template = true
			want[tr.Key] = tr
		}
	}
	synced := rec(netip.AddrPortFrom(netip.MustParseAddr("198.51.100.200"), 9000), vip80, udrtest.RS2, conntrack.StateFinWait, 0, 100)
	if _, err := r.insert(t, synced); err != nil {
		t.Fatal(err)
	}
	synced.Flags |= conntrack.FlagSynced
	want[synced.Key] = synced
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	got := make(map[conntrack.Key]SyncRecord)
	if err := r.ws.DumpSync(ctx, func(rs []SyncRecord) {
		for _, x := range rs {
			got[x.Key] = x
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("DumpSync gave %d records, want %d", len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%v: dumped %+v (%v), want %+v", k, g, ok, w)
		}
	}
}

// BenchmarkWorkerBatchSync is BenchmarkWorkerBatch with sync off and on
// (sync_threshold 3 50, and 0 1: a record every packet), the queue
// drained after each batch as the director's sync loop would.
func BenchmarkWorkerBatchSync(b *testing.B) {
	for _, mode := range []struct {
		name              string
		on                bool
		threshold, period int
	}{{"off", false, 3, 50}, {"on", true, 3, 50}, {"on-every-packet", true, 0, 1}} {
		b.Run(mode.name, func(b *testing.B) {
			h := newHarness(b, workerRules, 1<<16)
			w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p, PublishInterval: time.Second})
			ws := Workers{w}
			if err := ws.SetSyncConfig(SyncConfig{Threshold: mode.threshold, Period: mode.period}); err != nil {
				b.Fatal(err)
			}
			ws.EnableSync(mode.on)
			frames := make([][]byte, DefaultBatchSize)
			for i := range frames {
				cl := netip.AddrPortFrom(udrtest.Client, uint16(10000+i))
				h.p.Process(udrtest.TCP(h.toVIP(), cl, vip80, udrtest.SYN, nil), epoch)
				frames[i] = udrtest.TCP(h.toVIP(), cl, vip80, udrtest.ACK|udrtest.PSH, []byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n"))
			}
			var n int
			b.ReportAllocs()
			for b.Loop() {
				for i, f := range frames {
					w.sizes[i] = copy(w.bufs[i], f)
				}
				w.batch(len(frames), epoch)
				ws.DrainSync(func(rs []SyncRecord) { n += len(rs) })
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
			b.ReportMetric(float64(n)/float64(b.N*len(frames)), "records/frame")
		})
	}
}

// DrainSync names each record's server by address and port; a record
// whose server's ID was freed since it was queued is dropped and counted.
func TestDrainSyncServerGone(t *testing.T) {
	h := newHarness(t, syncRules, 1024)
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p})
	ws := Workers{w}
	ws.EnableSync(true)
	w.batch(0, epoch) // applies it
	k := dest.Key{Proto: 6, VIP: vip80, Real: netip.AddrPortFrom(udrtest.RS2, 80)}
	id, ok := h.reg.Lookup(k)
	if !ok {
		t.Fatal("no rs2:80")
	}
	ck := conntrack.NewKey(6, client(1), vip80)
	h.p.sync.push(&syncEntry{key: ck, dest: id, timeout: 900, state: conntrack.StateEstablished, flags: conntrack.FlagActive})
	h.p.sync.push(&syncEntry{key: ck, dest: id + 1<<20, timeout: 900, state: conntrack.StateEstablished}) // never handed out
	var got []SyncRecord
	ws.DrainSync(func(rs []SyncRecord) { got = append(got, rs...) })
	want := SyncRecord{Key: ck, Dest: k, State: conntrack.StateEstablished, Flags: conntrack.FlagActive, Timeout: 900}
	if len(got) != 1 || got[0] != want {
		t.Errorf("drained %+v, want %+v", got, want)
	}
	if s := ws.SyncStats(); s != (SyncStats{Queued: 2, NoServer: 1}) {
		t.Errorf("SyncStats %+v, want 2 queued, 1 without a server", s)
	}
}

// A template that expires while it still controls connections is re-armed
// for 60 s and sent with that timeout (ip_vs_conn_expire, expire_later).
func TestSyncRearmedTemplate(t *testing.T) {
	h := newHarness(t, syncRules, 1024)
	q := syncOn(t, h, 3, 50, false, 64)
	h.p.Process(udrtest.TCP(h.toVIP(), client(3100), vip8080, udrtest.SYN, nil), epoch)
	h.p.Process(udrtest.TCP(h.toVIP(), client(3100), vip8080, udrtest.ACK, nil), epoch)
	id := h.p.Decision().Dest
	q.take()
	h.p.Sweep(epoch.Add(30*time.Second), 1<<20)
	if rs := q.take(); len(rs) != 0 {
		t.Fatalf("before the template's timer: queued %+v", rs)
	}
	h.p.Sweep(epoch.Add(61*time.Second), 1<<20) // its 60 s ran out
	tk := conntrack.Persistence{Netmask: 32}.TemplateKey(conntrack.NewKey(6, client(3100), vip8080))
	rs := q.take()
	if len(rs) != 1 || rs[0].key != tk || rs[0].dest != id || rs[0].timeout != 60 || rs[0].state != conntrack.StateAssured ||
		rs[0].flags&conntrack.FlagRearmed == 0 {
		t.Fatalf("re-armed template: queued %+v, want its record with 60 s", rs)
	}
}

// A connection whose template arrives after it is linked by its next
// record.
func TestInsertSyncedLinksLateTemplate(t *testing.T) {
	r := syncRig(t)
	c := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.50"), 1050)
	conn := rec(c, vip8080, udrtest.RS1, conntrack.StateEstablished, conntrack.FlagActive, 900)
	tmpl := rec(netip.AddrPortFrom(c.Addr(), 0), vip8080, udrtest.RS1, conntrack.StateAssured, conntrack.FlagTemplate, 60)
	tmpl.Key.Template = true
	for i, x := range []SyncRecord{conn, tmpl, conn} {
		if _, err := r.insert(t, x); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if e, _, _, _ := r.entry(t, tmpl.Key); e.Controlled != 1 {
		t.Errorf("template controls %d connections, want 1", e.Controlled)
	}
	if e, _, _, _ := r.entry(t, conn.Key); e.Flags&conntrack.FlagControlled == 0 {
		t.Errorf("connection flags %#x: not controlled", e.Flags)
	}
}

// Records of any content never crash the workers, and the servers' counts
// stay those of the entries in the tables.
func TestInsertSyncedRandom(t *testing.T) {
	r := syncRig(t)
	rng := rand.New(rand.NewPCG(1, 2))
	vips := []netip.AddrPort{vip80, vip443, vip8080, vip53, netip.AddrPortFrom(udrtest.VIP, 1)}
	reals := []netip.Addr{udrtest.RS1, udrtest.RS2, netip.MustParseAddr("192.0.2.13")}
	var all InsertStats
	for round := range 20 {
		var recs []SyncRecord
		for range 200 {
			c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(8))}), uint16(rng.IntN(4)))
			vip := vips[rng.IntN(len(vips))]
			x := rec(c, vip, reals[rng.IntN(len(reals))], conntrack.State(rng.IntN(16)), conntrack.Flags(rng.IntN(256)), uint32(rng.IntN(1000)))
			x.Key.Proto = []uint8{6, 17}[rng.IntN(2)]
			x.Dest.Proto = x.Key.Proto
			if rng.IntN(4) == 0 {
				x.Key.Template = true
				x.Key.CPort = 0
			}
			recs = append(recs, x)
		}
		st, _ := r.insert(t, recs...)
		if n := st.Inserted + st.Updated + st.Replaced + st.Kept + st.Ignored + st.NoServer + st.Refused; n != len(recs) {
			t.Fatalf("round %d: %+v accounts for %d of %d records", round, st, n, len(recs))
		}
		all.add(st)
	}
	t.Logf("%+v", all)
	if all.Inserted == 0 || all.Updated == 0 || all.Refused == 0 || all.NoServer == 0 {
		t.Errorf("%+v: the records did not exercise every outcome", all)
	}
	// Every entry is counted once on its server, and nothing else is.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	want := make(map[dest.ID][3]int32)
	if err := r.ws.Do(ctx, func(p *Pipeline, now time.Time) {
		p.Conns().Range(func(k conntrack.Key, e conntrack.Entry) bool {
			c := want[e.Dest]
			switch {
			case k.Template:
				c[2]++
			case e.Flags&conntrack.FlagActive != 0:
				c[0]++
			default:
				c[1]++
			}
			want[e.Dest] = c
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range r.h.cur.Load().DestIDs() {
		s := r.h.reg.State(id)
		if got := [3]int32{s.Active.Load(), s.Inactive.Load(), s.Persist.Load()}; got != want[id] {
			t.Errorf("%v: counts %v, entries %v", r.h.reg.Key(id), got, want[id])
		}
	}
}

// The template of a persistent FTP service (virtual port 0) is bound to
// the port-21 service's server.
func TestInsertSyncedFTPTemplate(t *testing.T) {
	r := startWorkers(t, `-A -t 192.0.2.100:21 -s rr -p 60
-a -t 192.0.2.100:21 -r 192.0.2.11:21 -g -w 1
`, 2, 1024)
	c := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.60"), 0)
	tmpl := rec(c, netip.AddrPortFrom(udrtest.VIP, 0), udrtest.RS1, conntrack.StateNone, conntrack.FlagTemplate, 60)
	tmpl.Dest.Real = netip.AddrPortFrom(udrtest.RS1, 21)
	tmpl.Key.Template = true
	if st, err := r.insert(t, tmpl); err != nil || st != (InsertStats{Inserted: 1}) {
		t.Fatalf("FTP template: %+v, %v; want inserted", st, err)
	}
	if got := r.counts(t, netip.AddrPortFrom(udrtest.VIP, 21), udrtest.RS1); got != [3]int32{0, 0, 1} {
		t.Errorf("rs1:21 counts %v, want one template", got)
	}
}
