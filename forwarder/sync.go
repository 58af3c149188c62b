package forwarder

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
)

// Connection synchronisation, the data path of the kernel's sync daemon
// (ip_vs_sync.c, protocol version 1). While sync is on, each worker queues
// a record for the connections its packets make due
// (ip_vs_sync_conn_needed: conntrack.Entry.SyncDue) and for the templates
// that control them, on a bounded queue of its own that the control plane
// drains (DrainSync); records another director sent go into the workers'
// tables through Worker.Do (InsertSynced); DumpSync lists every entry for
// a peer that (re)started.

// SyncRecord is a connection or template as the sync daemon sends and
// receives it.
type SyncRecord struct {
	Key conntrack.Key
	// Dest is the entry's real server within its virtual service, by
	// address and port. InsertSynced resolves it against the workers'
	// Table as ip_vs_find_dest does: the service (Proto, VIP address and
	// port, with ip_vs_service_find's fall-backs to the FTP and the port-0
	// service, and the FTP service for port 0, where an FTP template's
	// virtual port is), then the server by address and port. DrainSync
	// and DumpSync give the service's own VIP and port: the wire's
	// virtual port is Key.VPort (0 for such a template).
	Dest dest.Key
	// State is conntrack's: conntrack.State.KernelState and
	// conntrack.StateFromKernel convert it from and to the kernel's
	// numbers (UDP's and a template's differ).
	State conntrack.State
	// Flags are conntrack's. A connection has conntrack.FlagActive when it
	// counts in its server's ActiveConn (the kernel's
	// IP_VS_CONN_F_INACTIVE clear), a template conntrack.FlagTemplate
	// (IP_VS_CONN_F_TEMPLATE). DrainSync and DumpSync give the table's
	// flags; InsertSynced reads only those two (FlagTemplate must agree
	// with Key.Template) and takes a connection's template link from this
	// director's service.
	Flags conntrack.Flags
	// Timeout is in seconds: the timeout of the state the connection is
	// in, which its last packet set (the kernel sends cp->timeout/HZ,
	// ip_vs_sync_conn), and a template's persistence timeout (60 s once
	// re-armed). DumpSync gives the time left instead, rounded up.
	// InsertSynced takes 0 as the state's timeout, 180 s for a template.
	Timeout uint32
}

// SyncConfig are the sysctls of the kernel's sync that the workers follow.
type SyncConfig struct {
	// Threshold and Period are the sync_threshold pair: a connection is
	// due at its packet pkts where pkts % Period == Threshold. 0 and 0
	// mean the defaults, 3 and 50; otherwise conntrack.CheckSync.
	Threshold, Period int
	// PersistMode is sync_persist_mode: the connections of persistent
	// services are not sent, only their templates.
	PersistMode bool
}

// DefaultSyncQueue is the capacity of a worker's sync queue, in records:
// 100 ms of 40 000 records a second per worker between two DrainSync.
const DefaultSyncQueue = 4096

// syncEntry is a record in a worker's queue: fixed size, the server by ID.
type syncEntry struct {
	key     conntrack.Key
	dest    dest.ID
	timeout uint32
	state   conntrack.State
	flags   conntrack.Flags
}

// syncQueue is a worker's bounded single-producer single-consumer queue of
// records: the worker pushes without a lock and never blocks (a full queue
// drops and counts the record), DrainSync pops.
type syncQueue struct {
	buf  []syncEntry
	mask uint64
	// head is the next slot the worker writes, and so the count of
	// records ever queued: it only grows.
	head    atomic.Uint64
	tail    atomic.Uint64 // next slot the drain reads
	dropped atomic.Uint64

	last syncEntry // the worker's last push

	mu   sync.Mutex // one drain at a time
	out  []SyncRecord
	keys map[dest.ID]dest.Key // the servers of one drain
}

func newSyncQueue(n int) *syncQueue {
	size := 1
	for size < n {
		size <<= 1
	}
	return &syncQueue{buf: make([]syncEntry, size), mask: uint64(size - 1)}
}

// push queues e; the worker calls it. A template's record identical to the
// last one queued and not drained yet is not queued again: the kernel
// sends a template along with every packet of its connections, and the
// copies say the same thing.
func (q *syncQueue) push(e *syncEntry) {
	h := q.head.Load() // the worker's own
	t := q.tail.Load()
	if e.key.Template && h != t && *e == q.last {
		return
	}
	if h-t >= uint64(len(q.buf)) {
		q.dropped.Add(1)
		return
	}
	q.buf[h&q.mask] = *e
	q.last = *e
	q.head.Store(h + 1)
}

