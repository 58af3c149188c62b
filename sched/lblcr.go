package sched

import "github.com/udr-lb/udr/dest"

// setPoolSize is how many server set members an lblcr scheduler holds in
// all, over every cache entry. The kernel's sets are unbounded lists, one
// kmalloc per member; udr allocates its members once, with the cache, so
// that Pick never allocates. A single set may take any number of them;
// 65536 is 2.7 members per entry with the cache at its bound of 24576
// entries, far above what services of tens of servers need. Should the
// pool run out, a new member is not recorded, as when the kernel's
// GFP_ATOMIC allocation in ip_vs_dest_set_insert fails: the pick is still
// used. A member costs 24 bytes: 1.5 MB per lblcr service.
const setPoolSize = 1 << 16

// LocalityLeastConnReplicated is the lblcr scheduler
// (net/netfilter/ipvs/ip_vs_lblcr.c): lblc with a set of servers per
// destination address instead of one.
//
// On a hit the entry's last use becomes now and the set's least loaded
// member (wlc rule over the members still in the service) is the
// candidate. If the set has several members and has not changed for
// CacheExpiration, its most loaded member is dropped; a member deleted
// from the service still counts there, with its last weight and its
// remaining connections. The candidate is returned unless missing or
// overloaded in lblc's sense; then wlc picks over the whole service and
// the pick joins the set. A miss creates the entry with wlc's pick. Cache
// ageing is lblc's. Sets have no size limit but the pool's (setPoolSize).
type LocalityLeastConnReplicated struct {
	servers    []Server
	expiration uint32
	reg        *dest.Registry
	cache      *cache[destSet]
	pool       *setPool // guarded by cache.mu
}

// destSet is ip_vs_dest_set: a list of members in the pool, the most
// recently added first (list_add_rcu at the head), and when the set last
// changed. The zero value is the empty set.
type destSet struct {
	head    int32 // pool index of the first member; 0 for none
	n       int32
	lastmod uint32
}

// setElem is ip_vs_dest_set_elem. The kernel's element holds a reference
// to its dest, which keeps a deleted dest (and its counters) alive; udr
// keeps the server's State and the weight it had when last seen in the
// service, for the time after udr freed its ID.
type setElem struct {
	st     *dest.State
	id     dest.ID
	weight int32
	next   int32 // pool index of the next member; 0 ends the list
}

// setPool holds the members of every set of one cache. Index 0 is unused,
// so that 0 can end a list.
type setPool struct {
	elems []setElem
	free  int32 // first free element; 0 when the pool is exhausted
}

func newSetPool() *setPool {
	p := &setPool{elems: make([]setElem, setPoolSize+1)}
	for i := range setPoolSize {
		p.elems[i+1].next = int32(i + 2)
	}
	p.elems[setPoolSize].next = 0
	p.free = 1
	return p
}

// release returns every member of s to the pool (the entry goes).
func (p *setPool) release(s *destSet) {
	for i := s.head; i != 0; {
		next := p.elems[i].next
		p.elems[i] = setElem{next: p.free}
		p.free = i
		i = next
	}
	*s = destSet{}
}

func newLocalityLeastConnReplicated(servers []Server, prev *LocalityLeastConnReplicated, opts Options) *LocalityLeastConnReplicated {
	l := &LocalityLeastConnReplicated{servers: servers, expiration: expiration(opts), reg: opts.Registry}
	if prev != nil {
		l.cache, l.pool = prev.cache, prev.pool
	} else {
		l.pool = newSetPool()
		l.cache = newCache[destSet](opts.Now)
		l.cache.release = l.pool.release
	}
	return l
}

