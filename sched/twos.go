package sched

import "sync/atomic"

// TwoChoices is the twos scheduler, power of two choices
// (net/netfilter/ipvs/ip_vs_twos.c; Mitzenmacher, Richa and Sitaraman,
// "The Power of Two Random Choices: A Survey of Techniques and Results").
//
// With total the sum of the usable servers' weights, it draws r1 and r2
// uniformly in 0..total, walks the usable servers subtracting each weight
// from both, and takes as choice1 (choice2) the first server where r1 (r2)
// reaches 0 or less. choice2 wins when weight2×overhead1 >
// weight1×overhead2, else choice1. The kernel draws from
// get_random_u32_below; udr draws from Options.Rand with the same
// rejection method, so replays with a seeded source repeat.
type TwoChoices struct {
	servers []Server
	rand    func() uint32
}

// newTwoChoices builds twos over servers. The kernel's random source has
// no per-service state, so a scheduler built from prev (-a, -d, -e) goes on
// drawing from prev's source instead of starting the default sequence again.
func newTwoChoices(servers []Server, prev *TwoChoices, opts Options) *TwoChoices {
	r := opts.Rand
	switch {
	case r != nil:
	case prev != nil:
		r = prev.rand
	default:
		r = newSplitMix(0x75647220_74776f73) // "udr twos"
	}
	return &TwoChoices{servers: servers, rand: r}
}

// Pick implements Scheduler.
func (t *TwoChoices) Pick(Flow) int {
	var total uint32
	for i := range t.servers {
		if s := &t.servers[i]; usable(s) {
			total += uint32(s.Weight)
		}
	}
	if total == 0 {
		return -1
	}
	// Inclusive of total, as the kernel's comment says.
	r1 := int64(t.below(total + 1))
	r2 := int64(t.below(total + 1))

	c1, c2 := -1, -1
	var w1, w2, oh1, oh2 int64
	for i := range t.servers {
		s := &t.servers[i]
		if !usable(s) {
			continue
		}
		w := int64(s.Weight)
		r1 -= w
		r2 -= w
		if r1 <= 0 && c1 < 0 {
			c1, w1, oh1 = i, w, overhead(s)
		}
		if r2 <= 0 && c2 < 0 {
			c2, w2, oh2 = i, w, overhead(s)
		}
		if c1 >= 0 && c2 >= 0 {
			break
		}
	}
	// The products are int in the kernel; int64 here cannot overflow.
	if w2*oh1 > w1*oh2 {
		return c2
	}
	return c1
}

// below is the kernel's __get_random_u32_below: a uniform value in
// [0, ceil) by multiply-and-shift, rejecting the biased low products
// (Lemire, "Fast random integer generation in an interval", 2019).
func (t *TwoChoices) below(ceil uint32) uint32 {
	mult := uint64(ceil) * uint64(t.rand())
	if uint32(mult) < ceil {
		bound := -ceil % ceil
		for uint32(mult) < bound {
			mult = uint64(ceil) * uint64(t.rand())
		}
	}
	return uint32(mult >> 32)
}

// newSplitMix returns SplitMix64 (Steele, Lea and Flood, OOPSLA 2014) over
// an atomic counter: a fixed seed gives a repeatable sequence, and
// concurrent callers each get a distinct value without a lock.
func newSplitMix(seed uint64) func() uint32 {
	var state atomic.Uint64
	state.Store(seed)
	return func() uint32 {
		z := state.Add(0x9e3779b97f4a7c15)
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return uint32((z ^ z>>31) >> 32)
	}
}