// syncSettings is what a worker applies at its next batch.
type syncSettings struct {
	on                bool
	threshold, period int
	persist           bool
}

// syncCtl is a worker's sync control: the settings its next batch applies,
// and the queue.
type syncCtl struct {
	mu      sync.Mutex // serialises the control plane's changes
	cfg     atomic.Pointer[syncSettings]
	applied *syncSettings // the worker's
	queue   atomic.Pointer[syncQueue]
	size    int // of the queue: WorkerConfig.SyncQueue
	// noServer counts the drained records whose server was gone.
	noServer atomic.Uint64
}

// EnableSync turns the queueing of sync records on or off in every worker
// (the kernel's master sync state): each applies it at its next batch. Off,
// a worker pays one atomic load per batch for sync and nothing per packet.
func (ws Workers) EnableSync(on bool) {
	for _, w := range ws {
		w.setSync(func(s *syncSettings) { s.on = on })
	}
}

// SetSyncConfig sets the sync sysctls of every worker (see SyncConfig); it
// refuses values the workers cannot follow, changing nothing.
func (ws Workers) SetSyncConfig(c SyncConfig) error {
	if c.Threshold == 0 && c.Period == 0 {
		c.Threshold, c.Period = conntrack.DefaultSyncThreshold, conntrack.DefaultSyncPeriod
	}
	if err := conntrack.CheckSync(c.Threshold, c.Period); err != nil {
		return err
	}
	for _, w := range ws {
		w.setSync(func(s *syncSettings) { s.threshold, s.period, s.persist = c.Threshold, c.Period, c.PersistMode })
	}
	return nil
}

func (w *Worker) setSync(change func(*syncSettings)) {
	c := &w.sync
	c.mu.Lock()
	defer c.mu.Unlock()
	s := syncSettings{threshold: conntrack.DefaultSyncThreshold, period: conntrack.DefaultSyncPeriod}
	if old := c.cfg.Load(); old != nil {
		s = *old
	}
	change(&s)
	if s.on && c.queue.Load() == nil {
		c.queue.Store(newSyncQueue(c.size))
	}
	c.cfg.Store(&s)
	w.wake()
}

// applySync applies the sync settings the control plane changed, at the
// start of a batch.
func (w *Worker) applySync() {
	s := w.sync.cfg.Load()
	if s == w.sync.applied {
		return
	}
	w.sync.applied = s
	// The settings were checked by SetSyncConfig.
	w.p.conns.SetSync(s.on, s.threshold, s.period, s.persist)
	w.p.sync = nil
	if s.on {
		w.p.sync = w.sync.queue.Load()
	}
}

// SyncStats count the records of the workers' sync queues.
type SyncStats struct {
	// Queued records were put on a queue; Dropped ones found it full.
	Queued, Dropped uint64
	// NoServer records were drained after their real server's ID was
	// freed, and dropped.
	NoServer uint64
}

// SyncStats returns the sum of the workers' sync counters.
func (ws Workers) SyncStats() SyncStats {
	var s SyncStats
	for _, w := range ws {
		if q := w.sync.queue.Load(); q != nil {
			s.Queued += q.head.Load()
			s.Dropped += q.dropped.Load()
			s.NoServer += w.sync.noServer.Load()
		}
	}
	return s
}

// DrainSync calls fn with the records each worker queued since the last
// call, worker by worker (a worker whose queue is empty is skipped). The
// records are valid until fn returns. A record whose real server has been
// deleted and its ID freed since is dropped and counted (SyncStats). Safe
// for concurrent use; the director's sync loop calls it every 100 ms or so.
func (ws Workers) DrainSync(fn func([]SyncRecord)) {
	for _, w := range ws {
		q := w.sync.queue.Load()
		if q == nil {
			continue
		}
		q.mu.Lock()
		t, h := q.tail.Load(), q.head.Load()
		out := q.out[:0]
		reg := w.p.reg
		if q.keys == nil {
			q.keys = make(map[dest.ID]dest.Key)
		}
		clear(q.keys) // an ID may have been freed since the last drain
		for i := t; i != h; i++ {
			e := &q.buf[i&q.mask]
			dk, ok := q.keys[e.dest]
			if !ok {
				dk = reg.Key(e.dest)
				q.keys[e.dest] = dk
			}
			if !dk.Real.IsValid() {
				w.sync.noServer.Add(1)
				continue
			}
			out = append(out, SyncRecord{Key: e.key, Dest: dk, State: e.state, Flags: e.flags, Timeout: e.timeout})
		}
		q.tail.Store(h)
		q.out = out
		if len(out) > 0 {
			fn(out)
		}
		q.mu.Unlock()
	}
}

