package conntrack

import (
	"math/rand/v2"
	"testing"
)

// walkAll runs a walk to its end with steps of at most maxSlots slots and
// chunk entries, calling between(step) after each step.
func walkAll(t *testing.T, tb *Table, maxSlots, chunk int, now uint32, between func(step int)) []Listed {
	t.Helper()
	var w Walk
	var all []Listed
	buf := make([]Listed, 0, chunk)
	for step := 0; ; step++ {
		if step > 10*len(tb.slots)+10 {
			t.Fatal("the walk does not end")
		}
		got, done := tb.Step(&w, buf[:0], maxSlots, now)
		all = append(all, got...)
		if done {
			return all
		}
		between(step)
	}
}

func TestWalkStatic(t *testing.T) {
	tb, _, ids := newTestTable(t, 1000, 1, Options{})
	for i := range 1000 {
		mustInsert(t, tb, testKey(tcp, i), ids[0], 10)
	}
	for _, c := range []struct{ slots, chunk int }{{1, 1}, {7, 3}, {64, 16}, {1 << 20, 4096}} {
		all := walkAll(t, tb, c.slots, c.chunk, 12, func(int) {})
		seen := map[Key]int{}
		for _, l := range all {
			seen[l.Key()]++
			if l.Entry().Dest != ids[0] || l.Expires() != 1 { // NONE: 3 s from 10, at 12
				t.Fatalf("slots %d chunk %d: %+v", c.slots, c.chunk, l)
			}
		}
		if len(all) != 1000 || len(seen) != 1000 {
			t.Fatalf("slots %d chunk %d: %d listed, %d distinct, want 1000", c.slots, c.chunk, len(all), len(seen))
		}
	}
	empty, _, _ := newTestTable(t, 10, 1, Options{})
	if all := walkAll(t, empty, 4, 4, 0, func(int) {}); len(all) != 0 {
		t.Fatalf("empty table: %d listed", len(all))
	}
}

// TestWalkUnderChurn inserts and deletes between steps, at a load factor
// near the table's limit, and checks the walk's guarantee: every entry
// present for the whole walk is listed exactly once.
func TestWalkUnderChurn(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		tb, _, ids := newTestTable(t, 512, 1, Options{Seed: seed + 1})
		present := map[int]bool{}
		for len(present) < 440 {
			i := rng.IntN(4096)
			if !present[i] {
				mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
				present[i] = true
			}
		}
		stable := map[int]bool{}
		for i := range present {
			stable[i] = true
		}
		everPresent := map[Key]bool{}
		for i := range present {
			everPresent[testKey(tcp, i)] = true
		}
		// Chunks longer than any cluster here (the guarantee's condition),
		// steps of any number of slots.
		all := walkAll(t, tb, 1+rng.IntN(40), 128, 0, func(int) {
			for range 4 {
				i := rng.IntN(4096)
				switch {
				case present[i]:
					tb.Delete(testKey(tcp, i), 0)
					delete(present, i)
					delete(stable, i)
				case tb.Len() < tb.Cap():
					mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
					present[i] = true
					everPresent[testKey(tcp, i)] = true
				}
			}
		})
		seen := map[Key]int{}
		for _, l := range all {
			seen[l.Key()]++
			if !everPresent[l.Key()] {
				t.Fatalf("seed %d: listed %v, never in the table", seed, l.Key())
			}
		}
		for i := range stable {
			if n := seen[testKey(tcp, i)]; n != 1 {
				t.Fatalf("seed %d: key %d, in the table for the whole walk, listed %d times", seed, i, n)
			}
		}
	}
}

func TestWalkDoesNotAllocate(t *testing.T) {
	tb, _, ids := newTestTable(t, 1000, 1, Options{})
	for i := range 900 {
		mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
	}
	buf := make([]Listed, 0, 64)
	var w Walk
	if a := testing.AllocsPerRun(100, func() {
		if _, done := tb.Step(&w, buf[:0], 256, 0); done {
			w = Walk{}
		}
	}); a != 0 {
		t.Fatalf("Step allocs = %v, want 0", a)
	}
}

// BenchmarkStep is one listing step (4096 entries) of a 1M-entry table.
func BenchmarkStep(b *testing.B) {
	tb, _, ids := newTestTable(b, 1<<20, 1, Options{})
	for i := range 1_000_000 {
		if err := tb.Insert(testKey(tcp, i), ids[0], 0); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]Listed, 0, 4096)
	var w Walk
	b.ReportAllocs()
	for b.Loop() {
		if _, done := tb.Step(&w, buf[:0], 65536, 0); done {
			w = Walk{}
		}
	}
}
