package forwarder

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
)

// Worker is the one loop that moves frames: read a batch from a Conn, take
// the time once, decide every frame with the Pipeline, write the batch,
// send the control frames queued for it, expire connections, and publish
// its counters. udr run gives it the AF_PACKET conn, udr replay a capture,
// tests a channel fake: nothing else reads frames.
//
// The Worker does no control work. Frames the control plane wants sent
// (announcements, probes) reach it through a small bounded queue (Send);
// verdicts the control plane acts on (a conflicting ARP, a real server
// without a known MAC) leave it as Events on a bounded channel, never
// blocking it and never logged by it; its counters are atomics that any
// goroutine may read (Stats).
type Worker struct {
	conn  Conn
	p     *Pipeline
	clock func() time.Time
	idle  time.Duration
	sweep int
	pub   time.Duration
	obs   func(frame []byte, v Verdict, out []byte)

	inPlace InPlaceConn // conn, when it lends its frames: bufs are views of it
	bufs    [][]byte
	sizes   []int
	replies [][]byte
	out     [][]byte
	ctl     [][]byte

	control chan []byte
	calls   chan call
	lists   chan *listing
	list    *listing // the listing in progress
	events  chan Event

	lastN    int         // frames in the last batch
	flushReq atomic.Bool // FlushNodest was called
	flushing bool        // a flush is waiting for flushAt or running
	flushAt  time.Time
	flush    conntrack.Flush
	stats    workerCounters
	lastPub  time.Time
	sync     syncCtl
	trace    atomic.Pointer[traceTap] // the running trace's tap (trace.go), or nil
}

// WorkerConfig configures a Worker. Conn and Pipeline are required.
type WorkerConfig struct {
	Conn     Conn
	Pipeline *Pipeline // owned by the Worker from Run on
	// BatchSize is the most frames read per batch; 0 means
	// DefaultBatchSize.
	BatchSize int
	// FrameSize is the size of each receive buffer; 0 means
	// DefaultFrameSize. A Conn that reads in place (InPlaceConn) needs
	// none.
	FrameSize int
	// Clock is read once per batch, right after the read returns, and
	// its reading is the time of every frame of the batch. Nil means
	// time.Now; a capture gives the time stamp of the frame just read.
	Clock func() time.Time
	// IdleWake bounds how long a read blocks when the Conn has a
	// SetReadDeadline method, so that the control queue progresses on an
	// idle link; the read ends sooner when a connection's timer is due
	// (Pipeline.NextDue). 0 means DefaultIdleWake.
	IdleWake time.Duration
	// SweepBudget is the most connection slots the timers scan before
	// each batch (conntrack.Table.Sweep); 0 means DefaultSweepBudget.
	// When timers are left due, the next read does not wait.
	SweepBudget int
	// PublishInterval is how often, in batch time, the counters are
	// copied for Stats; 0 means after every batch. They are always
	// copied when Run returns.
	PublishInterval time.Duration
	// ControlQueue is the capacity of the queue Send fills; 0 means
	// DefaultControlQueue.
	ControlQueue int
	// EventQueue is the capacity of the Events channel; 0 means
	// DefaultEventQueue.
	EventQueue int
	// Events, when set, is the channel the worker hands its events to,
	// instead of one of its own (EventQueue is then unused): Workers that
	// share one hand the control plane their events in one place.
	Events chan Event
	// SyncQueue is the capacity of the worker's queue of sync records
	// (EnableSync), allocated when sync is first turned on; 0 means
	// DefaultSyncQueue.
	SyncQueue int
	// Observe, when set, is called on the worker after each frame is
	// decided, with the frame (rewritten when forwarded) and the frame to
	// send, if any. udr replay explains each frame with it; the live path
	// leaves it nil.
	Observe func(frame []byte, v Verdict, out []byte)
}

