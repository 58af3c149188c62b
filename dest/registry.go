package dest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// An ID is a slot number in its low indexBits and the slot's generation
// above them: when a slot is freed and used again, its new ID differs from
// the old one, so that an ID kept anywhere (a scheduler's cache, the
// fragment table, a log-once set) never names the slot's next server.
// The generation has 12 bits: an ID comes back after 4096 reuses of its
// slot, and slots are reused oldest-freed first.
const (
	indexBits = 20
	indexMask = 1<<indexBits - 1
	// MaxServers bounds a Registry's capacity.
	MaxServers = indexMask
)

// Index returns the slot of id: what the Registry and the arrays the packet
// path keeps per real server are indexed by.
func (id ID) Index() int { return int(id & indexMask) }

// TrashPeriod is how long a real server that nothing refers to any more
// keeps its ID (and so its statistics) for a re-add, as the kernel keeps an
// unreferenced dest in its trash for IP_VS_DEST_TRASH_PERIOD. A Registry
// running short of free IDs frees such servers sooner.
const TrashPeriod = 120 * time.Second

// phase is where a slot is in its life.
type phase uint8

const (
	phaseFree    phase = iota // on the free list, or never used
	phaseLive                 // named by the published table, or assigned since
	phaseRetired              // out of the table: waits for the workers and its counts
	phaseIdle                 // unreferenced, kept for a re-add (the trash)
	phaseDying                // freed: waits for the workers before reuse
)

type slot struct {
	key   Key
	id    ID     // the ID the slot has now
	phase phase  // guarded by Registry.mu
	turn  uint32 // bumped on every phase change: stale queue entries are skipped
	stamp uint64 // epoch of the retirement or of the freeing
	since time.Time
}

// ref is a queue entry: a slot as it was at one turn.
type ref struct {
	index int
	turn  uint32
}

// Registry hands out IDs and owns the State behind each. Its capacity is
// fixed at creation, so that the packet path can index it without a lock
// while the control plane adds servers.
//
// An ID lives as long as something may refer to it. Compile takes IDs with
// Assign; the control plane, after swapping a table in, calls Publish with
// the table's IDs. A server the published table no longer names is retired;
// Reap frees it once every packet worker has passed the swap (so that none
// still holds a table that names it), its counts are zero (so that no
// connection entry or persistence template refers to it) and it has been
// idle for TrashPeriod or the registry runs short. A freed slot is reused
// only after the workers have passed the freeing too (Holds, which the
// fragment path and lblcr check, turns false first). Until it is freed, Assign of the same
// key revives the same ID with its State, connections and statistics, as
// the kernel revives a dest from its trash (ip_vs_trash_get_dest).
//
// Workers report their progress through Epoch: a worker that read Epoch()
// = e between two batches holds no table published before epoch e. Reap
// takes the lowest such e over all workers.
type Registry struct {
	mu        sync.Mutex
	ids       map[Key]ID
	slots     []slot          // index = ID.Index(); entry 0 unused
	states    []State         // index = ID.Index(); entry 0 unused
	cur       []atomic.Uint32 // index = ID.Index(): the ID the slot holds, 0 when none
	next      int             // first slot never used
	free      []int           // freed slots, oldest first
	published []ID            // the IDs of the last Publish
	pending   []ID            // assigned since the last Publish
	retired   []ref           // waiting for the workers and their counts
	idle      []ref           // the trash, oldest first
	dying     []ref           // freed, waiting for the workers; epoch order
	epoch     atomic.Uint64
	lowWater  int // fewer free slots than this: the trash is emptied early
	short     int // Assigns that found no free slot since the last Publish: freed early too

	reapMu sync.Mutex // serialises Reap, so that its release calls end before the next one frees
}

// NewRegistry returns a registry for at most n real servers at once
// (1 <= n <= MaxServers).
func NewRegistry(n int) *Registry {
	if n < 1 || n > MaxServers {
		panic(fmt.Sprintf("dest: registry of %d servers, want 1..%d", n, MaxServers))
	}
	r := &Registry{
		ids:      make(map[Key]ID),
		slots:    make([]slot, n+1),
		states:   make([]State, n+1),
		cur:      make([]atomic.Uint32, n+1),
		next:     1,
		lowWater: max(1, n/8),
	}
	r.epoch.Store(1)
	return r
}

// Lookup returns the ID of real server k, if it has one. It is for code
// that only reads (listings, statistics, metrics); it never assigns.
func (r *Registry) Lookup(k Key) (ID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.ids[k]
	return id, ok
}

// Assign returns the ID of real server k for a table being compiled: the ID
// k already has, revived if k was out of the table, or a new one. It fails
// only when every ID is in use.
func (r *Registry) Assign(k Key) (ID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[k]; ok {
		s := &r.slots[id.Index()]
		if s.phase != phaseLive {
			r.setPhase(s, phaseLive)
			r.pending = append(r.pending, id)
		}
		return id, nil
	}
	var i int
	switch {
	case len(r.free) > 0:
		i = r.free[0]
		r.free = r.free[1:]
	case r.next < len(r.slots):
		i = r.next
		r.next++
	default:
		r.short++
		if len(r.idle)+len(r.dying) > 0 {
			return 0, fmt.Errorf("real server registry full (%d servers; unreferenced ones are being freed, try again)", len(r.slots)-1)
		}
		return 0, fmt.Errorf("real server registry full (%d servers)", len(r.slots)-1)
	}
	s := &r.slots[i]
	if s.id == 0 {
		s.id = ID(i) // generation 0
	}
	s.key = k
	r.setPhase(s, phaseLive)
	r.ids[k] = s.id
	r.cur[i].Store(uint32(s.id))
	r.pending = append(r.pending, s.id)
	return s.id, nil
}