// Pick implements Scheduler.
func (l *LocalityLeastConnReplicated) Pick(fl Flow) int {
	c := l.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick(fl.Now, l.expiration)

	e := c.lookup(&fl.Dst)
	if e == nil {
		i := weightedLeast(l.servers, overhead)
		if i < 0 {
			return -1
		}
		if e = c.insert(&fl.Dst); e != nil { // ip_vs_lblcr_new
			e.lastuse = fl.Now
			l.insert(&e.val, &l.servers[i], fl.Now)
		}
		return i
	}

	e.lastuse = fl.Now
	set := &e.val
	i := l.setMin(set)
	if set.n > 1 && before(set.lastmod+l.expiration, fl.Now) {
		if m := l.setMax(set); m != 0 {
			l.erase(set, m, fl.Now)
		}
	}
	if i >= 0 && !l.servers[i].State.NoNeighbor.Load() && !localityOverloaded(l.servers, i) {
		return i
	}
	if i = weightedLeast(l.servers, overhead); i < 0 {
		return -1
	}
	l.insert(set, &l.servers[i], fl.Now)
	return i
}

// setMin is ip_vs_dest_set_min: the first member in the service that is
// usable, then any later one that is not overloaded and has a smaller
// overhead/weight. It returns a server index or -1. Members no longer in
// the service are not IP_VS_DEST_F_AVAILABLE: never chosen.
func (l *LocalityLeastConnReplicated) setMin(set *destSet) int {
	least := -1
	var loh int64
	for k := set.head; k != 0; k = l.pool.elems[k].next {
		el := &l.pool.elems[k]
		i := indexOf(l.servers, el.id)
		if i < 0 {
			continue
		}
		s := &l.servers[i]
		el.weight = s.Weight
		if least < 0 {
			if usable(s) {
				least, loh = i, overhead(s)
			}
			continue
		}
		if s.State.Skip() {
			continue
		}
		if doh := overhead(s); loh*int64(s.Weight) > doh*int64(l.servers[least].Weight) {
			least, loh = i, doh
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max: the member with the largest
// overhead/weight among those with a positive weight, members deleted
// from the service included. It returns the member's pool index, or 0.
func (l *LocalityLeastConnReplicated) setMax(set *destSet) int32 {
	var most int32
	var moh, mw int64
	for k := set.head; k != 0; k = l.pool.elems[k].next {
		w, doh := l.load(&l.pool.elems[k])
		if w <= 0 {
			continue
		}
		if most == 0 || moh*w < doh*mw {
			most, moh, mw = k, doh, w
		}
	}
	return most
}

// load returns a member's weight and overhead: the service's current
// values, or for a member deleted from the service those its dest keeps
// in the kernel's trash: the last weight, and the connections it still
// has (none once udr freed its ID, which it does only then).
func (l *LocalityLeastConnReplicated) load(el *setElem) (weight, oh int64) {
	if i := indexOf(l.servers, el.id); i >= 0 {
		s := &l.servers[i]
		el.weight = s.Weight
		return int64(s.Weight), overhead(s)
	}
	if l.reg != nil && !l.reg.Holds(el.id) {
		return int64(el.weight), 0
	}
	return int64(el.st.Weight.Load()), el.st.Overhead()
}

// insert is ip_vs_dest_set_insert with check: a server already in the set
// changes nothing; a new one goes first and marks the set modified. With
// the pool exhausted nothing changes.
func (l *LocalityLeastConnReplicated) insert(set *destSet, s *Server, now uint32) {
	for k := set.head; k != 0; k = l.pool.elems[k].next {
		if l.pool.elems[k].id == s.ID {
			return
		}
	}
	k := l.pool.free
	if k == 0 {
		return
	}
	l.pool.free = l.pool.elems[k].next
	l.pool.elems[k] = setElem{st: s.State, id: s.ID, weight: s.Weight, next: set.head}
	set.head = k
	set.n++
	set.lastmod = now
}

// erase is ip_vs_dest_set_erase of the member at pool index m.
func (l *LocalityLeastConnReplicated) erase(set *destSet, m int32, now uint32) {
	for p := &set.head; *p != 0; p = &l.pool.elems[*p].next {
		if *p == m {
			*p = l.pool.elems[m].next
			l.pool.elems[m] = setElem{next: l.pool.free}
			l.pool.free = m
			set.n--
			set.lastmod = now
			return
		}
	}
}
