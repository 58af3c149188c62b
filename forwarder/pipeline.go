package forwarder

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// Pipeline decides the fate of one frame at a time: parse, find the service,
// look up or create the connection, schedule, rewrite. It is one worker's
// state and is not safe for concurrent use; it does not allocate.
type Pipeline struct {
	table *atomic.Pointer[Table]
	conns *conntrack.Table
	neigh *Neighbors
	reg   *dest.Registry
	epoch time.Time
	hz    uint32        // the connection table's ticks per second
	tick  time.Duration // one tick
	seen  atomic.Uint64 // the registry epoch read at the last Sweep
	// The defence modes last handed to conns (Options.DropEntry,
	// Options.SecureTCP).
	dropEntry, secureTCP conntrack.DefenseMode
	// serial: other pipelines share the Table; new connections are
	// scheduled under their service's lock (compiledService.mu).
	serial bool

	t         *Table // the snapshot in use for the current frame
	lastNow   time.Time
	lastTicks uint32 // Ticks(lastNow)
	lastSecs  uint32 // Clock(lastNow)
	f         frame
	frags     fragTable
	unreach   unreachLimiter
	last      Decision
	stats     Stats
	counts    destCounts
	// sync is the worker's queue of sync records while sync is on
	// (Workers.EnableSync), else nil.
	sync  *syncQueue
	reply [MaxReplyLen]byte
}

// DefaultCapacity is the connection table capacity when none is given.
const DefaultCapacity = 1 << 20

// MaxReplyLen bounds the frames the pipeline builds itself (ARP replies,
// neighbor advertisements, ICMP errors).
const MaxReplyLen = 1518

// PipelineConfig wires a Pipeline to the state it shares.
type PipelineConfig struct {
	Table     *atomic.Pointer[Table] // the current snapshot, swapped by the control plane
	Conns     *conntrack.Table       // owned by this worker
	Neighbors *Neighbors
	Registry  *dest.Registry
	// Epoch is the time that conntrack's clock counts from; now passed to
	// Process must not be before it.
	Epoch time.Time
	// Shared says that several pipelines (workers) share Table, each with
	// its own Conns. A new connection is then scheduled under a lock per
	// service, as the kernel serialises its schedulers: its pick, its
	// persistence template, its entry and its server's counts are done
	// before another worker's new connection to the service is picked, so
	// that the schedulers see the sequence of new connections one worker
	// would. Frames of established connections take no lock. A single
	// pipeline leaves it false and takes none.
	Shared bool
	// UnreachShare is this pipeline's part of the ICMP port unreachables
	// a second (UnreachPerSecond), when several share the budget; 0 means
	// all of it.
	UnreachShare int
}

// NewPipeline returns a worker over c. Its clock runs at the connection
// table's rate (conntrack.Options.TicksPerSecond), which must divide a
// second into whole nanoseconds.
func NewPipeline(c PipelineConfig) *Pipeline {
	hz := c.Conns.TicksPerSecond()
	p := &Pipeline{table: c.Table, conns: c.Conns, neigh: c.Neighbors, reg: c.Registry, epoch: c.Epoch,
		hz: hz, tick: time.Second / time.Duration(hz), serial: c.Shared}
	p.counts.init(c.Registry)
	if t := c.Table.Load(); t != nil {
		// The table was made with these: only a change is handed on.
		p.dropEntry, p.secureTCP = t.opts.DropEntry, t.opts.SecureTCP
	}
	p.frags.ttl = fragTimeout * hz
	p.unreach.hz = hz
	p.unreach.max = unreachMaxPerSec
	if c.UnreachShare > 0 {
		p.unreach.max = c.UnreachShare
	}
	return p
}

// Decision explains the pipeline's last verdict: which service, scheduler
// and real server, and whether the connection was new. Service points into
// the immutable Table; the rest are plain values, so that filling it costs
// the packet path no pointer writes.
type Decision struct {
	Verdict Verdict
	Service *service.Service // nil when no service was found
	// Dest is the real server: the one forwarded to, or the one that was
	// picked when its MAC turned out unknown.
	Dest      dest.ID
	New       bool // the frame created a connection entry
	Persist   bool // the real server came from a persistence template
	Stateless bool // scheduled without an entry (sh/mh mid-stream, sloppy TCP)
	Resched   bool // an old entry was replaced (conn_reuse_mode)
	State     conntrack.State
	Fragment  bool // a later fragment, sent where its first went
	ICMP      bool // an ICMP error sent to its connection's real server
	// Unreachable: no real server was available and the client is sent
	// ICMP port unreachable.
	Unreachable bool
	ARPReason   arpresponder.Reason
}

