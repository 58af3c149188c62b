package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder/forwardertest"
	"github.com/udr-lb/udr/internal/udrtest"
)

const workerRules = `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
`

// testTimeout bounds every wait of these tests; none is expected to come
// near it.
const testTimeout = 10 * time.Second

// workerRig is a Worker over a fake Conn, running in a goroutine.
type workerRig struct {
	h    *harness
	conn *forwardertest.Conn
	w    *Worker
	done chan error
	stop context.CancelFunc
}

// startWorker runs a worker over workerRules. cfg's Conn and Pipeline are
// filled in; its other fields are the test's.
func startWorker(t *testing.T, cfg WorkerConfig, capacity int) *workerRig {
	t.Helper()
	r := &workerRig{h: newHarness(t, workerRules, capacity), conn: forwardertest.NewConn(16), done: make(chan error, 1)}
	cfg.Conn, cfg.Pipeline = r.conn, r.h.p
	r.w = NewWorker(cfg)
	return r
}

func (r *workerRig) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		r.conn.Close()
		<-r.done
	})
}

// wait returns the error Run returned.
func (r *workerRig) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(testTimeout):
		t.Fatal("Run did not return")
		return nil
	}
}

func (r *workerRig) written(t *testing.T) [][]byte {
	t.Helper()
	select {
	case b := <-r.conn.Out:
		return b
	case <-time.After(testTimeout):
		t.Fatal("no batch written")
		return nil
	}
}

func (r *workerRig) syn(port uint16, to netip.AddrPort) []byte {
	return udrtest.TCP(r.h.toVIP(), netip.AddrPortFrom(udrtest.Client, port), to, udrtest.SYN, nil)
}

// lostNeighbor returns a segment of a connection whose real server's MAC
// is then forgotten: the pipeline's verdict for it is no-neighbor.
func (r *workerRig) lostNeighbor() ([]byte, netip.Addr) {
	cl := netip.AddrPortFrom(udrtest.Client, 5300)
	r.h.p.Process(udrtest.TCP(r.h.toVIP(), cl, vip80, udrtest.SYN, nil), epoch)
	rs := r.h.reg.Key(r.h.p.Decision().Dest).Real.Addr()
	r.h.neigh.Delete(rs)
	return udrtest.TCP(r.h.toVIP(), cl, vip80, udrtest.ACK, nil), rs
}

func (r *workerRig) arpWhoHas() []byte {
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	return udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast}, udrtest.Client, udrtest.VIP)
}

// A batch read is decided frame by frame and written back as one batch,
// forwarded frames and replies in the order they came.
func TestWorkerBatch(t *testing.T) {
	r := startWorker(t, WorkerConfig{}, 1<<10)
	r.run(t)
	r.conn.In <- [][]byte{r.syn(1000, vip80), r.arpWhoHas(), r.syn(1001, vip80), udrtest.TCP(r.h.toVIP(), netip.AddrPortFrom(udrtest.Client, 1002), vip80, udrtest.ACK, nil)}
	out := r.written(t)
	if len(out) != 3 {
		t.Fatalf("wrote %d frames in the batch, want 3 (two forwarded, one ARP reply)", len(out))
	}
	// rr starts at the head of the list: the server added last.
	for i, want := range []net.HardwareAddr{udrtest.RS2MAC, udrtest.ClientMAC, udrtest.RS1MAC} {
		if got := net.HardwareAddr(out[i][0:6]); got.String() != want.String() {
			t.Errorf("frame %d to %v, want %v", i, got, want)
		}
	}
	if got := net.HardwareAddr(out[1][6:12]); got.String() != net.HardwareAddr(r.h.vmac[:]).String() {
		t.Errorf("ARP reply from %v, want the VIP MAC %v", got, net.HardwareAddr(r.h.vmac[:]))
	}
	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := r.w.Stats()
	if st.Batches != 1 || st.Frames.Verdicts[VerdictForward] != 2 || st.Frames.Verdicts[VerdictReply] != 1 || st.Frames.Verdicts[VerdictNoConn] != 1 {
		t.Errorf("stats: batches %d forward %d reply %d no-conn %d, want 1 2 1 1", st.Batches,
			st.Frames.Verdicts[VerdictForward], st.Frames.Verdicts[VerdictReply], st.Frames.Verdicts[VerdictNoConn])
	}
	if st.Conns != 2 {
		t.Errorf("stats: %d connections, want 2", st.Conns)
	}
}