func (r *Registry) setPhase(s *slot, p phase) {
	s.phase = p
	s.turn++
}

// Publish tells the registry that the table naming exactly ids is now the
// one the workers load: every ID assigned before and not in ids is retired
// at a new epoch. The caller swaps the table in first.
func (r *Registry) Publish(ids []ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.epoch.Add(1)
	in := make(map[ID]bool, len(ids))
	for _, id := range ids {
		in[id] = true
	}
	retire := func(id ID) {
		s := &r.slots[id.Index()]
		if in[id] || s.id != id || s.phase != phaseLive {
			return
		}
		r.setPhase(s, phaseRetired)
		s.stamp = e
		r.retired = append(r.retired, ref{id.Index(), s.turn})
	}
	for _, id := range r.published {
		retire(id)
	}
	for _, id := range r.pending {
		retire(id)
	}
	r.published = append(r.published[:0], ids...)
	r.pending = r.pending[:0]
	r.short = 0
}

// Epoch returns the current epoch. A packet worker reads it between
// batches, after it finished with the table it held (see Registry).
func (r *Registry) Epoch() uint64 { return r.epoch.Load() }

// Reap frees what can be freed, given that every packet worker has read
// Epoch() = seen or later between two batches, at time now. release is
// called, outside the registry's lock, for each ID that stops naming its
// server, before its slot can be reused: the caller drops what it keeps by
// ID. Reap returns the number of IDs released.
func (r *Registry) Reap(seen uint64, now time.Time, release func(ID, *State)) int {
	r.reapMu.Lock()
	defer r.reapMu.Unlock()
	var gone []ID
	r.mu.Lock()
	// Freed at an earlier Reap, and no worker can still act on the old
	// ID: the slot is free.
	n := 0
	for ; n < len(r.dying); n++ {
		q := r.dying[n]
		s := &r.slots[q.index]
		if s.turn != q.turn {
			continue
		}
		if s.stamp > seen {
			break
		}
		r.states[q.index].reset()
		r.setPhase(s, phaseFree)
		r.free = append(r.free, q.index)
	}
	r.dying = r.dying[n:]
	// Out of the table since an epoch every worker has passed, and no
	// entry refers to it: into the trash.
	keep := r.retired[:0]
	for _, q := range r.retired {
		s := &r.slots[q.index]
		if s.turn != q.turn {
			continue
		}
		st := &r.states[q.index]
		if s.stamp > seen || st.Active.Load() != 0 || st.Inactive.Load() != 0 || st.Persist.Load() != 0 {
			keep = append(keep, q)
			continue
		}
		r.setPhase(s, phaseIdle)
		s.since = now
		r.idle = append(r.idle, ref{q.index, s.turn})
	}
	clear(r.retired[len(keep):])
	r.retired = keep
	// Out of the trash: idle for TrashPeriod, or the registry is short.
	var e uint64
	n = 0
	for ; n < len(r.idle); n++ {
		q := r.idle[n]
		s := &r.slots[q.index]
		if s.turn != q.turn {
			continue
		}
		if now.Sub(s.since) < TrashPeriod && len(r.free)+len(r.slots)-r.next+len(r.dying) >= r.lowWater+r.short {
			break
		}
		if e == 0 {
			e = r.epoch.Add(1)
		}
		gone = append(gone, s.id)
		delete(r.ids, s.key)
		r.cur[q.index].Store(0)
		s.id += 1 << indexBits // the next generation; it wraps to 0
		r.setPhase(s, phaseDying)
		s.stamp = e
		r.dying = append(r.dying, ref{q.index, s.turn})
	}
	r.idle = r.idle[n:]
	r.mu.Unlock()
	for _, id := range gone {
		release(id, &r.states[id.Index()])
	}
	return len(gone)
}

// Holds reports whether id still names the server it was assigned to. It
// does not lock or allocate: the packet path checks an ID it kept without
// a reference (a fragment's) before using it.
func (r *Registry) Holds(id ID) bool {
	i := id.Index()
	return i < len(r.cur) && r.cur[i].Load() == uint32(id)
}

// Key returns the real server that id names, or the zero Key when id names
// none any more.
func (r *Registry) Key(id ID) Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := id.Index(); i < len(r.slots) && r.slots[i].id == id && r.slots[i].phase != phaseFree && r.slots[i].phase != phaseDying {
		return r.slots[i].key
	}
	return Key{}
}

// Len returns the number of IDs that name a server: live, retired or in
// the trash.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// State returns the live state of id. It does not lock or allocate. The
// State is id's while id is held: the caller holds id through a table or a
// counted entry.
func (r *Registry) State(id ID) *State { return &r.states[id.Index()] }

// Cap returns the most real servers the registry holds at once: the
// largest Index of any ID it hands out.
func (r *Registry) Cap() int { return len(r.states) - 1 }
