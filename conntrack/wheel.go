package conntrack

import "math/bits"

// The table's timers: a hashed timing wheel over blocks of slots.
//
// The slots are cut into blocks of blockSlots. Each block that holds an
// entry keeps a lower bound of its entries' expiry times (min) and is
// filed in the wheel bucket of that tick (min mod wheelSize), on an
// intrusive doubly-linked list of block indices. Whatever writes an
// expiry that may be below its block's bound lowers the bound and
// re-files the block (lower): an insert, a packet that moves a connection
// to a state with a shorter timeout, an entry that backward-shift deletion
// moves into another block. Raising an expiry (the common case: a packet
// restarts the timer) leaves the bound as it is, so that the packet path
// pays one compare. When the wheel reaches a block's tick, Sweep scans the
// block: it expires the entries whose timer has fired, computes the exact
// bound of those left and files the block again. A block is scanned at
// most once per expiry or per timer restart that happened since its last
// scan, so the cost is O(blockSlots) per expiry or packet, amortised; a
// block whose bound lies a wheel round or more ahead stays in its bucket
// and costs one compare per round.
//
// The wheel adds 16 bytes per block and 16 KiB per table: a fifth of a
// byte per entry at 1M entries.
const (
	blockShift = 6
	blockSlots = 1 << blockShift
	wheelBits  = 12
	wheelSize  = 1 << wheelBits // ticks per round: 40.96 s at 100 ticks a second
	wheelMask  = wheelSize - 1

	noBlock  = -1 // end of a bucket list
	unfiled  = -2 // block.prev of a block in no bucket
	listHead = -3 // block.prev of the first block of a bucket
)

// block is the timer state of blockSlots slots.
type block struct {
	// min is at most the expiry of every entry of the block, when the
	// block is filed.
	min uint32
	// next and prev link the block into bucket (that of min, or of the
	// wheel's next tick when min was already past); prev is unfiled for a
	// block in no bucket and listHead for the first of its bucket.
	next, prev int32
	bucket     uint32
}

// wheel is the timing wheel of a Table (see above).
type wheel struct {
	blocks  []block
	head    [wheelSize]int32
	used    [wheelSize / 64]uint64 // bit b set: bucket b is not empty
	cursor  uint32                 // every tick up to cursor has been run
	started bool                   // Sweep ran once: cursor is meaningful
	due     []int32                // scratch: the due blocks of one bucket
}

func (w *wheel) init(nslots int) {
	n := (nslots + blockSlots - 1) / blockSlots
	w.blocks = make([]block, n)
	for i := range w.blocks {
		w.blocks[i] = block{next: noBlock, prev: unfiled}
	}
	for i := range w.head {
		w.head[i] = noBlock
	}
	w.due = make([]int32, 0, n)
}

// file puts block b, which is in no bucket, into the bucket of tick min,
// or of the wheel's next tick if min is not after the cursor.
func (w *wheel) file(b int32, min uint32) {
	bl := &w.blocks[b]
	bl.min = min
	tick := min
	if w.started && int32(min-w.cursor) <= 0 {
		tick = w.cursor + 1
	}
	h := tick & wheelMask
	first := w.head[h]
	bl.next, bl.prev, bl.bucket = first, listHead, h
	if first != noBlock {
		w.blocks[first].prev = b
	}
	w.head[h] = b
	w.used[h>>6] |= 1 << (h & 63)
}

// unfile takes block b out of its bucket.
func (w *wheel) unfile(b int32) {
	bl := &w.blocks[b]
	if bl.prev == unfiled {
		return
	}
	if bl.next != noBlock {
		w.blocks[bl.next].prev = bl.prev
	}
	if bl.prev != listHead {
		w.blocks[bl.prev].next = bl.next
	} else {
		h := bl.bucket
		w.head[h] = bl.next
		if bl.next == noBlock {
			w.used[h>>6] &^= 1 << (h & 63)
		}
	}
	bl.next, bl.prev = noBlock, unfiled
}

// lower records that slot i now holds an entry expiring at expiry: its
// block's bound comes down to expiry if it was above. One compare when it
// was not, which is the packet path's case.
func (t *Table) lower(i int, expiry uint32) {
	if bl := &t.w.blocks[i>>blockShift]; bl.prev == unfiled || int32(expiry-bl.min) < 0 {
		t.w.refile(int32(i>>blockShift), expiry)
	}
}

// refile files block b again under bound min.
func (w *wheel) refile(b int32, min uint32) {
	w.unfile(b)
	w.file(b, min)
}

// nextUsed returns how many ticks from tick from the next non-empty bucket
// is (0 for from's own), and false if every bucket is empty.
func (w *wheel) nextUsed(from uint32) (uint32, bool) {
	h := from & wheelMask
	wi, bit := h>>6, h&63
	if word := w.used[wi] >> bit; word != 0 {
		return uint32(bits.TrailingZeros64(word)), true
	}
	d := 64 - bit
	for k := uint32(1); k <= uint32(len(w.used)); k++ {
		word := w.used[(wi+k)%uint32(len(w.used))]
		if k == uint32(len(w.used)) {
			word &= 1<<bit - 1
		}
		if word != 0 {
			return d + uint32(bits.TrailingZeros64(word)), true
		}
		d += 64
	}
	return 0, false
}