// A batch larger than the worker's buffers is read over several batches.
func TestWorkerBatchSize(t *testing.T) {
	r := startWorker(t, WorkerConfig{BatchSize: 2}, 1<<10)
	r.run(t)
	r.conn.In <- [][]byte{r.syn(1000, vip80), r.syn(1001, vip80), r.syn(1002, vip80)}
	if out := r.written(t); len(out) != 2 {
		t.Fatalf("first batch: %d frames, want 2", len(out))
	}
	if out := r.written(t); len(out) != 1 {
		t.Fatalf("second batch: %d frames, want 1", len(out))
	}
}

// A failed write is counted and the worker goes on with the next batch.
func TestWorkerWriteError(t *testing.T) {
	r := startWorker(t, WorkerConfig{}, 1<<10)
	r.conn.WriteErr <- syscall.ENOBUFS
	r.run(t)
	r.conn.In <- [][]byte{r.syn(1000, vip80), r.syn(1001, vip80)}
	r.conn.In <- [][]byte{r.syn(1002, vip80)}
	if out := r.written(t); len(out) != 1 {
		t.Fatalf("after the failed write: %d frames, want the second batch's 1", len(out))
	}
	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := r.w.Stats(); st.TxErrors != 1 || st.TxUnsent != 2 || st.Batches != 2 {
		t.Errorf("stats: tx errors %d unsent %d batches %d, want 1 2 2", st.TxErrors, st.TxUnsent, st.Batches)
	}
}

// Cancelling the context stops a worker blocked in a read, however long
// its idle wake.
func TestWorkerStopContext(t *testing.T) {
	r := startWorker(t, WorkerConfig{IdleWake: time.Hour}, 1<<10)
	r.run(t)
	r.conn.In <- [][]byte{r.syn(1000, vip80)}
	r.written(t) // the worker is running, now blocked in ReadBatch
	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
}

// Closing the Conn stops the worker too.
func TestWorkerStopClose(t *testing.T) {
	r := startWorker(t, WorkerConfig{IdleWake: time.Hour}, 1<<10)
	r.run(t)
	r.conn.Close()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run after Close: %v, want nil", err)
	}
}

// errConn fails every read.
type errConn struct{}

var errBroken = errors.New("broken")

func (errConn) ReadBatch([][]byte, []int) (int, error) { return 0, errBroken }
func (errConn) WriteBatch(b [][]byte) (int, error)     { return len(b), nil }
func (errConn) Close() error                           { return nil }

// A read error other than the end of input, a timeout or a close is
// returned.
func TestWorkerReadError(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	w := NewWorker(WorkerConfig{Conn: errConn{}, Pipeline: h.p})
	if err := w.Run(context.Background()); !errors.Is(err, errBroken) {
		t.Fatalf("Run: %v, want %v", err, errBroken)
	}
}

// The worker ages connection slots after every batch, whether or not the
// batch touched them: connections past their timeout leave the table and
// their real server's counts without a packet of their own.
func TestWorkerSweepsPerBatch(t *testing.T) {
	now := epoch
	r := startWorker(t, WorkerConfig{Clock: func() time.Time { return now }, SweepBudget: 4}, 16)
	for i := range 4 {
		udp := udrtest.UDP(r.h.toVIP(), netip.AddrPortFrom(udrtest.Client, uint16(2000+i)), vip53, []byte("q"))
		r.h.p.Process(udp, epoch)
	}
	if n := r.h.p.Conns().Len(); n != 4 {
		t.Fatalf("%d connections, want 4", n)
	}
	now = epoch.Add(time.Hour) // past UDP's 300 s
	r.run(t)
	// Frames for another host: no lookup, nothing written; only the
	// sweep after each batch can expire the datagrams' connections. A
	// 16-entry table has 19 slots: 5 batches of 4 cover them.
	other := udrtest.TCP(udrtest.Eth{Src: udrtest.ClientMAC, Dst: udrtest.RS1MAC}, netip.AddrPortFrom(udrtest.Client, 1), vip80, udrtest.SYN, nil)
	const batches = 5
	for range batches {
		r.conn.In <- [][]byte{other}
	}
	r.conn.In <- [][]byte{r.syn(3000, vip80)}
	r.written(t) // every batch before was done
	r.stop()
	r.wait(t)
	if st := r.w.Stats(); st.Expired != 4 || st.Conns != 1 {
		t.Fatalf("after %d batches: %d expired, %d left; want the 4 datagrams' connections expired, the SYN's left", batches+1, st.Expired, st.Conns)
	}
}