// syncConn queues the records a packet of connection k (entry e, of
// service svc) calls for, as ip_vs_sync_conn does: the connection's when
// it is due, then its controlling template's, which the kernel sends along
// with every packet of its connections (ip_vs_sync_conn_needed passes a
// template whatever its packet count).
func (p *Pipeline) syncConn(svc *compiledService, k *conntrack.Key, e *conntrack.Entry, now uint32) {
	if e.SyncDue {
		p.sync.push(&syncEntry{key: *k, dest: e.Dest, timeout: p.conns.StateTimeout(e.State), state: e.State, flags: e.Flags})
	}
	if e.Flags&conntrack.FlagControlled != 0 {
		pers := conntrack.Persistence{Netmask: e.Netmask, AllPorts: e.Flags&conntrack.FlagAllPorts != 0}
		p.syncTemplate(svc, pers.TemplateKey(*k), now)
	}
}

// syncTemplate queues the record of template tk of service svc: the
// kernel's cp->timeout is the persistence timeout, 60 s once re-armed.
func (p *Pipeline) syncTemplate(svc *compiledService, tk conntrack.Key, now uint32) {
	te, ok := p.conns.Lookup(tk, now)
	if !ok {
		return
	}
	timeout := svc.cfg.Timeout
	if te.Flags&conntrack.FlagRearmed != 0 {
		timeout = templateRearm
	}
	p.sync.push(&syncEntry{key: tk, dest: te.Dest, timeout: timeout, state: te.State, flags: te.Flags})
}

// syncRearmed queues the records of the templates the timers re-armed,
// with their new 60 s timeout (ip_vs_conn_expire, expire_later).
func (p *Pipeline) syncRearmed(now uint32) {
	for _, tk := range p.conns.Rearmed() {
		if te, ok := p.conns.Lookup(tk, now); ok {
			p.sync.push(&syncEntry{key: tk, dest: te.Dest, timeout: templateRearm, state: te.State, flags: te.Flags})
		}
	}
}

// templateRearm is the timeout of a re-armed template, in seconds
// (ip_vs_conn_expire: cp->timeout = 60*HZ).
const templateRearm = 60

// InsertStats say what InsertSynced did with the records.
type InsertStats struct {
	// Inserted records made a new entry; Replaced ones replaced a synced
	// connection bound to another server; Updated ones updated a synced
	// entry (conntrack.ApplySync).
	Inserted, Updated, Replaced int
	// Kept records were for an entry that has had packets here, left as
	// it is; Ignored ones were the expiration message of a connection
	// replaced since.
	Kept, Ignored int
	// NoServer records name a service or real server that is not in the
	// table: the kernel keeps such an entry unbound, udr drops it.
	NoServer int
	// Refused records do not fit a table: a full one, or a state or flags
	// that no entry has (Errors gives the first such error).
	Refused int
}

func (s *InsertStats) add(o InsertStats) {
	s.Inserted += o.Inserted
	s.Updated += o.Updated
	s.Replaced += o.Replaced
	s.Kept += o.Kept
	s.Ignored += o.Ignored
	s.NoServer += o.NoServer
	s.Refused += o.Refused
}

// syncChunk is the most records InsertSynced applies in one Worker.Do: a
// few hundred microseconds of the worker's time.
const syncChunk = 512

