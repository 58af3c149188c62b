package sched

import "sync/atomic"

// WeightedRoundRobin is the wrr scheduler (net/netfilter/ipvs/ip_vs_wrr.c).
//
// Its state is the kernel's ip_vs_wrr_mark: cl, the position in the list
// (initially the head), cw, the current weight, and, fixed per server
// list, di, the gcd of the positive weights, and mw, the maximum weight
// minus (di-1). A pick walks on from cl and takes the first server that is
// not overloaded and has weight >= cw; at the end of the list cw drops by
// di, wrapping to mw, and the walk goes on from the head.
//
// The kernel resets cl to the head and keeps cw across -a, -d and -e
// (ip_vs_wrr_dest_changed), so a service created empty and filled with -a
// starts with cw = 1 rather than mw: servers A w=2 then B w=1 give
// B A A B A A …, while the same list bound by init_service gives A B A A B A …
type WeightedRoundRobin struct {
	servers []Server
	di, mw  int32
	// state packs cl (high 32 bits, -1 = list head) and cw (low 32 bits).
	// The kernel updates them under svc->sched_lock; here Pick computes the
	// next state and publishes it with compare-and-swap.
	state atomic.Uint64
}

func newWeightedRoundRobin(servers []Server, prev *WeightedRoundRobin) *WeightedRoundRobin {
	w := &WeightedRoundRobin{servers: servers}
	var g, maxW int32 // ip_vs_wrr_gcd_weight, ip_vs_wrr_max_weight
	for i := range servers {
		if wt := servers[i].Weight; wt > 0 {
			g = gcd(g, wt)
			maxW = max(maxW, wt)
		}
	}
	w.di = max(g, 1)
	w.mw = maxW - (w.di - 1)
	cw := w.mw // ip_vs_wrr_init_svc
	if prev != nil {
		// ip_vs_wrr_dest_changed: cl = head, cw kept unless out of range.
		_, cw = unpackWRR(prev.state.Load())
		if cw > w.mw || cw == 0 {
			cw = w.mw
		} else if w.di > 1 {
			cw = (cw/w.di)*w.di + 1
		}
	}
	w.state.Store(packWRR(-1, cw))
	return w
}

// Pick implements Scheduler.
func (w *WeightedRoundRobin) Pick(Flow) int {
	if w.mw == 0 {
		return -1 // "no destination available"; the state stays as it is
	}
	for {
		old := w.state.Load()
		cl, cw := unpackWRR(old)
		i, cl, cw := w.schedule(cl, cw)
		if w.state.CompareAndSwap(old, packWRR(cl, cw)) {
			return int(i)
		}
	}
}

// schedule is ip_vs_wrr_schedule from the state (cl, cw): it returns the
// pick (or -1) and the new state. The stop/last-pass guard ends a walk in
// which every server was checked for weight >= 1 ("all destinations are
// overloaded"), leaving the state where the kernel leaves it.
func (w *WeightedRoundRobin) schedule(cl, cw int32) (pick, ncl, ncw int32) {
	n := int32(len(w.servers))
	last, stop := cl, int32(-2)
	lastPass, restarted := false, false
	i := cl
	for {
		for i++; i < n; i++ {
			s := &w.servers[i]
			if !s.State.Skip() && s.Weight >= cw {
				return i, i, cw
			}
			if i == stop {
				return -1, i, cw
			}
		}
		i = -1 // back at the list head
		cw -= w.di
		if cw <= 0 {
			cw = w.mw
			if lastPass || last == -1 {
				return -1, -1, cw
			}
			restarted = true
		}
		lastPass = cw <= w.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}

func packWRR(cl, cw int32) uint64 { return uint64(uint32(cl))<<32 | uint64(uint32(cw)) }

func unpackWRR(v uint64) (cl, cw int32) { return int32(uint32(v >> 32)), int32(uint32(v)) }

// gcd returns the greatest common divisor of a and b; gcd(0, b) = b.
func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