// Frames queued with Send are written after the next batch, and on an idle
// link after the idle wake; a full queue drops and counts.
func TestWorkerControlQueue(t *testing.T) {
	r := startWorker(t, WorkerConfig{ControlQueue: 2, IdleWake: time.Millisecond}, 1<<10)
	a, b, c := r.arpWhoHas(), r.syn(1, vip80), r.syn(2, vip80)
	if !r.w.Send(a) || !r.w.Send(b) {
		t.Fatal("Send refused a frame into an empty queue")
	}
	if r.w.Send(c) {
		t.Fatal("Send took a third frame into a queue of 2")
	}
	r.run(t)
	out := r.written(t) // no input: the idle wake drains the queue
	if len(out) != 2 || string(out[0]) != string(a) || string(out[1]) != string(b) {
		t.Fatalf("wrote %d frames, want the 2 queued ones unchanged", len(out))
	}
	r.stop()
	r.wait(t)
	if st := r.w.Stats(); st.ControlSent != 2 || st.ControlDropped != 1 {
		t.Errorf("stats: control sent %d dropped %d, want 2 1", st.ControlSent, st.ControlDropped)
	}
}

// Verdicts the control plane acts on are handed off as events, never
// blocking the worker: past the queue they are counted and dropped.
func TestWorkerEvents(t *testing.T) {
	r := startWorker(t, WorkerConfig{EventQueue: 1, Clock: func() time.Time { return epoch }}, 1<<10)
	stranger := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x66}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	conflict := udrtest.ARPRequest(udrtest.Eth{Src: stranger, Dst: bcast}, udrtest.VIP, udrtest.VIP)
	lost, _ := r.lostNeighbor()
	r.run(t)
	r.conn.In <- [][]byte{conflict, lost, conflict, r.syn(1001, vip80)}
	r.written(t)
	r.stop()
	r.wait(t)
	select {
	case e := <-r.w.Events():
		if e.Kind != EventARPConflict || net.HardwareAddr(e.MAC[:]).String() != stranger.String() {
			t.Errorf("event %+v, want an ARP conflict from %v", e, stranger)
		}
	default:
		t.Fatal("no event")
	}
	st := r.w.Stats()
	if st.EventsDropped != 2 {
		t.Errorf("%d events dropped, want 2 (a queue of 1, 3 events)", st.EventsDropped)
	}
	if st.Frames.Verdicts[VerdictARPConflict] != 2 || st.Frames.Verdicts[VerdictNoNeighbor] != 1 {
		t.Errorf("verdicts: arp-conflict %d no-neighbor %d, want 2 1", st.Frames.Verdicts[VerdictARPConflict], st.Frames.Verdicts[VerdictNoNeighbor])
	}
}

// The no-neighbour event names the real server that was picked.
func TestWorkerEventNoNeighbor(t *testing.T) {
	r := startWorker(t, WorkerConfig{Clock: func() time.Time { return epoch }}, 1<<10)
	lost, rs := r.lostNeighbor()
	r.run(t)
	r.conn.In <- [][]byte{lost}
	select {
	case e := <-r.w.Events():
		if e.Kind != EventNoNeighbor || e.Dest == 0 || r.h.reg.Key(e.Dest).Real.Addr() != rs {
			t.Errorf("event %+v, want no neighbour for %v", e, rs)
		}
	case <-time.After(testTimeout):
		t.Fatal("no event")
	}
}

// fill opens n connections on the rig's pipeline before it runs.
func (r *workerRig) fill(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		// Ports from 1024: client port 20 is FTP data, never scheduled.
		cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i / 60000)}), uint16(1024+i%60000))
		if v, _ := r.h.p.Process(udrtest.TCP(r.h.toVIP(), cl, vip80, udrtest.SYN, nil), epoch); v != VerdictForward {
			t.Fatalf("SYN %d: %v", i, v)
		}
	}
}

