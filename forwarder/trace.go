package forwarder

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/dest"
)

// A trace (udr admin --trace) shows the decisions of the running workers,
// one line per frame that matches a TraceFilter, with the explanation of
// udr replay --explain. The worker pays one atomic load per batch when no
// trace runs (Worker.trace). While one runs, it tests each frame against
// the filter and copies the decision and the frame's first TraceSnap bytes
// into a fixed-size record of its own bounded queue; when the queue is
// full the frame is counted as skipped, never waited for. The text is
// made by the reader (Trace.Poll), off the packet path.

// Trace bounds.
const (
	// TraceSnap is the most bytes of a frame a trace keeps: its headers.
	TraceSnap = 256
	// DefaultTraceQueue is the records each worker's trace queue holds.
	DefaultTraceQueue = 1024
)

// ErrTraceBusy is StartTrace's answer while another trace runs.
var ErrTraceBusy = errors.New("a trace is already running (one at a time): try again when it ends")

// traceRecord is one traced frame: fixed size, filled by the worker
// without allocating.
type traceRecord struct {
	d    Decision
	unix int64  // the batch's time, in ns
	wire uint32 // the frame's length
	n    uint16 // bytes kept in b
	b    [TraceSnap]byte
}

// traceTap is one worker's side of a trace: the filter and a
// single-producer single-consumer queue of records.
type traceTap struct {
	f    *traceMatch
	recs []traceRecord

	head atomic.Uint64 // next record the reader reads; written by the reader
	tail atomic.Uint64 // records published; written by the worker per batch
	skip atomic.Uint64 // frames skipped, published per batch

	// Owned by the worker.
	wtail, whead, wskip uint64
}

// observe records frame b, decided v by p, when it matches the filter.
func (t *traceTap) observe(p *Pipeline, b []byte, v Verdict, now time.Time) {
	if !t.f.matchFrame(p, v) {
		return
	}
	if t.wtail-t.whead == uint64(len(t.recs)) {
		if t.whead = t.head.Load(); t.wtail-t.whead == uint64(len(t.recs)) {
			t.wskip++
			return
		}
	}
	r := &t.recs[t.wtail%uint64(len(t.recs))]
	r.d = p.last
	r.unix = now.UnixNano()
	r.wire = uint32(len(b))
	r.n = uint16(copy(r.b[:], b))
	t.wtail++
}

// publish hands the batch's records and count of skipped frames to the
// reader.
func (t *traceTap) publish() {
	t.tail.Store(t.wtail)
	t.skip.Store(t.wskip)
}

// traceMatch is a TraceFilter compiled for the worker: the addresses as
// the pipeline holds them (16 bytes, IPv4 v4-mapped), in two words each.
type traceMatch struct {
	*TraceFilter
	clients []maskedAddr
	vips    []maskedAddr
}

// maskedAddr is an address prefix: a [16]byte address matches when its
// two words, masked, equal addr, and, for an IPv6 prefix (six), when it is
// no v4-mapped IPv4 address (::/0 holds no IPv4 client).
type maskedAddr struct {
	addr, mask [2]uint64
	six        bool
}

func newMaskedAddr(p netip.Prefix) maskedAddr {
	a, bits := p.Addr().As16(), p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	var m [16]byte
	for i := range m {
		n := min(max(bits-8*i, 0), 8)
		m[i] = byte(0xff << (8 - n))
	}
	ma := maskedAddr{mask: words(&m), six: !p.Addr().Is4()}
	w := words(&a)
	ma.addr = [2]uint64{w[0] & ma.mask[0], w[1] & ma.mask[1]}
	return ma
}

