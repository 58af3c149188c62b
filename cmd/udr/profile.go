package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// profileEnv names a file that udr writes a CPU profile of its whole run
// into (runtime/pprof), for `go tool pprof`: how bench/netbench -profile
// sees where a forwarding udr spends its time. It is for measurement, not
// for production: the profiler's signal costs every thread a little.
const profileEnv = "UDR_CPUPROFILE"

// startProfile starts the CPU profile that UDR_CPUPROFILE asks for and
// returns the function that ends it; without the variable it does nothing.
func startProfile(stderr io.Writer) (stop func()) {
	path := os.Getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "udr: %s=%s: %v\n", profileEnv, path, err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "udr: %s=%s: %v\n", profileEnv, path, err)
		}
	}
}
