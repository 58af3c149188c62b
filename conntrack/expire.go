package conntrack

import "math"

// expire runs the timer of the entry in slot i, which has fired by now,
// and reports whether the entry was removed (ip_vs_conn_expire). A
// template that still controls connections is re-armed instead: its timer
// fires again every 60 s after its expiry until the next one after now,
// and its timeout stays 60 s from then on. A later expiry needs no new
// wheel filing: the block's bound stays below it.
func (t *Table) expire(i int, now uint32) bool {
	s := &t.slots[i]
	if s.isTemplate() && s.controlled > 0 {
		late := now - s.expiry
		s.expiry += t.rearm * (late/t.rearm + 1)
		s.flags |= FlagRearmed
		if t.sync.on {
			t.sync.noteRearmed(s)
		}
		return false
	}
	t.remove(i, now, false)
	t.stats.Expired++
	return true
}

// evictWindow is how many slots from a new key's home an insert into a
// full table looks at for an entry to expire or evict.
const evictWindow = 64

// makeRoom frees one entry for k in a full table and reports whether it
// did. It first expires every entry of the window whose timer has fired,
// and, while a defence is on, drops those past their idle limit
// (droppable); if none went, it evicts the best victim of the window
// (evictClass, then the most idle or the closest to expiry).
func (t *Table) makeRoom(k *Key, now uint32) bool {
	start := t.home(k)
	defending := t.defending()
	for i, seen := start, 0; seen < evictWindow; seen++ {
		s := &t.slots[i]
		if !s.empty() {
			if s.expired(now) && t.expire(i, now) {
				continue // look at the entry that shifted in
			}
			if defending && t.droppable(s, now) {
				t.remove(i, now, true)
				t.stats.Dropped++
				continue
			}
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	if t.n < t.capacity {
		return true
	}
	victim, bestClass, bestScore := -1, numClasses, int64(math.MinInt64)
	for i, seen := start, 0; seen < evictWindow; seen++ {
		if s := &t.slots[i]; !s.empty() {
			c, score := t.evictClass(s, now)
			if c < numClasses && (c < bestClass || c == bestClass && score > bestScore) {
				victim, bestClass, bestScore = i, c, score
			}
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	if victim < 0 {
		return false
	}
	// drop_entry removes with ip_vs_conn_del: the victim's template goes
	// too if that leaves it unused and not ASSURED.
	t.remove(victim, now, true)
	t.stats.Evicted++
	return true
}

// Eviction classes, best victim first (doc.go, "Full table"): what the
// table has seen of an entry decides, not its state's timeout, which a
// client sets with two packets.
const (
	classUnassured   = iota // templates never ASSURED; the closest to expiry first
	classFewPackets         // unconfirmed connections with one or two packets or closing; the most idle first, one packet's idle counting twice
	classUnconfirmed        // other unconfirmed connections; the most idle first
	classConfirmed          // confirmed connections, ASSURED templates; the closest to expiry first
	numClasses              // never evicted: templates controlling connections
)

// evictClass returns the eviction class of s and its score in the class:
// the higher, the better a victim.
func (t *Table) evictClass(s *slot, now uint32) (int, int64) {
	left := int64(int32(s.expiry - now))
	if s.isTemplate() {
		switch {
		case s.controlled > 0:
			return numClasses, 0
		case s.state != StateAssured:
			return classUnassured, -left
		}
		return classConfirmed, -left
	}
	ev := s.controlled
	switch {
	case ev&evConfirmed != 0:
		return classConfirmed, -left
	case s.state.closing():
		// Over, or nearly: whatever it saw, it ranks with the
		// one- and two-packet entries, by its idle time.
		return classFewPackets, t.idle(s, now)
	case evPacketsOf(ev) == 1:
		// One packet: its idle time counts twice, so that a second
		// packet (a handshake's ACK) buys a connection as long again.
		return classFewPackets, 2 * t.idle(s, now)
	case evPacketsOf(ev) < 3:
		return classFewPackets, t.idle(s, now)
	}
	return classUnconfirmed, t.idle(s, now)
}

// closing reports whether TCP state s is one a connection reaches after a
// FIN or a RST (or a packet with none of SYN, FIN, ACK, RST).
func (s State) closing() bool {
	switch s {
	case StateFinWait, StateTimeWait, StateClose, StateCloseWait, StateLastAck:
		return true
	}
	return false
}
