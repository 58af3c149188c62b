package bounded

import (
	"fmt"
	"syscall"
)

// Descriptors raises the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does so at start too; a limit set by the caller's shell is
// raised here again) and returns the limit now in force.
func Descriptors() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("descriptor limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	return lim.Cur, nil
}

// listenerShare is the part of the descriptor limit one listener may hold:
// 1/16, so that two listeners hold at most an eighth.
const listenerShare = 16

// ConnCap returns the connection cap of one listener under a descriptor
// limit: want, or 1/16 of the limit when that is less, and at least 1.
func ConnCap(limit uint64, want int) int {
	return int(max(min(uint64(want), limit/listenerShare), 1))
}
