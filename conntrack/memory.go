package conntrack

import "unsafe"

// slotsFor is the number of slots of a table for capacity entries: at
// most 7/8 of the slots are ever used, so that probes stay short, and the
// mapping from hash to slot (fastrange) needs no power of two.
func slotsFor(capacity int) int { return capacity + (capacity+6)/7 }

// Memory returns the bytes that New allocates for a table of capacity
// entries, all at once and for the table's life: its slots and its timing
// wheel. It lets a caller check a capacity against the machine's memory
// before asking for it.
func Memory(capacity int) uint64 {
	if capacity < 1 {
		return 0
	}
	nslots := uint64(slotsFor(capacity))
	nblocks := (nslots + blockSlots - 1) / blockSlots
	return nslots*uint64(unsafe.Sizeof(slot{})) +
		nblocks*uint64(unsafe.Sizeof(block{})+unsafe.Sizeof(int32(0))) + // blocks and the due list
		uint64(unsafe.Sizeof(Table{}))
}
