package conntrack

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeSlotsMin is the smallest table whose slots are mapped apart from the
// Go heap, in huge pages: below it the TLB covers the table anyway.
const hugeSlotsMin = 8 << 20

// hugePage is the size of a transparent huge page on the platforms udr
// runs on (x86-64, arm64 with 4 KiB base pages).
const hugePage = 2 << 20

// allocSlots returns n zeroed slots. A large table is an anonymous mapping
// advised to use transparent huge pages (MADV_HUGEPAGE), which the Go heap
// does not ask for: a lookup into a 59 MB table of 4 KiB pages misses the
// TLB nearly every time, and the page walk costs as much as the miss on the
// slot itself. The mapping is unmapped when the Table that owns it is
// garbage (runtime.AddCleanup); slots hold no pointers, so the collector
// need not see them. Where the kernel refuses, the slots come from the heap.
func allocSlots(t *Table, n int) []slot {
	size := n * int(unsafe.Sizeof(slot{}))
	if size < hugeSlotsMin {
		return make([]slot, n)
	}
	size = (size + hugePage - 1) &^ (hugePage - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]slot, n)
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // advice: without it, 4 KiB pages
	// Fault every page in now, while udr starts: the first touch of a huge
	// page zeroes 2 MiB and may compact memory for it, which the packet
	// path must not wait for (a flood's first frames stalled for 272 ms on
	// a fresh 60 MB table). A write per 4 KiB also fills in the pages the
	// kernel had to give as small ones.
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 0
	}
	runtime.AddCleanup(t, func(mem []byte) { _ = unix.Munmap(mem) }, mem)
	return unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(mem))), n)
}
