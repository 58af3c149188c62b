package forwarder

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder/forwardertest"
	"github.com/udr-lb/udr/internal/udrtest"
)

// workersRules: wrr 3:2, wlc with an upper threshold of 2 connections per
// server, and a persistent rr service.
const workersRules = `-A -t 192.0.2.100:80 -s wrr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 3
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 2
-A -t 192.0.2.100:443 -s wlc
-a -t 192.0.2.100:443 -r 192.0.2.11:443 -g -w 1 -x 2
-a -t 192.0.2.100:443 -r 192.0.2.12:443 -g -w 1 -x 2
-A -t 192.0.2.100:8080 -s rr -p 60
-a -t 192.0.2.100:8080 -r 192.0.2.11:8080 -g -w 1
-a -t 192.0.2.100:8080 -r 192.0.2.12:8080 -g -w 1
`

// workersRig is n Workers over fake Conns whose pipelines share one Table,
// as udr run --workers n builds them.
type workersRig struct {
	h     *harness
	conns []*forwardertest.Conn
	ws    Workers
}

func startWorkers(t *testing.T, rules string, n, capacity int) *workersRig {
	t.Helper()
	r := &workersRig{h: newHarness(t, rules, capacity)}
	events := make(chan Event, DefaultEventQueue)
	for range n {
		c := forwardertest.NewConn(16)
		p := NewPipeline(PipelineConfig{Table: &r.h.cur, Conns: conntrack.New(capacity/n, r.h.reg, conntrack.Options{Seed: 1}),
			Neighbors: r.h.neigh, Registry: r.h.reg, Epoch: epoch, Shared: true})
		r.conns = append(r.conns, c)
		r.ws = append(r.ws, NewWorker(WorkerConfig{Conn: c, Pipeline: p, Clock: func() time.Time { return epoch }, Events: events}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ws.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for _, c := range r.conns {
			c.Close()
		}
		if err := <-done; err != nil {
			t.Errorf("Workers.Run: %v", err)
		}
	})
	return r
}

// send gives worker i one frame and returns the MAC it was sent to, or
// nil when nothing was written within wait.
func (r *workersRig) send(t *testing.T, i int, frame []byte, wait time.Duration) net.HardwareAddr {
	t.Helper()
	r.conns[i].In <- [][]byte{frame}
	select {
	case out := <-r.conns[i].Out:
		return net.HardwareAddr(out[0][0:6])
	case <-time.After(wait):
		return nil
	}
}

// newConns is the order of new connections both tests replay: clients from
// two addresses (as the client-address fanout hands them to two workers)
// to the three services, interleaved.
func newConns(h *harness) (frames [][]byte, worker []int) {
	clients := []netip.Addr{udrtest.Client, netip.MustParseAddr("198.51.100.7")}
	for i := range 24 {
		c := i % 2
		port := []uint16{80, 443, 8080}[i/2%3]
		from := netip.AddrPortFrom(clients[c], uint16(20000+i))
		frames = append(frames, udrtest.TCP(h.toVIP(), from, netip.AddrPortFrom(udrtest.VIP, port), udrtest.SYN, nil))
		worker = append(worker, c)
	}
	return frames, worker
}

// The same order of new connections gives the same picks with one pipeline
// and with two workers sharing the Table: wrr's sequence, wlc under its
// upper threshold (no server when both are full), persistence templates;
// and the listing and the counters are the sum of the workers'.
func TestWorkersScheduleAsOne(t *testing.T) {
	one := newHarness(t, workersRules, 1<<10)
	frames, _ := newConns(one)
	var want []string
	for _, f := range frames {
		v, out := one.p.Process(f, epoch)
		if v == VerdictForward {
			want = append(want, net.HardwareAddr(out[0:6]).String())
		} else {
			want = append(want, v.String())
		}
	}

	r := startWorkers(t, workersRules, 2, 1<<10)
	frames, worker := newConns(r.h)
	var got []string
	for i, f := range frames {
		mac := r.send(t, worker[i], f, testTimeout)
		if mac.String() == udrtest.ClientMAC.String() {
			got = append(got, VerdictNoBackend.String()) // the ICMP port unreachable
			continue
		}
		got = append(got, mac.String())
	}
	for i := range want {
		if want[i] == VerdictNoBackend.String() {
			continue // compared below, from the counters
		}
		if got[i] != want[i] {
			t.Fatalf("new connection %d (worker %d): sent to %s, want %s as one pipeline does\ngot  %v\nwant %v", i, worker[i], got[i], want[i], got, want)
		}
	}
	var total int
	for _, w := range r.ws {
		if w.Stats().Batches == 0 {
			t.Errorf("a worker read no batch")
		}
	}
	// Each worker publishes its counters after the batch it wrote.
	st := r.ws.Stats()
	for deadline := time.Now().Add(testTimeout); st.Conns != one.p.Conns().Len() && time.Now().Before(deadline); st = r.ws.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.Conns != one.p.Conns().Len() {
		t.Errorf("Workers.Stats().Conns = %d, want %d as one pipeline's table", st.Conns, one.p.Conns().Len())
	}
	if st.Capacity != 1<<10 {
		t.Errorf("Workers.Stats().Capacity = %d, want the total 1024", st.Capacity)
	}
	if got, want := st.Frames.Verdicts[VerdictNoBackend], one.p.Stats().Verdicts[VerdictNoBackend]; got != want || want == 0 {
		t.Errorf("no-backend verdicts = %d, want %d (> 0) as one pipeline", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.ws.ListConns(ctx, func(chunk []conntrack.Listed) { total += len(chunk) }); err != nil {
		t.Fatal(err)
	}
	if total != one.p.Conns().Len() {
		t.Errorf("Workers.ListConns listed %d entries, want %d as one pipeline's table", total, one.p.Conns().Len())
	}
}

// A new connection is scheduled under its service's lock; a frame of an
// established connection takes none.
func TestWorkersLockNewConnectionsOnly(t *testing.T) {
	r := startWorkers(t, workersRules, 2, 1<<10)
	vip := netip.AddrPortFrom(udrtest.VIP, 80)
	first := netip.AddrPortFrom(udrtest.Client, 30000)
	if mac := r.send(t, 1, udrtest.TCP(r.h.toVIP(), first, vip, udrtest.SYN, nil), testTimeout); mac == nil {
		t.Fatal("the first SYN was not forwarded")
	}
	mu := r.h.cur.Load().services[0].mu
	mu.Lock()
	second := udrtest.TCP(r.h.toVIP(), netip.AddrPortFrom(udrtest.Client, 30001), vip, udrtest.SYN, nil)
	if mac := r.send(t, 0, second, 100*time.Millisecond); mac != nil {
		mu.Unlock()
		t.Fatal("a new connection was scheduled while its service's lock was held")
	}
	if mac := r.send(t, 1, udrtest.TCP(r.h.toVIP(), first, vip, udrtest.ACK, nil), testTimeout); mac == nil {
		mu.Unlock()
		t.Fatal("an established connection's frame waited for the service's lock")
	}
	mu.Unlock()
	select {
	case <-r.conns[0].Out:
	case <-time.After(testTimeout):
		t.Fatal("the new connection was not forwarded once the lock was free")
	}
}

// A service that stays in a new Table keeps its lock: workers still on the
// old Table and those on the new one serialise together.
func TestCompileKeepsServiceLock(t *testing.T) {
	h := newHarness(t, workersRules, 64)
	old := h.cur.Load()
	h.reload(t, workersRules+"-A -u 192.0.2.100:53 -s rr\n-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1\n")
	for i := range old.services {
		if old.services[i].mu != h.cur.Load().services[i].mu {
			t.Errorf("service %s has a new lock after a reload", old.services[i].cfg.Key)
		}
	}
}

// Workers sharing the ICMP budget each get their part of it.
func TestUnreachShare(t *testing.T) {
	h := newHarness(t, workersRules, 64)
	p := NewPipeline(PipelineConfig{Table: &h.cur, Conns: conntrack.New(64, h.reg, conntrack.Options{}), Neighbors: h.neigh,
		Registry: h.reg, Epoch: epoch, Shared: true, UnreachShare: UnreachPerSecond / 4})
	if p.unreach.max != 250 || h.p.unreach.max != UnreachPerSecond {
		t.Errorf("budgets %d and %d, want 250 with a quarter share and %d alone", p.unreach.max, h.p.unreach.max, UnreachPerSecond)
	}
}

// Workers creating connections at the same time never take a server past
// its upper threshold: the pick and the count it raises are one step under
// the service's lock. (Without the lock the window between them is short:
// this test would fail only sometimes; TestWorkersLockNewConnectionsOnly
// shows the lock is taken.)
func TestWorkersThresholdConcurrent(t *testing.T) {
	const rules = `-A -t 192.0.2.100:443 -s wlc
-a -t 192.0.2.100:443 -r 192.0.2.11:443 -g -w 1 -x 2
-a -t 192.0.2.100:443 -r 192.0.2.12:443 -g -w 1 -x 2
`
	for round := range 20 {
		r := startWorkers(t, rules, 2, 1<<10)
		vip := netip.AddrPortFrom(udrtest.VIP, 443)
		for w := range r.ws {
			var batch [][]byte
			for i := range 32 {
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(w)}), uint16(10000+i))
				batch = append(batch, udrtest.TCP(r.h.toVIP(), from, vip, udrtest.SYN, nil))
			}
			r.conns[w].In <- batch
		}
		forwarded := 0
		for w := range r.ws {
			select {
			case out := <-r.conns[w].Out:
				for _, f := range out {
					if mac := net.HardwareAddr(f[0:6]).String(); mac == udrtest.RS1MAC.String() || mac == udrtest.RS2MAC.String() {
						forwarded++
					}
				}
			case <-time.After(testTimeout):
				t.Fatal("a worker wrote nothing")
			}
		}
		if forwarded != 4 {
			t.Fatalf("round %d: %d connections forwarded, want 4: two per server, their upper threshold", round, forwarded)
		}
	}
}

// The registry may free only what no worker can still hold: Workers.Seen
// is the lowest epoch of theirs. A flush of deleted servers' connections
// goes to every worker.
func TestWorkersSeenAndFlush(t *testing.T) {
	h := newHarness(t, workersRules, 64)
	var ws Workers
	for range 3 {
		p := NewPipeline(PipelineConfig{Table: &h.cur, Conns: conntrack.New(16, h.reg, conntrack.Options{}), Neighbors: h.neigh,
			Registry: h.reg, Epoch: epoch, Shared: true})
		ws = append(ws, NewWorker(WorkerConfig{Conn: forwardertest.NewConn(1), Pipeline: p}))
	}
	for i, seen := range []uint64{7, 3, 9} {
		ws[i].p.seen.Store(seen)
	}
	if got := ws.Seen(); got != 3 {
		t.Errorf("Workers.Seen() = %d, want 3, the lowest", got)
	}
	ws.FlushNodest()
	for i, w := range ws {
		if !w.flushReq.Load() {
			t.Errorf("worker %d got no flush request", i)
		}
	}
}