// Decision returns the explanation of the last Process call.
func (p *Pipeline) Decision() *Decision { return &p.last }

// Stats returns the worker's counters. The owner reads them between
// batches or after the worker stopped.
func (p *Pipeline) Stats() *Stats { return &p.stats }

// Conns returns the worker's connection table.
func (p *Pipeline) Conns() *conntrack.Table { return p.conns }

// Registry returns the registry of the real servers' live state.
func (p *Pipeline) Registry() *dest.Registry { return p.reg }

// Ticks converts a wall-clock time to the connection table's clock: ticks
// (10 ms by default) since the epoch, plus one second's worth, so that
// Ticks(now) / TicksPerSecond is Clock(now).
func (p *Pipeline) Ticks(now time.Time) uint32 {
	if now == p.lastNow {
		// A batch's frames share one reading of the clock: convert it once.
		return p.lastTicks
	}
	p.lastNow = now
	p.lastTicks = uint32(now.Sub(p.epoch)/p.tick) + p.hz
	p.lastSecs = p.Clock(now)
	return p.lastTicks
}

// TickTime returns the wall-clock time at which the connection table's
// clock reaches tick, counted from the last time converted, so that it
// stays right when the clock wraps (every 497 days at 100 ticks a
// second).
func (p *Pipeline) TickTime(tick uint32) time.Time {
	if p.lastNow.IsZero() {
		return p.epoch.Add(time.Duration(int64(tick)-int64(p.hz)) * p.tick)
	}
	start := p.lastNow.Add(-(p.lastNow.Sub(p.epoch) % p.tick)) // of tick lastTicks
	return start.Add(time.Duration(int32(tick-p.lastTicks)) * p.tick)
}

// secs returns ticks in whole seconds, the clock of the schedulers and of
// the ICMP rate limit.
func (p *Pipeline) secs(ticks uint32) uint32 {
	if ticks == p.lastTicks {
		return p.lastSecs
	}
	return ticks / p.hz
}

// Clock converts a wall-clock time to the schedulers' clock, whole seconds
// since the epoch plus one; it is safe to call from any goroutine (the
// control plane stamps a Table it compiles with it: Options.Now).
func (p *Pipeline) Clock(now time.Time) uint32 {
	return uint32(now.Sub(p.epoch)/time.Second) + 1
}

// Sweep runs the connection table's timers up to now, scanning at most
// budget slots (conntrack.Table.Sweep); the owner calls it before each
// batch and when NextDue comes. It also records that the pipeline holds no
// table older than the registry's current epoch (Seen), and flushes the
// real servers' counters first (FlushCounters).
func (p *Pipeline) Sweep(now time.Time, budget int) int {
	p.counts.flush()
	p.seen.Store(p.reg.Epoch())
	if o := &p.table.Load().opts; o.DropEntry != p.dropEntry || o.SecureTCP != p.secureTCP {
		// A reload changed the defences' modes (the kernel's sysctls
		// change live too).
		p.dropEntry, p.secureTCP = o.DropEntry, o.SecureTCP
		p.conns.SetDefense(o.DropEntry, o.SecureTCP)
	}
	n := p.conns.Sweep(p.Ticks(now), budget)
	if p.sync != nil {
		p.syncRearmed(p.Ticks(now))
	}
	return n
}

// FlushCounters adds the InPkts and InBytes that Process counted for each
// real server since the last flush to the registry's State. The owner
// calls it after each batch; Sweep calls it too, so that no count is added
// after its server's ID could be reaped.
func (p *Pipeline) FlushCounters() { p.counts.flush() }

// NextDue returns when Sweep next has a timer to run, and false when no
// entry is left. A time not after the last Sweep's means that Sweep ran
// out of budget and should run again at once. checks bounds the work
// spent to make the answer less early (conntrack.Table.NextDue).
func (p *Pipeline) NextDue(checks int) (time.Time, bool) {
	tick, ok := p.conns.NextDue(checks)
	if !ok {
		return time.Time{}, false
	}
	return p.TickTime(tick), true
}

// Seen returns the registry epoch the pipeline had reached at its last
// Sweep, for dest.Registry.Reap: the frames it processes from then on load
// a table published at that epoch or later. It is safe to call from any
// goroutine.
func (p *Pipeline) Seen() uint64 { return p.seen.Load() }

