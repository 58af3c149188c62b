package stats

import (
	"sync"
	"time"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// Snapshot is what the admin shows for one real server, one service or
// the whole director.
type Snapshot struct {
	// Counters are the counters since the last Zero (the kernel's kstats -
	// kstats0): what ipvsadm --stats shows.
	Counters Counters
	// Rates are the estimator's rates: what ipvsadm --rate shows.
	Rates Rates
	// Cumulative are the counters since the Table first saw the service or
	// real server, untouched by Zero: monotonic, as monitoring counters
	// must be.
	Cumulative Counters
}

// entry is the statistics of one service, one real server or the total.
type entry struct {
	est  Estimator
	cur  Counters // cumulative, as read at the last Tick
	zero Counters // cur at the last Zero
	gen  uint64   // the last Tick that saw the service or server configured
}

func (e *entry) snapshot() Snapshot {
	return Snapshot{Counters: e.cur.Sub(e.zero), Rates: e.est.Rates(), Cumulative: e.cur}
}

// zeroNow makes the current counters the zero point and restarts the
// estimator (ip_vs_zero_stats).
func (e *entry) zeroNow() {
	e.zero = e.cur
	e.est.Reset(e.cur)
}

// destEntry is a real server's entry. It stays until the registry frees the
// server's ID (Forget): a server deleted and added again before that (same
// service, address and port, hence the same DestID) resumes its counters,
// as the kernel restores a dest from its trash with its statistics.
type destEntry struct {
	entry
	svc  service.Key
	live bool // configured at the last Tick
}

// Table holds the statistics of every real server (by DestID), of every
// configured service, and the total. It is safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	dests   map[dest.ID]*destEntry
	svcs    map[service.Key]*entry
	total   entry
	gen     uint64
	lastEst time.Time // when the estimators last ran; zero before
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{dests: make(map[dest.ID]*destEntry), svcs: make(map[service.Key]*entry)}
}

// minEstimateGap is the shortest interval between two estimations: a Tick
// sooner than this after the previous one refreshes the counters only, so
// that a doubled or early tick cannot double the rates. Half a Period
// leaves a late ticker all the slack it needs.
const minEstimateGap = Period / 2

// Tick reads the live counters of every real server of services from reg,
// adds each server's increase since the previous Tick to its service and
// to the total, and, once per Period, runs every estimator. The director
// calls it every Period with the running configuration; the services'
// real servers have their DestIDs in reg (forwarder.Compile gives them;
// Tick only looks them up).
//
// A real server that is no longer configured gives its last increase to
// its service and then stops being read: its past counts stay in the
// service. A service that is no longer configured is forgotten (the
// kernel frees its statistics with it); its counts stay in the total.
func (t *Table) Tick(now time.Time, reg *dest.Registry, services []*service.Service) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for _, s := range services {
		se := t.svcs[s.Key]
		if se == nil {
			se = &entry{}
			t.svcs[s.Key] = se
		}
		se.gen = t.gen
		for _, d := range s.Dests {
			id, ok := reg.Lookup(s.DestKey(d))
			if !ok {
				continue // not compiled (a full registry), or already gone
			}
			de := t.dests[id]
			fresh := de == nil
			if fresh {
				de = &destEntry{svc: s.Key}
				t.dests[id] = de
			}
			t.read(de, se, reg.State(id))
			if !de.live {
				// A returning server: rates start afresh. A new one's
				// estimator starts from zero counters, as the kernel's
				// does when the server is added: the packets it got
				// before this first Tick count in its rates, as they do
				// in its service's.
				if !fresh {
					de.est.Reset(de.cur)
				}
				de.live = true
			}
			de.gen = t.gen
		}
	}
	for id, de := range t.dests {
		if de.live && de.gen != t.gen {
			// Deleted since the previous Tick: a last read, then no more.
			se := t.svcs[de.svc]
			if se != nil && se.gen != t.gen {
				se = nil // its service went too
			}
			t.read(de, se, reg.State(id))
			de.live = false
		}
	}
	for k, se := range t.svcs {
		if se.gen != t.gen {
			delete(t.svcs, k)
		}
	}
	if !t.lastEst.IsZero() && now.Sub(t.lastEst) < minEstimateGap {
		return
	}
	t.lastEst = now
	for _, de := range t.dests {
		if de.live {
			de.est.Tick(de.cur)
		}
	}
	for _, se := range t.svcs {
		se.est.Tick(se.cur)
	}
	t.total.est.Tick(t.total.cur)
}

// Forget drops real server id, whose ID the registry is freeing
// (dest.Registry.Reap) and whose live counters are st: what it counted
// since the last Tick goes to its service and the total first.
func (t *Table) Forget(id dest.ID, st *dest.State) {
	t.mu.Lock()
	defer t.mu.Unlock()
	de := t.dests[id]
	if de == nil {
		return
	}
	if de.live {
		t.read(de, t.svcs[de.svc], st)
	}
	delete(t.dests, id)
}

// read brings de up to the live counters st and adds the increase to se
// (if not nil) and to the total.
func (t *Table) read(de *destEntry, se *entry, st *dest.State) {
	now := Counters{Conns: st.Conns.Load(), InPkts: st.InPkts.Load(), InBytes: st.InBytes.Load()}
	delta := now.Sub(de.cur)
	de.cur = now
	if se != nil {
		se.cur = se.cur.Add(delta)
	}
	t.total.cur = t.total.cur.Add(delta)
}

// Zero is ipvsadm -Z -t|-u service: the service's counters and those of
// its configured real servers, as read at the last Tick, become their zero
// point, and their estimators restart (ip_vs_zero_service). It reports
// false if the service is unknown.
func (t *Table) Zero(k service.Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	se := t.svcs[k]
	if se == nil {
		return false
	}
	se.zeroNow()
	for _, de := range t.dests {
		if de.live && de.svc == k {
			de.zeroNow()
		}
	}
	return true
}

// ZeroAll is ipvsadm -Z without a service: every service, every
// configured real server and the total (ip_vs_zero_all).
func (t *Table) ZeroAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, se := range t.svcs {
		se.zeroNow()
	}
	for _, de := range t.dests {
		if de.live {
			de.zeroNow()
		}
	}
	t.total.zeroNow()
}

// Dest returns the statistics of real server id, if it was configured at
// the last Tick.
func (t *Table) Dest(id dest.ID) (Snapshot, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	de := t.dests[id]
	if de == nil || !de.live {
		return Snapshot{}, false
	}
	return de.snapshot(), true
}

// Service returns the statistics of service k, if it was configured at the
// last Tick.
func (t *Table) Service(k service.Key) (Snapshot, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	se := t.svcs[k]
	if se == nil {
		return Snapshot{}, false
	}
	return se.snapshot(), true
}

// Total returns the statistics of the whole director
// (/proc/net/ip_vs_stats): every service, including deleted ones.
func (t *Table) Total() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total.snapshot()
}