// A listing goes on in steps of at most ListingChunk entries, on an idle
// link too, and lists every connection once.
func TestWorkerListConns(t *testing.T) {
	const n = 10000
	r := startWorker(t, WorkerConfig{IdleWake: time.Hour, Clock: func() time.Time { return epoch }}, 1<<14)
	r.fill(t, n)
	r.run(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	seen := map[netip.AddrPort]int{}
	chunks := 0
	err := r.w.ListConns(ctx, func(chunk []conntrack.Listed) {
		chunks++
		if len(chunk) > ListingChunk {
			t.Errorf("a chunk of %d entries, more than %d", len(chunk), ListingChunk)
		}
		for i := range chunk {
			l := &chunk[i]
			client, _ := l.Key().Addrs()
			seen[client]++
			if l.Expires() == 0 {
				t.Errorf("%v: expires 0 at the time it was created", client)
			}
		}
	})
	if err != nil {
		t.Fatalf("ListConns: %v", err)
	}
	if len(seen) != n {
		t.Fatalf("%d connections listed, want %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("%v listed %d times", k, c)
		}
	}
	if st := r.w.Stats(); chunks < n/ListingChunk || st.ListSteps < uint64(chunks) || st.ListStepMax <= 0 {
		t.Errorf("%d chunks, %d steps, longest %v: want at least %d of each, timed", chunks, st.ListSteps, st.ListStepMax, n/ListingChunk)
	}
}

// Frames keep flowing during a listing, and a listing given up is dropped
// by the worker, which then serves the next one.
func TestWorkerListConnsWhileForwarding(t *testing.T) {
	const n = 20000
	r := startWorker(t, WorkerConfig{Clock: func() time.Time { return epoch }}, 1<<15)
	r.fill(t, n)
	r.run(t)
	abandon, cancel := context.WithCancel(context.Background())
	first := true
	err := r.w.ListConns(abandon, func([]conntrack.Listed) {
		if first {
			first = false
			cancel() // give up after the first chunk
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned ListConns: %v, want context.Canceled", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), testTimeout)
	defer cancel2()
	listed := 0
	done := make(chan error, 1)
	go func() {
		done <- r.w.ListConns(ctx, func(chunk []conntrack.Listed) { listed += len(chunk) })
	}()
	for i := 0; ; i++ {
		r.conn.In <- [][]byte{r.syn(uint16(40000+i%20000), vip80)}
		r.written(t)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ListConns: %v", err)
			}
			if listed < n {
				t.Fatalf("%d listed, want at least the %d connections there from the start", listed, n)
			}
			return
		default:
		}
		if i > 1e6 {
			t.Fatal("the listing does not end")
		}
	}
}

// nopConn takes every write and reads nothing: for timing and allocation
// tests of a batch.
type nopConn struct{}

func (nopConn) ReadBatch([][]byte, []int) (int, error) { return 0, nil }
func (nopConn) WriteBatch(b [][]byte) (int, error)     { return len(b), nil }
func (nopConn) Close() error                           { return nil }

// A batch, with its replies, events, control frames, sweep and counters,
// allocates nothing.
func TestWorkerBatchDoesNotAllocate(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p, EventQueue: 1})
	r := &workerRig{h: h}
	stranger := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x66}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frames := [][]byte{
		r.syn(1000, vip80),
		udrtest.TCP(h.toVIP(), netip.AddrPortFrom(udrtest.Client, 1000), vip80, udrtest.ACK, nil),
		r.arpWhoHas(),
		udrtest.ARPRequest(udrtest.Eth{Src: stranger, Dst: bcast}, udrtest.VIP, udrtest.VIP),
	}
	ctl := r.arpWhoHas()
	batch := func() {
		for i, f := range frames {
			w.sizes[i] = copy(w.bufs[i], f)
		}
		w.Send(ctl)
		w.batch(len(frames), epoch)
	}
	batch() // the connection exists from now on, and the event queue is full
	if a := testing.AllocsPerRun(1000, batch); a != 0 {
		t.Fatalf("batch allocs = %v, want 0", a)
	}
}

