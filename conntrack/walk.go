package conntrack

// Listed is one entry as a listing copied it. The step copies the slot as
// it is (the cheapest copy: the worker waits for it); the lister decodes
// it.
type Listed struct {
	s   slot
	now uint32 // the table's clock when it was copied
	hz  uint32 // the table's ticks per second
}

// Key returns the entry's key.
func (l *Listed) Key() Key { return l.s.key() }

// Entry returns the entry's state.
func (l *Listed) Entry() Entry { return l.s.entry() }

// Expires returns the whole seconds the entry had left when it was copied
// (Table.SecondsLeft).
func (l *Listed) Expires() uint32 { return l.s.entry().Expires(l.now) / l.hz }

// TicksLeft returns the ticks the entry had left when it was copied, 0
// once its timer had fired.
func (l *Listed) TicksLeft() uint32 { return l.s.entry().Expires(l.now) }

// TicksPerSecond returns the rate of the clock of the table it was copied
// from.
func (l *Listed) TicksPerSecond() uint32 { return l.hz }

// Walk is the position of a listing that copies the table in steps, so
// that its owner (a forwarder worker) is never held up by more than one
// step. Its zero value starts a new walk.
//
// A walk is not a point-in-time snapshot: between steps the owner goes on
// inserting, updating and expiring entries. What it does guarantee comes
// from how entries move in this table. Linear probing puts an entry at or
// after its home slot, with no empty slot in between, and backward-shift
// deletion moves entries only back towards their home. So a walk that
// starts just after an empty slot, goes once around the table, and ends
// every step just after an empty slot, lists every entry that was in the
// table for the whole walk exactly once: none crosses the walk's position
// in either direction. Entries inserted or removed during the walk may or
// may not be listed (one inserted during the walk, rarely, twice), and
// each listed entry shows its state when its step copied it. (A cluster longer than a whole step cannot end the step on
// an empty slot; it ends the step where the budget ran out, and only then
// can an entry that moves back across that point be missed.)
type Walk struct {
	started bool
	pos     int // next slot to look at
	left    int // slots left to look at
}

// Step continues walk w: it appends up to cap(dst)-len(dst) entries to
// dst, looking at about maxSlots slots (more when no empty slot ends the
// step sooner), and returns dst and whether the walk is complete. It does
// not allocate when dst has room.
func (t *Table) Step(w *Walk, dst []Listed, maxSlots int, now uint32) ([]Listed, bool) {
	n := len(t.slots)
	if !w.started {
		// Start after an empty slot (there always is one): every entry
		// after it has its home after it too.
		e := 0
		for !t.slots[e].empty() {
			e++
		}
		w.started, w.pos, w.left = true, e+1, n-1
		if w.pos == n {
			w.pos = 0
		}
	}
	// The last point of this step after an empty slot: where the step
	// ends unless the walk is complete.
	var bPos, bLeft, bLen int
	sawEmpty := false
	// Past maxSlots the step goes on to the end of the cluster in
	// progress if it has seen no empty slot yet: clusters are short.
	for scanned := 0; w.left > 0 && (scanned < maxSlots || !sawEmpty); scanned++ {
		s := &t.slots[w.pos]
		if !s.empty() {
			if len(dst) == cap(dst) {
				break
			}
			dst = append(dst, Listed{s: *s, now: now, hz: t.hz})
		}
		if w.pos++; w.pos == n {
			w.pos = 0
		}
		w.left--
		if s.empty() {
			bPos, bLeft, bLen, sawEmpty = w.pos, w.left, len(dst), true
		}
	}
	if w.left == 0 {
		return dst, true
	}
	if sawEmpty {
		// Back to just after the last empty slot: the next step copies
		// the cluster in progress whole.
		w.pos, w.left, dst = bPos, bLeft, dst[:bLen]
	}
	return dst, false
}
