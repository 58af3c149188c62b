package sched

// WeightedFailover is the fo scheduler (net/netfilter/ipvs/ip_vs_fo.c): the
// server with the highest weight that is not overloaded. A server must beat
// the best weight so far, which starts at 0, so a quiesced server never
// wins and ties go to the first in list order (the most recently added).
type WeightedFailover struct{ servers []Server }

// Pick implements Scheduler.
func (f *WeightedFailover) Pick(Flow) int {
	best, hw := -1, int32(0)
	for i := range f.servers {
		s := &f.servers[i]
		if !s.State.Skip() && s.Weight > hw {
			best, hw = i, s.Weight
		}
	}
	return best
}

// WeightedOverflow is the ovf scheduler (ip_vs_ovf.c): like fo, but a
// server whose active connections exceed its weight is skipped too, so the
// heaviest server fills up to its weight and new connections then overflow
// to the next. Only active connections count, so it does not suit UDP.
type WeightedOverflow struct{ servers []Server }

// Pick implements Scheduler.
func (f *WeightedOverflow) Pick(Flow) int {
	best, hw := -1, int32(0)
	for i := range f.servers {
		s := &f.servers[i]
		w := s.Weight
		if s.State.Skip() || s.State.Active.Load() > w || w == 0 {
			continue
		}
		if best < 0 || w > hw {
			best, hw = i, w
		}
	}
	return best
}