// Worker defaults.
const (
	// DefaultFrameSize holds a 1500-byte MTU frame with one VLAN tag.
	DefaultFrameSize = 1500 + 14 + 4 + 4
	// DefaultIdleWake is the longest a read blocks on an idle link.
	DefaultIdleWake = 200 * time.Millisecond
	// DefaultSweepBudget slots (64 blocks of 64) at most are scanned for
	// due timers before each batch: about 100 µs.
	DefaultSweepBudget = 4096
	// FlushSlots is how many slots a real-server flush (FlushNodest)
	// looks at per batch, and FlushDelay how long after the request it
	// starts: one tick of the connection clock, as the kernel queues its
	// flush one jiffy after the delete (ip_vs_enqueue_expire_nodest_conns:
	// queue_delayed_work(..., 1)).
	FlushSlots = 16384
	FlushDelay = 10 * time.Millisecond
	// idleDueChecks is how many timer blocks the worker looks at, after
	// an empty batch, to set its wake for the next timer less early.
	idleDueChecks = 64
	// DefaultControlQueue frames wait for the worker at most: the
	// announcements and probes of one round for 64 VIPs and servers.
	DefaultControlQueue = 64
	// DefaultEventQueue events wait for the control plane at most; more
	// are counted and dropped.
	DefaultEventQueue = 64
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventARPConflict: another host claims a VIP (VerdictARPConflict);
	// MAC is its source MAC.
	EventARPConflict EventKind = iota + 1
	// EventNoNeighbor: a real server was picked but its MAC is unknown
	// (VerdictNoNeighbor); Dest is the server.
	EventNoNeighbor
)

// Event is a verdict the control plane acts on, with what it needs to act.
type Event struct {
	Kind EventKind
	Time time.Time // the batch's time
	MAC  [6]byte
	Dest dest.ID
}

// WorkerStats are a Worker's counters as last published.
type WorkerStats struct {
	Frames  Stats  // verdicts
	Batches uint64 // reads that returned frames
	// TxErrors counts WriteBatch calls that failed, and TxUnsent the
	// frames they left unsent: a failed write is counted, not fatal.
	TxErrors uint64
	TxUnsent uint64
	// ControlSent counts frames sent from the control queue, and
	// ControlDropped those Send refused because the queue was full.
	ControlSent    uint64
	ControlDropped uint64
	// EventsDropped counts events not handed off because the Events
	// channel was full.
	EventsDropped uint64
	// ListSteps counts the steps of connection listings; ListStepMax is
	// the longest, and ListStepTotal their sum: the time forwarding
	// stopped for listings. ListStepCPUMax is the most CPU time a step
	// took (on Linux; 0 elsewhere): its own cost, where ListStepMax also
	// counts the time the thread waited for a CPU.
	ListSteps      uint64
	ListStepMax    time.Duration
	ListStepTotal  time.Duration
	ListStepCPUMax time.Duration
	// The connection table.
	Conns    int
	Capacity int
	Expired  uint64
	Evicted  uint64
	Full     uint64
	Dropped  uint64 // by the defences (conntrack.Stats.Dropped)
	// Defending counts the workers whose table has drop_entry or
	// secure_tcp on (0 or 1 for one worker; Workers sum them).
	Defending int
}

type workerCounters struct {
	verdicts       [numVerdicts]atomic.Uint64
	batches        atomic.Uint64
	txErrors       atomic.Uint64
	txUnsent       atomic.Uint64
	controlSent    atomic.Uint64
	controlDropped atomic.Uint64
	eventsDropped  atomic.Uint64
	listSteps      atomic.Uint64
	listStepMax    atomic.Int64
	listStepTotal  atomic.Int64
	listStepCPUMax atomic.Int64
	conns          atomic.Int64
	capacity       atomic.Int64
	expired        atomic.Uint64
	evicted        atomic.Uint64
	full           atomic.Uint64
	dropped        atomic.Uint64
	defending      atomic.Bool

	// Owned by the worker, copied by publish.
	batchesW, txErrorsW, txUnsentW, controlSentW, eventsDroppedW uint64
}

