package sched

import "github.com/udr-lb/udr/dest"

// lblcrSetMax bounds an lblcr server set. The kernel's sets are unbounded
// lists; udr keeps each in its cache entry, and when a ninth server joins
// a set, its oldest member leaves first.
const lblcrSetMax = 8

// LocalityLeastConnReplicated is the lblcr scheduler
// (net/netfilter/ipvs/ip_vs_lblcr.c): lblc with a set of servers per
// destination address instead of one.
//
// On a hit the entry's last use becomes now and the set's least loaded
// member (wlc rule over the members still in the service) is the
// candidate. If the set has several members and has not changed for
// CacheExpiration, its most loaded member is dropped. The candidate is
// returned unless missing or overloaded in lblc's sense; then wlc picks
// over the whole service and the pick joins the set. A miss creates the
// entry with wlc's pick. Cache ageing is lblc's.
type LocalityLeastConnReplicated struct {
	servers    []Server
	expiration uint32
	cache      *cache[destSet]
}

// destSet is ip_vs_dest_set: members by ID, the most recently added first
// (list_add_rcu at the head), and when the set last changed.
type destSet struct {
	n       uint8
	lastmod uint32
	ids     [lblcrSetMax]dest.ID
}

func newLocalityLeastConnReplicated(servers []Server, prev *LocalityLeastConnReplicated, opts Options) *LocalityLeastConnReplicated {
	l := &LocalityLeastConnReplicated{servers: servers, expiration: expiration(opts)}
	if prev != nil {
		l.cache = prev.cache
	} else {
		l.cache = newCache[destSet]()
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
			e.val.insert(l.servers[i].ID, fl.Now)
		}
		return i
	}

	e.lastuse = fl.Now
	set := &e.val
	i := l.setMin(set)
	if set.n > 1 && before(set.lastmod+l.expiration, fl.Now) {
		if m := l.setMax(set); m >= 0 {
			set.erase(l.servers[m].ID, fl.Now)
		}
	}
	if i >= 0 && !l.servers[i].State.NoNeighbor.Load() && !localityOverloaded(l.servers, i) {
		return i
	}
	if i = weightedLeast(l.servers, overhead); i < 0 {
		return -1
	}
	set.insert(l.servers[i].ID, fl.Now)
	return i
}

// setMin is ip_vs_dest_set_min: the first member in the service that is
// usable, then any later one that is not overloaded and has a smaller
// overhead/weight. It returns a server index or -1.
func (l *LocalityLeastConnReplicated) setMin(set *destSet) int {
	least := -1
	var loh int64
	for k := range int(set.n) {
		i := indexOf(l.servers, set.ids[k])
		if i < 0 {
			continue // no longer in the service: not IP_VS_DEST_F_AVAILABLE
		}
		s := &l.servers[i]
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
// overhead/weight among those with a positive weight. The kernel also
// weighs members deleted from the service (still in its trash); udr no
// longer knows their weight and leaves them out.
func (l *LocalityLeastConnReplicated) setMax(set *destSet) int {
	most := -1
	var moh int64
	for k := range int(set.n) {
		i := indexOf(l.servers, set.ids[k])
		if i < 0 || l.servers[i].Weight <= 0 {
			continue
		}
		s := &l.servers[i]
		doh := overhead(s)
		if most < 0 || moh*int64(s.Weight) < doh*int64(l.servers[most].Weight) {
			most, moh = i, doh
		}
	}
	return most
}

// insert is ip_vs_dest_set_insert with check: a server already in the set
// changes nothing; a new one goes first and marks the set modified.
func (s *destSet) insert(id dest.ID, now uint32) {
	for k := range int(s.n) {
		if s.ids[k] == id {
			return
		}
	}
	if s.n < lblcrSetMax {
		s.n++
	}
	copy(s.ids[1:s.n], s.ids[:s.n-1])
	s.ids[0] = id
	s.lastmod = now
}

// erase is ip_vs_dest_set_erase.
func (s *destSet) erase(id dest.ID, now uint32) {
	for k := range int(s.n) {
		if s.ids[k] == id {
			copy(s.ids[k:s.n-1], s.ids[k+1:s.n])
			s.n--
			s.ids[s.n] = 0
			s.lastmod = now
			return
		}
	}
}
