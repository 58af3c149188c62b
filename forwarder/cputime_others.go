//go:build !linux

package forwarder

import "time"

// threadCPU is not known on this platform.
func threadCPU() time.Duration { return 0 }
