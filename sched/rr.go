package sched

import (
	"sync/atomic"

	"github.com/udr-lb/udr/dest"
)

// RoundRobin is the rr scheduler (net/netfilter/ipvs/ip_vs_rr.c).
//
// It keeps a position in the server list, initially the list head. A pick
// walks forward from the entry after the position, wrapping once, and
// takes the first server that is neither quiesced nor overloaded; the
// position stays on it. The server under the position is checked last.
// With servers A then B added (list [B, A]) the sequence is B, A, B, A, …
type RoundRobin struct {
	servers []Server
	// pos is the index of the last server picked, or -1 for the list head
	// (svc->sched_data). It is atomic so that Pick can run concurrently and
	// New can read it while the old scheduler is still in use.
	pos atomic.Int32
}

// newRoundRobin builds rr over servers. With prev it reproduces the kernel,
// which keeps the position across add_dest and upd_dest (rr has no hook
// for them) and moves it to the previous entry in del_dest when it was on
// the deleted server (ip_vs_rr_del_dest).
func newRoundRobin(servers []Server, prev *RoundRobin) *RoundRobin {
	r := &RoundRobin{servers: servers}
	r.pos.Store(-1)
	if prev == nil {
		return r
	}
	// Walk back from prev's position to the first server that is still in
	// the list: the same one after -a or -e, the one before it after -d.
	for i := int(prev.pos.Load()); i >= 0 && i < len(prev.servers); i-- {
		if j := indexOf(servers, prev.servers[i].ID); j >= 0 {
			r.pos.Store(int32(j))
			break
		}
	}
	return r
}

// Pick implements Scheduler.
func (r *RoundRobin) Pick(Flow) int {
	n := len(r.servers)
	for {
		p := int(r.pos.Load())
		// From the head one pass covers the list; from an entry, the
		// entries after it, then the head up to and including it.
		next := -1
		for k := 1; k <= n; k++ {
			i := p + k
			if p < 0 {
				i = k - 1
			} else if i >= n {
				i -= n
			}
			if usable(&r.servers[i]) {
				next = i
				break
			}
		}
		if next < 0 {
			return -1
		}
		if r.pos.CompareAndSwap(int32(p), int32(next)) {
			return next
		}
	}
}

// indexOf returns the index of the server with the given ID, or -1.
func indexOf(servers []Server, id dest.ID) int {
	for i := range servers {
		if servers[i].ID == id {
			return i
		}
	}
	return -1
}
