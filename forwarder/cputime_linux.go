//go:build linux

package forwarder

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time of the calling thread, or 0 when it is
// not known. The worker times listing steps with it as well as with the
// wall clock: a step's CPU time is its own cost, without the time the
// thread waited for a CPU.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
