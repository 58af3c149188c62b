package conntrack

import (
	"testing"
	"unsafe"

	"github.com/udr-lb/udr/dest"
	"golang.org/x/sys/unix"
)

// TestLargeTableResident checks that a table mapped apart from the heap
// has every page in memory once New returns, so that no packet waits for
// a page fault (of a huge page: zeroing 2 MiB, maybe compaction).
func TestLargeTableResident(t *testing.T) {
	tab := New(1<<20, dest.NewRegistry(16), Options{Seed: 1})
	size := len(tab.slots) * int(unsafe.Sizeof(slot{}))
	if size < hugeSlotsMin {
		t.Fatalf("a 1M table is %d bytes, below hugeSlotsMin: not mapped apart", size)
	}
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(tab.slots))), size)
	vec := make([]byte, (size+4095)/4096)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(vec)*4096), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal("mincore:", errno)
	}
	missing := 0
	for _, v := range vec {
		if v&1 == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d pages of a new 1M-entry table are not resident", missing, len(vec))
	}
}