// BenchmarkWorkerBatch is a batch of 64 ACKs of established connections
// through the worker (copy in, Process, write, control queue, sweep,
// counters) over a Conn that costs nothing: ns/frame against
// BenchmarkPipeline's Process alone shows what the loop adds.
func BenchmarkWorkerBatch(b *testing.B) {
	h := newHarness(b, workerRules, 1<<16)
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p, PublishInterval: time.Second})
	frames := make([][]byte, DefaultBatchSize)
	for i := range frames {
		cl := netip.AddrPortFrom(udrtest.Client, uint16(10000+i))
		h.p.Process(udrtest.TCP(h.toVIP(), cl, vip80, udrtest.SYN, nil), epoch)
		frames[i] = udrtest.TCP(h.toVIP(), cl, vip80, udrtest.ACK|udrtest.PSH, []byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n"))
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, f := range frames {
			w.sizes[i] = copy(w.bufs[i], f)
		}
		w.batch(len(frames), epoch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}

// lendingConn is a fake InPlaceConn: it reads into its own buffers and
// lends them, and logs what the worker does with them.
type lendingConn struct {
	*forwardertest.Conn
	mem   [][]byte
	sizes []int

	mu  sync.Mutex
	log []string // "read n", "write n in place", "write n copied", "release"
}

func (c *lendingConn) InPlace() bool { return true }

func (c *lendingConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	c.note("ReadBatch")
	return c.Conn.ReadBatch(bufs, sizes)
}

func (c *lendingConn) ReadInPlace(frames [][]byte) (int, error) {
	n, err := c.Conn.ReadBatch(c.mem[:min(len(frames), len(c.mem))], c.sizes)
	for i := range n {
		frames[i] = c.mem[i][:c.sizes[i]:c.sizes[i]]
	}
	if n > 0 {
		c.note(fmt.Sprintf("read %d", n))
	}
	return n, err
}

func (c *lendingConn) WriteBatch(bufs [][]byte) (int, error) {
	lent := 0
	for _, b := range bufs {
		for _, m := range c.mem {
			if unsafe.SliceData(b) == unsafe.SliceData(m) {
				lent++
			}
		}
	}
	c.note(fmt.Sprintf("write %d, %d in place", len(bufs), lent))
	return c.Conn.WriteBatch(bufs)
}

func (c *lendingConn) Release() { c.note("release") }

func (c *lendingConn) note(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == "release" && len(c.log) > 0 && c.log[len(c.log)-1] == s {
		return // idle wakes release nothing new
	}
	c.log = append(c.log, s)
}

// A Conn that lends its frames has them decided and sent in place, and
// gets them back after the batch is written.
func TestWorkerInPlace(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	c := &lendingConn{Conn: forwardertest.NewConn(16), mem: make([][]byte, 4), sizes: make([]int, 4)}
	for i := range c.mem {
		c.mem[i] = make([]byte, 2048)
	}
	w := NewWorker(WorkerConfig{Conn: c, Pipeline: h.p})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		c.Close()
		<-done
	}()
	syn := udrtest.TCP(h.toVIP(), netip.AddrPortFrom(udrtest.Client, 1000), vip80, udrtest.SYN, nil)
	c.In <- [][]byte{syn, udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, udrtest.Client, udrtest.VIP)}
	var out [][]byte
	select {
	case out = <-c.Out:
	case <-time.After(testTimeout):
		t.Fatal("no batch written")
	}
	if len(out) != 2 || net.HardwareAddr(out[0][0:6]).String() != udrtest.RS2MAC.String() {
		t.Fatalf("wrote %d frames, the first to %v; want 2, the SYN to %v", len(out), net.HardwareAddr(out[0][0:6]), udrtest.RS2MAC)
	}
	if net.HardwareAddr(c.mem[0][0:6]).String() != udrtest.RS2MAC.String() {
		t.Errorf("the lent frame was not rewritten in place: to %v", net.HardwareAddr(c.mem[0][0:6]))
	}
	cancel()
	c.Close()
	<-done
	done <- nil
	c.mu.Lock()
	defer c.mu.Unlock()
	want := []string{"release", "read 2", "write 2, 1 in place", "release"}
	if len(c.log) > 0 && c.log[0] != "release" {
		want = want[1:] // the first read did not time out before the frames came
	}
	if diff := cmp.Diff(want, c.log[:min(len(c.log), len(want))]); diff != "" {
		t.Errorf("what the worker did (-want +got):\n%s", diff)
	}
}
