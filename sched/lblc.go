package sched

import "github.com/udr-lb/udr/dest"

// LocalityLeastConn is the lblc scheduler (net/netfilter/ipvs/ip_vs_lblc.c),
// locality-based least connection: a cache maps each destination address
// (Flow.Dst, the address a cache cluster is asked for) to the server it
// was last sent to.
//
// On a hit the entry's last use becomes now and its server is returned if
// it is still in the service, not quiesced, and not "overloaded" in lblc's
// own sense: more active connections than its weight while some server
// has fewer than half its weight. The -x overload flag is not checked on
// a hit, as in the kernel. Otherwise wlc picks a server and the entry is
// created or repointed. Entries unused for CacheExpiration (24 h) go at the
// next full check, every 30 minutes from Options.Now, when the scheduler
// was bound to the service; a table over 16384 entries sheds those idle for
// 6 minutes every minute.
type LocalityLeastConn struct {
	servers    []Server
	expiration uint32
	cache      *cache[lblcEntry]
}

// lblcEntry is what lblc caches for a destination address: the server, by
// ID, so that the entry survives configuration changes.
type lblcEntry struct{ id dest.ID }

func newLocalityLeastConn(servers []Server, prev *LocalityLeastConn, opts Options) *LocalityLeastConn {
	l := &LocalityLeastConn{servers: servers, expiration: expiration(opts)}
	if prev != nil {
		l.cache = prev.cache
	} else {
		l.cache = newCache[lblcEntry](opts.Now)
	}
	return l
}

// Pick implements Scheduler.
func (l *LocalityLeastConn) Pick(fl Flow) int {
	c := l.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick(fl.Now, l.expiration)

	e := c.lookup(&fl.Dst)
	if e != nil {
		e.lastuse = fl.Now
		// As in the kernel, the cached server's -x overload flag is not
		// looked at, but a server udr cannot reach is not used.
		if i := indexOf(l.servers, e.val.id); i >= 0 && l.servers[i].Weight > 0 && !l.servers[i].State.NoNeighbor.Load() && !localityOverloaded(l.servers, i) {
			return i
		}
	}
	i := weightedLeast(l.servers, overhead)
	if i < 0 {
		return -1
	}
	if e == nil {
		// ip_vs_lblc_new; when the table is full the server is used
		// without an entry.
		if e = c.insert(&fl.Dst); e == nil {
			return i
		}
	}
	e.val.id, e.lastuse = l.servers[i].ID, fl.Now
	return i
}

// localityOverloaded is is_overloaded of lblc and lblcr: server i has more
// active connections than its weight and some server of the service has
// fewer than half of its own.
func localityOverloaded(servers []Server, i int) bool {
	if servers[i].State.Active.Load() <= servers[i].Weight {
		return false
	}
	for j := range servers {
		if servers[j].State.Active.Load()*2 < servers[j].Weight {
			return true
		}
	}
	return false
}

func expiration(opts Options) uint32 {
	if opts.CacheExpiration == 0 {
		return cacheDefaultExpiration
	}
	return opts.CacheExpiration
}