func words(b *[16]byte) [2]uint64 {
	return [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

func (m *maskedAddr) match(a *[16]byte) bool {
	w := words(a)
	if m.six && w[0] == 0 && uint32(w[1]) == 0xffff0000 { // bytes 8..11: 0, 0, 0xff, 0xff
		return false
	}
	return w[0]&m.mask[0] == m.addr[0] && w[1]&m.mask[1] == m.addr[1]
}

func compileTraceFilter(f *TraceFilter) *traceMatch {
	m := &traceMatch{TraceFilter: f}
	for _, p := range f.Clients {
		m.clients = append(m.clients, newMaskedAddr(p))
	}
	for _, a := range f.VIPs {
		m.vips = append(m.vips, newMaskedAddr(netip.PrefixFrom(a, a.BitLen())))
	}
	return m
}

// matchFrame tests what the worker knows of a frame just decided: its
// verdict, decision and addresses. Servers are tested by the reader.
func (f *traceMatch) matchFrame(p *Pipeline, v Verdict) bool {
	d := &p.last
	switch {
	case f.Verdicts != 0 && f.Verdicts&(1<<v) == 0,
		f.Drops && (v == VerdictForward || v == VerdictReply),
		f.New && !d.New,
		len(f.Servers) > 0 && d.Dest == 0:
		return false
	}
	if len(f.Services) > 0 && (d.Service == nil || !slices.Contains(f.Services, d.Service.Key)) {
		return false
	}
	if len(f.clients) > 0 || len(f.vips) > 0 {
		if p.f.l3Type != etherTypeIPv4 && p.f.l3Type != etherTypeIPv6 {
			return false
		}
		if len(f.vips) > 0 && !anyMatch(f.vips, &p.f.key.VIP) {
			return false
		}
		if len(f.clients) > 0 && !anyMatch(f.clients, &p.f.key.Client) {
			return false
		}
	}
	return true
}

func anyMatch(ms []maskedAddr, a *[16]byte) bool {
	for i := range ms {
		if ms[i].match(a) {
			return true
		}
	}
	return false
}

// Trace is a running trace of Workers' decisions (StartTrace). Its
// methods are for one goroutine, the reader.
type Trace struct {
	ws   Workers
	taps []*traceTap
	f    TraceFilter
	x    Explainer
	pad  []byte
	e    TraceEntry
}

// TraceEntry is one traced frame, as Trace.Poll hands it.
type TraceEntry struct {
	Time   time.Time
	Worker int
	// Frame is the frame's first bytes (at most TraceSnap) as it left the
	// pipeline (a forwarded frame rewritten), and Length its length.
	// Frame is valid until fn returns.
	Frame    []byte
	Length   int
	Decision Decision
	// Line is the explanation udr replay --explain prints for the frame.
	Line string
}

// StartTrace starts a trace of the frames that match f, with queue records
// per worker (0: DefaultTraceQueue). Only one trace runs at a time:
// another gets ErrTraceBusy. Stop ends it.
func (ws Workers) StartTrace(f TraceFilter, queue int) (*Trace, error) {
	queue = orDefault(queue, DefaultTraceQueue)
	t := &Trace{ws: ws, f: f, pad: make([]byte, 1<<17)}
	m := compileTraceFilter(&t.f)
	for range ws {
		t.taps = append(t.taps, &traceTap{f: m, recs: make([]traceRecord, queue)})
	}
	// The first worker's tap says a trace runs; Stop clears it last.
	if !ws[0].trace.CompareAndSwap(nil, t.taps[0]) {
		return nil, ErrTraceBusy
	}
	for i, w := range ws[1:] {
		w.trace.Store(t.taps[i+1])
	}
	p := ws[0].p
	t.x = Explainer{neigh: p.neigh, reg: p.reg}
	return t, nil
}

// Stop ends the trace: the workers stop recording at their next batch.
func (t *Trace) Stop() {
	for i := len(t.ws) - 1; i >= 0; i-- {
		t.ws[i].trace.CompareAndSwap(t.taps[i], nil)
	}
}

// Skipped returns how many matching frames the workers did not record
// because their queue was full (as of their last batch).
func (t *Trace) Skipped() uint64 {
	var n uint64
	for _, tap := range t.taps {
		n += tap.skip.Load()
	}
	return n
}

// Poll hands fn, worker by worker in the order each decided them, the
// frames recorded since the last Poll that match the filter, with their
// explanation, until fn returns false. It returns how many it handed.
func (t *Trace) Poll(fn func(*TraceEntry) bool) int {
	n := 0
	for i, tap := range t.taps {
		head, tail := tap.head.Load(), tap.tail.Load()
		for ; head < tail; head++ {
			r := &tap.recs[head%uint64(len(tap.recs))]
			if !t.matchServer(r.d.Dest) {
				continue
			}
			t.entry(i, r)
			n++
			if !fn(&t.e) {
				tap.head.Store(head + 1)
				return n
			}
		}
		tap.head.Store(head)
	}
	return n
}

func (t *Trace) matchServer(id dest.ID) bool {
	if len(t.f.Servers) == 0 {
		return true
	}
	real := t.x.reg.Key(id).Real
	return slices.ContainsFunc(t.f.Servers, func(s netip.AddrPort) bool {
		return s.Addr() == real.Addr() && (s.Port() == 0 || s.Port() == real.Port())
	})
}

// entry fills t.e from record r of worker i.
func (t *Trace) entry(i int, r *traceRecord) {
	frame := r.b[:r.n]
	t.e = TraceEntry{Time: time.Unix(0, r.unix), Worker: i, Frame: frame, Length: int(r.wire), Decision: r.d}
	// The explanation reads the headers the frame's lengths promise: the
	// bytes past the snap length are zeros, as if captured.
	full := frame
	if int(r.wire) > len(frame) && int(r.wire) <= len(t.pad) {
		full = t.pad[:r.wire]
		copy(full, frame)
		clear(full[len(frame):])
	}
	t.x.t = t.ws[0].p.table.Load()
	t.e.Line = t.x.Line(&t.e.Decision, full)
}
