package conntrack

import (
	"runtime"
	"testing"

	"github.com/udr-lb/udr/dest"
)

// TestMemory checks Memory against what New allocates from the Go heap,
// for tables small enough to live there (larger slots are mapped apart).
func TestMemory(t *testing.T) {
	reg := dest.NewRegistry(1)
	for _, capacity := range []int{1, 100, 4096, 20000} {
		// The least of a few tries: other goroutines allocate too.
		var got uint64
		for try := range 5 {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tb := New(capacity, reg, Options{})
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(tb)
			if n := after.TotalAlloc - before.TotalAlloc; try == 0 || n < got {
				got = n
			}
		}
		want := Memory(capacity)
		// Allocation rounds up to size classes or pages.
		if got < want || got > want+want/8+4096 {
			t.Errorf("New(%d) allocated %d bytes, Memory says %d", capacity, got, want)
		}
	}
	if m := Memory(-1); m != 0 {
		t.Errorf("Memory(-1) = %d, want 0", m)
	}
}
