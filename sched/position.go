package sched

// Positioner is a scheduler whose state is a position in its server list
// (rr, wrr), which a restart carries over (package handoff) so that the
// next udr goes on where the last one stopped. Schedulers that pick by
// hashing (sh, dh, mh) need nothing carried; those that pick by counts
// (lc, wlc, ...) find them in the restored connections.
type Positioner interface {
	// Position returns the scheduler's state.
	Position() uint64
	// SetPosition sets the state to one Position returned for a
	// scheduler over the same servers; it reports false, and changes
	// nothing, for a state this scheduler could not be in.
	SetPosition(pos uint64) bool
}

// Position implements Positioner: the rr index, -1 for the list head.
func (r *RoundRobin) Position() uint64 { return uint64(uint32(r.pos.Load())) }

// SetPosition implements Positioner.
func (r *RoundRobin) SetPosition(pos uint64) bool {
	p := int64(int32(uint32(pos)))
	if pos>>32 != 0 || p < -1 || p >= int64(len(r.servers)) {
		return false
	}
	r.pos.Store(int32(p))
	return true
}

// Position implements Positioner: cl and cw, packed.
func (w *WeightedRoundRobin) Position() uint64 { return w.state.Load() }

// SetPosition implements Positioner: cl must be -1 (the list head) or a
// server's index, and cw a current weight the walk reaches (mw, mw-di, ...
// down to above 0).
func (w *WeightedRoundRobin) SetPosition(pos uint64) bool {
	cl, cw := unpackWRR(pos)
	if cl < -1 || int(cl) >= len(w.servers) {
		return false
	}
	if w.mw == 0 {
		if cw != 0 {
			return false
		}
	} else if cw <= 0 || cw > w.mw || (w.mw-cw)%w.di != 0 {
		return false
	}
	w.state.Store(pos)
	return true
}