// InsertSynced puts records another director sent into the workers'
// tables (ip_vs_proc_conn, conntrack.ApplySync): each into the table of
// the worker that the fanout program (prefixes v4, v6, BuildFanout) hands
// its client's frames to (FanoutWorker), through Worker.Do in chunks of a
// few hundred, templates before connections so that the connections of a
// persistent service link to their templates. A connection of a service
// that is persistent here is linked to its client's template, as
// LoadState links one. Every record is accounted in the stats; the error
// is ctx's, or the first record a table refused.
func (ws Workers) InsertSynced(ctx context.Context, recs []SyncRecord, v4, v6 int) (InsertStats, error) {
	var st InsertStats
	if len(ws) == 0 || len(recs) == 0 {
		return st, nil
	}
	t := ws[0].p.table.Load()
	type item struct {
		k       conntrack.Key
		e       conntrack.Entry
		timeout uint32
	}
	per := make([][]item, len(ws))
	for _, tmpl := range []bool{true, false} {
		for i := range recs {
			r := &recs[i]
			if r.Key.Template != tmpl {
				continue
			}
			cs, id := t.resolve(r.Dest)
			if id == 0 {
				st.NoServer++
				continue
			}
			e := conntrack.Entry{Dest: id, State: r.State, Flags: r.Flags & (conntrack.FlagTemplate | conntrack.FlagActive)}
			if !tmpl && cs.cfg.Persistent {
				pers := cs.persistence(&r.Key)
				e.Flags |= conntrack.FlagControlled
				if pers.AllPorts {
					e.Flags |= conntrack.FlagAllPorts
				}
				e.Netmask = pers.Netmask
			}
			w := FanoutWorker(r.Key.Client, v4, v6, len(ws))
			per[w] = append(per[w], item{k: r.Key, e: e, timeout: r.Timeout})
		}
	}
	var first error
	for wi, items := range per {
		for len(items) > 0 {
			chunk := items[:min(len(items), syncChunk)]
			items = items[len(chunk):]
			// The chunk's results are its own: when ctx ends Do, the
			// worker may still run it later.
			var cst InsertStats
			var cerr error
			err := ws[wi].Do(ctx, func(p *Pipeline, now time.Time) {
				ticks := p.Ticks(now)
				for i := range chunk {
					it := &chunk[i]
					out, err := p.conns.ApplySync(it.k, it.e, it.timeout, ticks)
					switch out {
					case conntrack.SyncInserted:
						cst.Inserted++
					case conntrack.SyncUpdated:
						cst.Updated++
					case conntrack.SyncReplaced:
						cst.Replaced++
					case conntrack.SyncKept:
						cst.Kept++
					case conntrack.SyncIgnored:
						cst.Ignored++
					}
					if err != nil {
						cst.Refused++
						if cerr == nil {
							cerr = fmt.Errorf("sync record %v: %w", it.k, err)
						}
					}
				}
			})
			if err != nil {
				return st, err
			}
			st.add(cst)
			if first == nil {
				first = cerr
			}
		}
	}
	return st, first
}

// resolve finds the real server of key k in t as ip_vs_find_dest does:
// its service by protocol, VIP and port with ip_vs_service_find's
// fall-backs (Table.lookup), and for a virtual port 0 the FTP service,
// then the server by address and port. It returns ID 0 when there is none.
func (t *Table) resolve(k dest.Key) (*compiledService, dest.ID) {
	vip := k.VIP.Addr().As16()
	cs, ok := t.lookup(k.Proto, &vip, k.VIP.Port())
	if !ok && k.Proto == protoTCP && k.VIP.Port() == 0 {
		// The template of a persistent FTP service has virtual port 0
		// (ip_vs_sched_persist); ip_vs_service_find does not try port 21
		// for it, and the kernel leaves it unbound.
		cs, ok = t.lookup(k.Proto, &vip, ftpPort)
	}
	if !ok {
		return nil, 0
	}
	addr := k.Real.Addr().Unmap()
	for _, s := range cs.servers {
		if s.Addr.Unmap() == addr && s.Port == k.Real.Port() {
			return cs, s.ID
		}
	}
	return nil, 0
}

// DumpSync calls fn with every connection and template of the workers'
// tables, for a peer that (re)started, worker by worker, in chunks of at
// most ListingChunk: it walks each table as ListConns does, without
// stopping the worker for more than a step at a time. A record's Timeout is
// the time its entry has left, rounded up to the second. The invalidated
// templates (conntrack.Table.InvalidateTemplate) stay behind: their keys
// are this director's own. Records are valid until fn returns.
func (ws Workers) DumpSync(ctx context.Context, fn func([]SyncRecord)) error {
	var out []SyncRecord
	for _, w := range ws {
		reg := w.p.reg
		err := w.ListConns(ctx, func(ls []conntrack.Listed) {
			out = out[:0]
			for i := range ls {
				l := &ls[i]
				k := l.Key()
				left := l.TicksLeft()
				if left == 0 || k.Invalidated() {
					continue
				}
				e := l.Entry()
				dk := reg.Key(e.Dest)
				if !dk.Real.IsValid() {
					continue
				}
				hz := l.TicksPerSecond()
				out = append(out, SyncRecord{Key: k, Dest: dk, State: e.State, Flags: e.Flags,
					Timeout: (left + hz - 1) / hz})
			}
			if len(out) > 0 {
				fn(out)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}