// Process decides on frame b, received at now. For VerdictForward the
// returned frame is b itself, rewritten in place. For VerdictReply, and for
// VerdictNoBackend (the ICMP port unreachable the kernel sends, within its
// rate limit), it is a new frame in the worker's scratch buffer, valid until
// the next call. For every other verdict it is nil.
func (p *Pipeline) Process(b []byte, now time.Time) (Verdict, []byte) {
	p.t = p.table.Load()
	p.last = Decision{}
	v, out := p.process(b, p.Ticks(now))
	p.last.Verdict = v
	p.stats.Verdicts[v]++
	return v, out
}

func (p *Pipeline) process(b []byte, now uint32) (Verdict, []byte) {
	f := &p.f
	if v := f.decode(b); v != VerdictForward {
		return v, nil
	}
	dst := [6]byte(b[ethDst : ethDst+6])
	group := dst[0]&1 != 0
	if !group && dst != p.t.opts.IfMAC && dst != p.t.opts.VIPMAC {
		return VerdictNotForUs, nil
	}
	switch f.l3Type {
	case etherTypeARP:
		return p.arp(b)
	case etherTypeIPv6:
		if f.key.Proto == protoICMPv6 && f.l4 != 0 && isNDP(b[f.l4]) {
			return p.ndp(b)
		}
	}
	if group {
		return VerdictMulticast, nil
	}
	if p.t.opts.Standby {
		// The Table is loaded already: a standby director pays one
		// branch on a field of it, and an active one the same.
		if !p.t.index.isVIP(&f.key.VIP) {
			return VerdictNotVIP, nil
		}
		return VerdictStandby, nil
	}
	if (f.key.Proto == protoTCP || f.key.Proto == protoUDP) && f.fragOff == 0 {
		// The common case: a service of the frame's own protocol, VIP
		// and port, which also says that the address is a VIP.
		if i, ok := p.t.index.get(&f.key.VIP, f.key.VPort, f.key.Proto); ok {
			return p.transportTo(&p.t.services[i], now)
		}
	}
	if !p.t.index.isVIP(&f.key.VIP) {
		return VerdictNotVIP, nil
	}
	switch {
	case f.fragOff != 0:
		return p.laterFragment(now)
	case f.key.Proto == protoTCP || f.key.Proto == protoUDP:
		return p.transport(now)
	case f.key.Proto == protoICMP || f.key.Proto == protoICMPv6:
		return p.icmp(now)
	}
	return VerdictProto, nil
}

// forward rewrites the frame for real server id: destination MAC = the
// server's, source MAC = the director's. Nothing else changes.
func (p *Pipeline) forward(id dest.ID) (Verdict, []byte) {
	p.last.Dest = id
	mac, ok := p.neigh.packed(id)
	if !ok {
		return VerdictNoNeighbor, nil
	}
	b := p.f.b
	// The MAC goes from the word it is kept in straight to the frame, with
	// no [6]byte built on the stack and copied (the profile put a stall
	// there; the machine has no counters to say which).
	binary.BigEndian.PutUint32(b[ethDst:], uint32(mac>>16))
	binary.BigEndian.PutUint16(b[ethDst+4:], uint16(mac))
	copy(b[ethSrc:ethSrc+6], p.t.opts.IfMAC[:])
	p.counts.add(id, p.f.ipLen)
	return VerdictForward, b
}

func (p *Pipeline) laterFragment(now uint32) (Verdict, []byte) {
	id, ok := p.frags.lookup(p.f.fragKey(), now)
	if !ok || !p.reg.Holds(id) {
		// Unknown, or its real server's ID was freed since (a fragment
		// entry counts on no server, so it cannot keep the ID).
		return VerdictFragment, nil
	}
	p.last.Fragment = true
	return p.forward(id)
}

func (p *Pipeline) arp(b []byte) (Verdict, []byte) {
	f := &p.f
	src := [6]byte(b[ethSrc : ethSrc+6])
	a, why := arpresponder.ValidateARP(b[f.l3:])
	if why != arpresponder.ReasonNone {
		return p.answered(nil, why, VerdictARPIgnored)
	}
	p.learnARP(src, &a)
	out, reason := p.t.resp.AnswerARP(p.reply[:0], f.vlanTag(), src, &a)
	if p.t.opts.Standby {
		return p.standbyND(reason, VerdictARPIgnored)
	}
	return p.answered(out, reason, VerdictARPIgnored)
}