// NextDue returns the earliest tick at which Sweep may have an entry to
// expire, and false when the table is empty. A tick not after the last
// Sweep's now means Sweep is behind (its budget ran out): call it again
// at once. The tick may come early, never late; the owner of the table
// sleeps until then at most. With checks 0 it is the next tick whose
// bucket holds a block, however far ahead that block's bound is (the
// cheapest answer); with checks > 0 NextDue looks at up to that many
// blocks to pass over buckets whose blocks all lie a wheel round or more
// ahead, so that an idle owner wakes less often in vain. It comes early
// also for a block whose entries were refreshed since it was filed.
func (t *Table) NextDue(checks int) (uint32, bool) {
	w := &t.w
	if !w.started {
		if t.n == 0 {
			return 0, false
		}
		// No Sweep yet: the earliest bound of all.
		var min uint32
		found := false
		for i := range w.blocks {
			if bl := &w.blocks[i]; bl.prev != unfiled && (!found || int32(bl.min-min) < 0) {
				min, found = bl.min, true
			}
		}
		return min, found
	}
	from := w.cursor + 1
	for {
		d, ok := w.nextUsed(from)
		if !ok {
			return 0, false
		}
		tick := from + d
		for b := w.head[tick&wheelMask]; b != noBlock; b = w.blocks[b].next {
			if int32(w.blocks[b].min-tick) <= 0 || checks <= 0 {
				return tick, true
			}
			checks--
		}
		// Every block of this bucket is due a round or more later.
		from = tick + 1
	}
}

// Sweep runs the table's timers up to now: every entry whose timer has
// fired by now is expired, at most budget slots (rounded up to whole
// blocks of 64) being scanned. It returns how many entries it removed. The
// owner calls it before each batch of packets and whenever NextDue comes;
// if the budget runs out, NextDue is at most now and the next call goes
// on where this one stopped.
func (t *Table) Sweep(now uint32, budget int) (expired int) {
	if now != t.def.tick {
		t.defend(now)
	}
	before := t.stats.Expired
	blocks := budget / blockSlots
	if budget%blockSlots != 0 {
		blocks++
	}
	w := &t.w
	if !w.started {
		// Every bucket may hold due blocks: go round once.
		w.started = true
		w.cursor = now - wheelSize
	}
	if int32(now-w.cursor) > wheelSize {
		// Idle for more than a round: one round finds every due block,
		// since a bucket runs every block whose bound is not after now.
		w.cursor = now - wheelSize
	}
	for blocks > 0 && int32(now-w.cursor) > 0 {
		d, ok := w.nextUsed(w.cursor + 1)
		if !ok || int32(now-(w.cursor+1+d)) < 0 {
			w.cursor = now
			break
		}
		tick := w.cursor + 1 + d
		w.cursor = tick - 1 // file puts blocks already due at tick
		if !t.runBucket(tick&wheelMask, now, &blocks) {
			break // out of budget: tick runs again next time
		}
		w.cursor = tick
	}
	return int(t.stats.Expired - before)
}

// runBucket scans the blocks of bucket h whose bound is not after now,
// until none is left or the budget is spent, and reports whether none is
// left. Scanning a block may file others (entries moved by deletion),
// into this bucket too: it is looked at again until it has nothing due.
func (t *Table) runBucket(h uint32, now uint32, budget *int) bool {
	w := &t.w
	for {
		due := w.due[:0]
		for b := w.head[h]; b != noBlock && len(due) < *budget; b = w.blocks[b].next {
			if int32(w.blocks[b].min-now) <= 0 {
				due = append(due, b)
			}
		}
		if len(due) == 0 {
			return true
		}
		for _, b := range due {
			w.unfile(b)
		}
		for _, b := range due {
			t.scanBlock(b, now)
			*budget--
		}
		if *budget <= 0 {
			// Done if nothing due is left.
			for b := w.head[h]; b != noBlock; b = w.blocks[b].next {
				if int32(w.blocks[b].min-now) <= 0 {
					return false
				}
			}
			return true
		}
	}
}

// scanBlock expires the entries of block b whose timer has fired by now
// and files the block again under the earliest expiry left.
func (t *Table) scanBlock(b int32, now uint32) {
	lo := int(b) << blockShift
	hi := min(lo+blockSlots, len(t.slots))
	var least uint32
	left := false
	for i := lo; i < hi; {
		s := &t.slots[i]
		if s.empty() {
			i++
			continue
		}
		if s.expired(now) && t.expire(i, now) {
			continue // a later entry may have shifted into slot i
		}
		if !left || int32(s.expiry-least) < 0 {
			least, left = s.expiry, true
		}
		i++
	}
	// Deletion may have filed the block again meanwhile (an entry moved
	// into it); least covers that entry too.
	t.w.unfile(b)
	if left {
		t.w.file(b, least)
	}
}
