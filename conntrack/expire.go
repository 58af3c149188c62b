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
// did. It first expires every entry of the window whose timer has fired;
// if none went, it evicts the best victim of the window (evictRank).
func (t *Table) makeRoom(k *Key, now uint32) bool {
	start := t.home(k)
	for i, seen := start, 0; seen < evictWindow; seen++ {
		s := &t.slots[i]
		if !s.empty() && s.expired(now) && t.expire(i, now) {
			continue // look at the entry that shifted in
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	if t.n < t.capacity {
		return true
	}
	victim, bestRank, bestLeft := -1, numRanks, int32(math.MaxInt32)
	for i, seen := start, 0; seen < evictWindow; seen++ {
		if s := &t.slots[i]; !s.empty() {
			r, left := evictRank(s), int32(s.expiry-now)
			if r < numRanks && (r < bestRank || r == bestRank && left < bestLeft) {
				victim, bestRank, bestLeft = i, r, left
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

// Eviction ranks, best victim first, after the kernel's drop_entry
// defence (ip_vs_random_dropentry): half-open connections and unassured
// templates go first, then closing connections, then the rest.
const (
	rankHalfOpen = iota // SYN_RECV, SYNACK; templates never ASSURED
	rankClosing         // NONE, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN
	rankLive            // ESTABLISHED, SYN_SENT, UDP; ASSURED templates
	numRanks            // never evicted: templates controlling connections
)

func evictRank(s *slot) int {
	if s.isTemplate() {
		switch {
		case s.controlled > 0:
			return numRanks
		case s.state != StateAssured:
			return rankHalfOpen
		}
		return rankLive
	}
	switch s.state {
	case StateSynRecv, StateSynAck:
		return rankHalfOpen
	case StateEstablished, StateSynSent, StateUDP:
		return rankLive
	}
	return rankClosing
}
