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

// BenchmarkSweep is the per-batch cost of Sweep when no timer is due.
func BenchmarkSweep(b *testing.B) {
	tb := fullTable(b, benchEntries)
	b.ReportAllocs()
	now := uint32(1)
	for b.Loop() {
		tb.Sweep(now, 4096)
	}
}

// BenchmarkExpiry is the cost of expiring one entry on time: a full
// 1M-entry table of UDP connections whose deadlines are spread over 300
// s (10 ms ticks) is swept tick by tick, as a worker would, until it is
// empty. ns/entry is the figure; each op is one whole table.
func BenchmarkExpiry(b *testing.B) {
	const span = 30_000 // ticks over which the deadlines spread
	tb, _, ids := newTestTable(b, benchEntries, 1, Options{TicksPerSecond: 100})
	fill := func() {
		for i := range benchEntries {
			k := testKey(udp, i)
			at := uint32(1 + i*span/benchEntries)
			mustInsert(b, tb, k, ids[0], at)
			mustUpdate(b, tb, k, 0, at) // UDP: 300 s, 30,000 ticks
		}
	}
	b.ReportAllocs()
	var total int
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		for now := uint32(1 + 30_000); tb.Len() > 0; now++ {
			total += tb.Sweep(now, 4096)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(total), "ns/entry")
}

// BenchmarkInsertFull inserts spoofed SYN+ACK pairs into a full table: one
// eviction each.
func BenchmarkInsertFull(b *testing.B) {
	const capacity = 4096
	tb, _, ids := newTestTable(b, capacity, 1, Options{TicksPerSecond: 100})
	for i := range capacity {
		tb.Insert(testKey(tcp, i), ids[0], 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := testKey(tcp, capacity+i)
		now := uint32(i / 1000)
		tb.Insert(k, ids[0], now)
		tb.Update(k, TCPSyn, now)
		tb.Update(k, TCPAck, now)
	}
}
