package forwarder

import (
	"encoding/binary"
	"hash/fnv"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/handoff"
	"github.com/udr-lb/udr/sched"
)

// SaveState copies what a restart carries over (package handoff) from the
// pipelines' connection tables, at now: every live connection and
// persistence template with its real server and time left, the
// position of every rr and wrr scheduler of t, and the real servers' MACs. Invalidated templates
// (conntrack.Table.InvalidateTemplate), whose key names a server of this
// process only, stay behind. Call it once the workers have stopped: it
// reads the tables without them.
func SaveState(t *Table, ps []*Pipeline, now time.Time) *handoff.State {
	s := &handoff.State{Saved: now}
	for i := range t.services {
		cs := &t.services[i]
		p, ok := cs.sched.(sched.Positioner)
		if !ok {
			continue
		}
		s.Services = append(s.Services, handoff.Service{
			Proto:     uint8(cs.cfg.Proto),
			Addr:      cs.cfg.Addr,
			Port:      cs.cfg.Port,
			Scheduler: cs.cfg.Scheduler,
			Digest:    serversDigest(cs.servers),
			Position:  p.Position(),
		})
	}
	for _, a := range t.RealServers() {
		if mac, ok := ps[0].neigh.Lookup(a); ok {
			s.Neighbors = append(s.Neighbors, handoff.Neighbor{Addr: a, MAC: mac})
		}
	}
	var n int
	for _, p := range ps {
		n += p.Conns().Len()
	}
	s.Entries = make([]handoff.Entry, 0, n)
	index := make(map[dest.ID]uint32)
	for _, p := range ps {
		ct := p.Conns()
		ticks := p.Ticks(now)
		tick := time.Second / time.Duration(ct.TicksPerSecond())
		ct.Range(func(k conntrack.Key, e conntrack.Entry) bool {
			left := e.Expires(ticks)
			if left == 0 || k.Invalidated() {
				return true
			}
			di, ok := index[e.Dest]
			if !ok {
				key := p.reg.Key(e.Dest)
				if !key.Real.IsValid() {
					return true // its server is gone: nothing to bind it to
				}
				di = uint32(len(s.Dests))
				index[e.Dest] = di
				s.Dests = append(s.Dests, key)
			}
			s.Entries = append(s.Entries, handoff.Entry{
				Key: k, Dest: di, Left: time.Duration(left) * tick,
				State: e.State, Flags: e.Flags, Netmask: e.Netmask,
			})
			return true
		})
	}
	return s
}

// serversDigest identifies a scheduler's server list across processes: the
// servers' addresses, ports and weights, in order.
func serversDigest(servers []sched.Server) uint64 {
	h := fnv.New64a()
	var b [16 + 2 + 4]byte
	for _, s := range servers {
		a := s.Addr.As16()
		copy(b[:16], a[:])
		binary.BigEndian.PutUint16(b[16:], s.Port)
		binary.BigEndian.PutUint32(b[18:], uint32(s.Weight))
		h.Write(b[:])
	}
	return h.Sum64()
}

// LoadStats say what LoadState took over and what it dropped.
type LoadStats struct {
	// Taken entries are in a worker's table now.
	Taken int
	// NoServer entries were dropped because their service or real server
	// is not in the table; Expired ones ran out of time while no udr ran;
	// Refused ones did not fit (a full table, a duplicate key, an entry
	// no table holds).
	NoServer, Expired, Refused int
	// Positions of rr and wrr schedulers taken; PositionsDropped those
	// whose service is gone or has another scheduler or server list.
	Positions, PositionsDropped int
	// Neighbors are the real servers' MACs taken, for the servers of t
	// whose MAC was not known yet.
	Neighbors int
}

// Dropped returns the entries not taken.
func (l LoadStats) Dropped() int { return l.NoServer + l.Expired + l.Refused }

// LoadState takes over a state that a stopped udr saved (SaveState), at
// now, before the workers start: each connection and template whose
// service and real server are in t goes to the pipeline of the worker that
// the fanout program (prefixes v4, v6) hands its client's frames to
// (FanoutWorker), with its time left less the time since it was saved, and
// counted on its server as if its packets had come here; templates first,
// so that they count the connections they control. The rr and wrr
// positions of the services that still have the same scheduler over the
// same servers are taken too, and the MACs of t's real servers, so that
// they are forwarded to before they answer a probe (a later ARP or NDP
// answer, or the kernel's neighbour table, replaces one that changed).
// Everything else is dropped and counted.
func LoadState(t *Table, ps []*Pipeline, s *handoff.State, now time.Time, v4, v6 int) LoadStats {
	var st LoadStats
	for _, n := range s.Neighbors {
		if _, ok := t.rips[n.Addr.As16()]; !ok {
			continue
		}
		if _, known := ps[0].neigh.Lookup(n.Addr); !known && ps[0].neigh.Learn(n.Addr, n.MAC, NeighborState, now) {
			st.Neighbors++
		}
	}
	for _, sv := range s.Services {
		addr := sv.Addr.As16()
		i, ok := t.index.get(&addr, sv.Port, sv.Proto)
		if !ok {
			st.PositionsDropped++
			continue
		}
		cs := &t.services[i]
		p, ok := cs.sched.(sched.Positioner)
		if !ok || cs.cfg.Scheduler != sv.Scheduler || serversDigest(cs.servers) != sv.Digest || !p.SetPosition(sv.Position) {
			st.PositionsDropped++
			continue
		}
		st.Positions++
	}
	live := make(map[dest.ID]bool)
	for _, id := range t.DestIDs() {
		live[id] = true
	}
	reg := ps[0].reg
	ids := make([]dest.ID, len(s.Dests)) // 0: not in t
	for i, k := range s.Dests {
		if id, ok := reg.Lookup(k); ok && live[id] {
			ids[i] = id
		}
	}
	elapsed := max(now.Sub(s.Saved), 0)
	for _, templates := range []bool{true, false} {
		for i := range s.Entries {
			e := &s.Entries[i]
			if e.Key.Template != templates {
				continue
			}
			id := ids[e.Dest]
			switch {
			case id == 0 || e.Key.Invalidated():
				st.NoServer++
				continue
			case e.Left <= elapsed:
				st.Expired++
				continue
			}
			p := ps[FanoutWorker(e.Key.Client, v4, v6, len(ps))]
			ct := p.Conns()
			tick := time.Second / time.Duration(ct.TicksPerSecond())
			left := uint32(min((e.Left-elapsed+tick-1)/tick, 1<<31))
			ce := conntrack.Entry{Dest: id, State: e.State, Flags: e.Flags, Netmask: e.Netmask}
			if err := ct.Restore(e.Key, ce, left, p.Ticks(now)); err != nil {
				st.Refused++
				continue
			}
			st.Taken++
		}
	}
	return st
}
