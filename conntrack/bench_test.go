package conntrack

import "testing"

const benchEntries = 1_000_000

// fullTable returns a table of capacity benchEntries holding n
// established connections testKey(tcp, 0..n-1).
func fullTable(b *testing.B, n int) *Table {
	b.Helper()
	tb, _, ids := newTestTable(b, benchEntries, 1, Options{})
	for i := range n {
		k := testKey(tcp, i)
		mustInsert(b, tb, k, ids[0], 0)
		mustUpdate(b, tb, k, TCPAck, 0)
	}
	return tb
}

// benchKey spreads successive calls over the table, so that neither the
// hint nor the CPU cache hides the probe.
func benchKey(i int) Key { return testKey(tcp, (i*7919)%benchEntries) }

func BenchmarkLookup(b *testing.B) {
	tb := fullTable(b, benchEntries)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := tb.Lookup(benchKey(i), 1); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkUpdate(b *testing.B) {
	tb := fullTable(b, benchEntries)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := tb.Update(benchKey(i), TCPAck, 1); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkInsertDelete(b *testing.B) {
	tb := fullTable(b, benchEntries-1)
	dest := tb.slots[tb.hint].dest
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := testKey(tcp, benchEntries+i%(1<<20))
		if err := tb.Insert(k, dest, 1); err != nil {
			b.Fatal(err)
		}
		tb.Delete(k, 1)
		i++
	}
}

func BenchmarkSweep(b *testing.B) {
	tb := fullTable(b, benchEntries)
	b.ReportAllocs()
	for b.Loop() {
		tb.Sweep(1, 64)
	}
}