// deadliner is a Conn whose reads can time out (PacketConn, the test fake).
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// NewWorker returns a Worker over c.
func NewWorker(c WorkerConfig) *Worker {
	if c.Conn == nil || c.Pipeline == nil {
		panic("forwarder: NewWorker without a Conn or a Pipeline")
	}
	w := &Worker{
		conn:  c.Conn,
		p:     c.Pipeline,
		clock: c.Clock,
		idle:  c.IdleWake,
		sweep: c.SweepBudget,
		pub:   c.PublishInterval,
		obs:   c.Observe,
	}
	batch := orDefault(c.BatchSize, DefaultBatchSize)
	size := orDefault(c.FrameSize, DefaultFrameSize)
	if w.idle == 0 {
		w.idle = DefaultIdleWake
	}
	if w.sweep == 0 {
		w.sweep = DefaultSweepBudget
	}
	if ip, ok := c.Conn.(InPlaceConn); ok && ip.InPlace() {
		// Frames are decided where the Conn read them.
		w.inPlace = ip
	}
	w.bufs = make([][]byte, batch)
	w.replies = make([][]byte, batch)
	for i := range w.bufs {
		if w.inPlace == nil {
			w.bufs[i] = make([]byte, size)
		}
		// Replies are built in the pipeline's scratch buffer; they are
		// copied here so that a whole batch can be written at once.
		w.replies[i] = make([]byte, 0, MaxReplyLen)
	}
	w.sizes = make([]int, batch)
	w.out = make([][]byte, 0, batch)
	nctl := orDefault(c.ControlQueue, DefaultControlQueue)
	w.ctl = make([][]byte, 0, nctl)
	w.control = make(chan []byte, nctl)
	w.calls = make(chan call, 1)
	w.lists = make(chan *listing, 1)
	w.events = c.Events
	if w.events == nil {
		w.events = make(chan Event, orDefault(c.EventQueue, DefaultEventQueue))
	}
	w.stats.capacity.Store(int64(w.p.Conns().Cap()))
	w.sync.size = orDefault(c.SyncQueue, DefaultSyncQueue)
	return w
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Send queues frame, a complete Ethernet frame, to be written after the
// worker's next batch, which it cuts its wait short for: an announcement
// leaves at once, not at the idle wake. It never blocks: when the queue is
// full the frame is dropped, counted in ControlDropped, and Send returns
// false. The worker owns frame from then on. Send is safe for concurrent
// use.
func (w *Worker) Send(frame []byte) bool {
	select {
	case w.control <- frame:
		w.wake()
		return true
	default:
		w.stats.controlDropped.Add(1)
		return false
	}
}

// call is a function Do runs on the worker.
type call struct {
	fn   func(p *Pipeline, now time.Time)
	done chan struct{}
}

// Do runs fn on the worker, after a batch, with the worker's pipeline and
// the batch's time, and returns once it ran. It waits for a batch or the
// idle wake; it gives up when ctx is done (fn may then still run later). fn
// must be short: the worker forwards nothing while it runs.
func (w *Worker) Do(ctx context.Context, fn func(p *Pipeline, now time.Time)) error {
	c := call{fn: fn, done: make(chan struct{})}
	select {
	case w.calls <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.wake()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wake cuts the worker's current read short, when the Conn has deadlines,
// so that a call or a listing queued before starts without waiting for the
// idle wake. If the worker sets its deadline after the wake, it sees the
// request queued and does not wait either (Run).
func (w *Worker) wake() {
	if dl, ok := w.conn.(deadliner); ok {
		dl.SetReadDeadline(time.Now())
	}
}

// FlushNodest asks the worker to expire, FlushDelay from its next batch,
// every connection whose real server has been deleted (made unavailable),
// as the kernel does when a real server is deleted with
// expire_nodest_conn=1 (ip_vs_expire_nodest_conn_flush). The flush runs in
// steps of FlushSlots slots, one per batch (or per ListingIdleWake on an
// idle link). Requests made while one waits to start are served by it; one
// made while a flush runs starts another after it. It never blocks and is
// safe for concurrent use.
func (w *Worker) FlushNodest() {
	w.flushReq.Store(true)
	w.wake()
}

// flushStep starts a requested flush, or runs a step of the one in
// progress.
func (w *Worker) flushStep(now time.Time) {
	if !w.flushing {
		if !w.flushReq.Swap(false) {
			return
		}
		w.flushing, w.flushAt, w.flush = true, now.Add(FlushDelay), conntrack.Flush{}
		return
	}
	if now.Before(w.flushAt) {
		return
	}
	if w.p.Conns().FlushNodest(&w.flush, w.p.Ticks(now), FlushSlots) {
		w.flushing = false
	}
}

// Events returns the channel on which the worker hands off the verdicts the
// control plane acts on. Nobody has to read it: when it is full, events are
// counted in EventsDropped and dropped.
func (w *Worker) Events() <-chan Event { return w.events }

// Pipeline returns the worker's pipeline. Its state belongs to the worker
// while Run runs.
func (w *Worker) Pipeline() *Pipeline { return w.p }

// Stats returns the counters as last published. It is safe for concurrent
// use.
func (w *Worker) Stats() WorkerStats {
	s := &w.stats
	var st WorkerStats
	for i := range s.verdicts {
		st.Frames.Verdicts[i] = s.verdicts[i].Load()
	}
	st.Batches = s.batches.Load()
	st.TxErrors = s.txErrors.Load()
	st.TxUnsent = s.txUnsent.Load()
	st.ControlSent = s.controlSent.Load()
	st.ControlDropped = s.controlDropped.Load()
	st.EventsDropped = s.eventsDropped.Load()
	st.ListSteps = s.listSteps.Load()
	st.ListStepMax = time.Duration(s.listStepMax.Load())
	st.ListStepTotal = time.Duration(s.listStepTotal.Load())
	st.ListStepCPUMax = time.Duration(s.listStepCPUMax.Load())
	st.Conns = int(s.conns.Load())
	st.Capacity = int(s.capacity.Load())
	st.Expired = s.expired.Load()
	st.Evicted = s.evicted.Load()
	st.Dropped = s.dropped.Load()
	if s.defending.Load() {
		st.Defending = 1
	}
	st.Full = s.full.Load()
	return st
}

// Run moves frames until ctx is done, the Conn is closed, or it has no more
// frames (io.EOF, the end of a capture); then it returns nil. Any other
// read error is returned. Run is called once.
func (w *Worker) Run(ctx context.Context) error {
	defer w.publish()
	dl, _ := w.conn.(deadliner)
	if dl != nil {
		stop := context.AfterFunc(ctx, func() { dl.SetReadDeadline(time.Now()) })
		defer stop()
	}
	clock := w.clock
	if clock == nil {
		clock = time.Now
	}
	// The time of the previous batch, as if one ran at the start: the
	// first read's deadline comes from it.
	now := clock()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if dl != nil {
			// From the previous batch's time, so that the wall clock is
			// read once per batch: the deadline comes a little early.
			wake := now
			if w.clock != nil || wake.IsZero() {
				wake = time.Now()
			}
			dl.SetReadDeadline(wake.Add(w.wait(now)))
			if (w.list == nil && len(w.lists) > 0) || len(w.calls) > 0 || len(w.control) > 0 || (!w.flushing && w.flushReq.Load()) {
				// A request came before this deadline was set, so its
				// wake may have been overwritten: do not wait for it.
				dl.SetReadDeadline(time.Now())
			}
		}
		n, err := w.read()
		if err != nil && n == 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		now = clock()
		w.batch(n, now)
		if w.inPlace != nil {
			w.inPlace.Release()
		}
		w.lastN = n
	}
}

// read reads a batch into w.bufs[:n] and w.sizes[:n]: into the worker's
// buffers, or, from a Conn that lends its frames, as views of the Conn's
// memory, which the batch rewrites and sends in place.
func (w *Worker) read() (int, error) {
	if w.inPlace == nil {
		return w.conn.ReadBatch(w.bufs, w.sizes)
	}
	n, err := w.inPlace.ReadInPlace(w.bufs)
	for i := range n {
		w.sizes[i] = len(w.bufs[i])
	}
	return n, err
}

// wait returns how long the next read may block after the batch at now
// (in the clock's time): the idle wake, shortened to the next connection
// timer (none when Sweep is behind), the start of a requested flush, and
// ListingIdleWake while a listing or a flush runs.
func (w *Worker) wait(now time.Time) time.Duration {
	wait := w.idle
	if w.list != nil || w.flushing && !w.flushAt.After(now) {
		wait = ListingIdleWake
	}
	checks := 0
	if w.lastN == 0 {
		// Idle: spend a little to wake less often in vain.
		checks = idleDueChecks
	}
	if due, ok := w.p.NextDue(checks); ok {
		wait = min(wait, max(due.Sub(now), 0))
	}
	if w.flushing {
		wait = min(wait, max(w.flushAt.Sub(now), 0))
	}
	return wait
}

// batch runs the connection timers due by now, decides and writes n
// frames read at now, then does the per-batch work: control frames, calls,
// flushes, listings, counters.
func (w *Worker) batch(n int, now time.Time) {
	w.applySync()
	// Timers first: a frame at now sees the counts of every connection
	// whose timer fired before it, as in the kernel.
	w.p.Sweep(now, w.sweep)
	tap := w.trace.Load() // one load per batch; nil when no trace runs
	out := w.out[:0]
	for i := range n {
		b := w.bufs[i][:w.sizes[i]]
		v, frame := w.p.Process(b, now)
		switch {
		case v == VerdictForward:
			out = append(out, frame)
		case frame != nil: // a reply, or an ICMP error
			w.replies[i] = append(w.replies[i][:0], frame...)
			frame = w.replies[i]
			out = append(out, frame)
		}
		switch v {
		case VerdictARPConflict:
			w.event(Event{Kind: EventARPConflict, Time: now, MAC: [6]byte(b[6:12])})
		case VerdictNoNeighbor:
			w.event(Event{Kind: EventNoNeighbor, Time: now, Dest: w.p.last.Dest})
		}
		if w.obs != nil {
			w.obs(b, v, frame)
		}
		if tap != nil {
			tap.observe(w.p, b, v, now)
		}
	}
	if tap != nil {
		tap.publish()
	}
	w.p.FlushCounters()
	if n > 0 {
		w.stats.batchesW++
	}
	w.write(out)
	w.drainControl()
	select {
	case c := <-w.calls:
		c.fn(w.p, now)
		close(c.done)
	default:
	}
	w.flushStep(now)
	w.listStep(now)
	if w.pub == 0 || now.Sub(w.lastPub) >= w.pub || now.Before(w.lastPub) {
		w.lastPub = now
		w.publish()
	}
}

func (w *Worker) event(e Event) {
	select {
	case w.events <- e:
	default:
		w.stats.eventsDroppedW++
	}
}

// write sends frames; a failure is counted and the frames it left are
// dropped.
func (w *Worker) write(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	sent, err := w.conn.WriteBatch(frames)
	if err != nil {
		w.stats.txErrorsW++
		if sent < len(frames) {
			w.stats.txUnsentW += uint64(len(frames) - sent)
		}
	}
}

// drainControl writes the frames the control plane queued, at most the
// queue's capacity per batch.
func (w *Worker) drainControl() {
	ctl := w.ctl[:0]
	for len(ctl) < cap(ctl) {
		select {
		case f := <-w.control:
			ctl = append(ctl, f)
			continue
		default:
		}
		break
	}
	if len(ctl) == 0 {
		return
	}
	w.stats.controlSentW += uint64(len(ctl))
	w.write(ctl)
	clear(ctl) // the frames belong to nobody now
}

// publish copies the worker's counters to the atomics Stats reads.
func (w *Worker) publish() {
	s := &w.stats
	for i, n := range w.p.stats.Verdicts {
		s.verdicts[i].Store(n)
	}
	s.batches.Store(s.batchesW)
	s.txErrors.Store(s.txErrorsW)
	s.txUnsent.Store(s.txUnsentW)
	s.controlSent.Store(s.controlSentW)
	s.eventsDropped.Store(s.eventsDroppedW)
	ct := w.p.Conns()
	cs := ct.Stats()
	s.conns.Store(int64(ct.Len()))
	s.expired.Store(cs.Expired)
	s.evicted.Store(cs.Evicted)
	s.full.Store(cs.Full)
	s.dropped.Store(cs.Dropped)
	de, st := ct.Defense()
	s.defending.Store(de.Active() || st.Active())
}
