//go:build linux

package host

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Memory is how much more memory this process can take, and what bounds
// it: the least of the machine's MemAvailable (/proc/meminfo), what its
// memory cgroup allows beyond its usage (cgroup v2 memory.max, v1
// memory.limit_in_bytes), and its address space limit (RLIMIT_AS) beyond
// the address space it has.
type Memory struct {
	Bytes uint64
	By    string // "MemAvailable", "cgroup memory.max", "RLIMIT_AS", ...
}

// AvailableMemory returns the memory this process can still take. A bound
// that cannot be read (no cgroup, a file system not mounted) is left out;
// MemAvailable must be readable.
func AvailableMemory() (Memory, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return Memory{}, err
	}
	avail, ok := parseMeminfo(string(b), "MemAvailable")
	if !ok {
		return Memory{}, fmt.Errorf("/proc/meminfo: no MemAvailable")
	}
	m := Memory{Bytes: avail, By: "MemAvailable"}
	if cg, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if c, ok := cgroupMemory(string(cg), "/sys/fs/cgroup"); ok && c.Bytes < m.Bytes {
			m = c
		}
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_AS, &rl) == nil && rl.Cur != unix.RLIM_INFINITY {
		var used uint64
		if b, err := os.ReadFile("/proc/self/status"); err == nil {
			used, _ = parseMeminfo(string(b), "VmSize")
		}
		left := uint64(0)
		if rl.Cur > used {
			left = rl.Cur - used
		}
		if left < m.Bytes {
			m = Memory{Bytes: left, By: "RLIMIT_AS"}
		}
	}
	return m, nil
}

// parseMeminfo returns the field name of a /proc/meminfo or
// /proc/self/status text ("MemAvailable:   123456 kB") in bytes.
func parseMeminfo(text, name string) (uint64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			if n > math.MaxUint64/1024 {
				return math.MaxUint64, true
			}
			n *= 1024
		}
		return n, true
	}
	return 0, false
}

// cgroupMemory returns what the memory cgroup named in a /proc/self/cgroup
// text allows beyond its usage, with cgroup v2 (the "0::" line) or v1 (the
// "memory" controller's line), reading the cgroup file system at root. In
// a cgroup namespace the process's own cgroup is the root of its view.
func cgroupMemory(procCgroup, root string) (Memory, bool) {
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		var limitFile, usageFile, by string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dirs = []string{filepath.Join(root, parts[2]), root}
			limitFile, usageFile, by = "memory.max", "memory.current", "cgroup memory.max"
		case hasController(parts[1], "memory"):
			dirs = []string{filepath.Join(root, "memory", parts[2]), filepath.Join(root, "memory")}
			limitFile, usageFile, by = "memory.limit_in_bytes", "memory.usage_in_bytes", "cgroup memory.limit_in_bytes"
		default:
			continue
		}
		for _, dir := range dirs {
			limit, err := readCgroupValue(filepath.Join(dir, limitFile))
			if err != nil {
				continue
			}
			if limit >= 1<<62 {
				break // "max", or v1's page-rounded LONG_MAX: no limit
			}
			usage, _ := readCgroupValue(filepath.Join(dir, usageFile))
			left := uint64(0)
			if limit > usage {
				left = limit - usage
			}
			return Memory{Bytes: left, By: by}, true
		}
	}
	return Memory{}, false
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readCgroupValue reads a cgroup file of one number, or "max".
func readCgroupValue(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return math.MaxUint64, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