func (p *Pipeline) ndp(b []byte) (Verdict, []byte) {
	f := &p.f
	src := [6]byte(b[ethSrc : ethSrc+6])
	m, why := arpresponder.ParseND(b[f.l3 : f.l3+f.ipLen])
	if why != arpresponder.ReasonNone {
		return p.answered(nil, why, VerdictNDPIgnored)
	}
	p.learnNA(src, &m)
	out, reason := p.t.resp.AnswerND(p.reply[:0], f.vlanTag(), src, &m)
	if p.t.opts.Standby {
		return p.standbyND(reason, VerdictNDPIgnored)
	}
	return p.answered(out, reason, VerdictNDPIgnored)
}

// standbyND is the verdict of an ARP or NDP packet in standby, whose
// answer the responder gave as reason: a request for a VIP is not
// answered, and another host claiming a VIP (the active director's
// announcements) is no conflict to defend against; both are
// VerdictStandby. The rest gets the verdict it gets when active.
func (p *Pipeline) standbyND(reason arpresponder.Reason, ignored Verdict) (Verdict, []byte) {
	p.last.ARPReason = reason
	switch reason {
	case arpresponder.ReasonNone, arpresponder.ReasonConflict:
		return VerdictStandby, nil
	case arpresponder.ReasonMalformed:
		return VerdictMalformed, nil
	}
	return ignored, nil
}

// answered turns the responder's decision into a verdict; ignored is the
// verdict of a packet that needs no answer.
func (p *Pipeline) answered(out []byte, reason arpresponder.Reason, ignored Verdict) (Verdict, []byte) {
	p.last.ARPReason = reason
	switch reason {
	case arpresponder.ReasonNone:
		return VerdictReply, out
	case arpresponder.ReasonConflict:
		return VerdictARPConflict, nil
	case arpresponder.ReasonMalformed:
		return VerdictMalformed, nil
	}
	return ignored, nil
}

func (f *frame) vlanTag() arpresponder.VLAN {
	return arpresponder.VLAN{Present: f.vlan, TCI: f.vlanTCI}
}

// learnARP records the sender of an ARP packet that passed the responder's
// validation (arpresponder.ValidateARP) and whose sender address is a real
// server's: the director learns its neighbours from the traffic it sees.
// A packet from the director's own MACs teaches nothing.
func (p *Pipeline) learnARP(ethSrc [6]byte, a *arpresponder.ARP) {
	if p.ownMAC(ethSrc) || p.ownMAC(a.SenderMAC) {
		return
	}
	ip := [16]byte{10: 0xff, 11: 0xff}
	copy(ip[12:], a.SenderIP[:])
	p.learn(ip, a.SenderMAC, NeighborARP)
}

// learnNA records the target of a neighbor advertisement (RFC 4861 4.4)
// that passed the responder's validation (arpresponder.ParseND, RFC 4861
// 7.1.2), carries a target link-layer address option and whose target is a
// real server's address.
func (p *Pipeline) learnNA(ethSrc [6]byte, m *arpresponder.ND) {
	if m.Type != arpresponder.TypeNA || !m.HasLLA ||
		p.ownMAC(ethSrc) || p.ownMAC(m.LLA) || netip.AddrFrom16(m.Target).Is4In6() {
		return // an IPv4-mapped target would name an IPv4 real server
	}
	p.learn(m.Target, m.LLA, NeighborNDP)
}

// learn records that real server address ip (IPv4 as v4-mapped) is at mac;
// any other address is ignored.
func (p *Pipeline) learn(ip [16]byte, mac [6]byte, src NeighborSource) {
	id, rip := p.t.rips[ip]
	if !rip {
		return
	}
	if have, known := p.neigh.mac(id); known && have == mac {
		p.neigh.confirm(id, p.lastNow)
		return
	}
	p.neigh.Learn(netip.AddrFrom16(ip).Unmap(), mac, src, p.lastNow)
}

func (p *Pipeline) ownMAC(m [6]byte) bool {
	return m == p.t.opts.VIPMAC || m == p.t.opts.IfMAC
}

// isNDP reports whether an ICMPv6 type is neighbor discovery (RFC 4861 4):
// router/neighbor solicitation and advertisement, redirect.
func isNDP(typ uint8) bool { return typ >= 133 && typ <= 137 }
