//go:build linux

package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	const text = "MemTotal:       24683520 kB\nMemFree:        24104312 kB\nMemAvailable:   24336852 kB\n"
	if got, ok := parseMeminfo(text, "MemAvailable"); !ok || got != 24336852*1024 {
		t.Errorf("MemAvailable: %d, %v; want %d", got, ok, 24336852*1024)
	}
	if _, ok := parseMeminfo(text, "VmSize"); ok {
		t.Errorf("VmSize found in a text without it")
	}
	if _, ok := parseMeminfo("MemAvailable: lots kB\n", "MemAvailable"); ok {
		t.Errorf("a value that is not a number was taken")
	}
}

func TestCgroupMemory(t *testing.T) {
	root := t.TempDir()
	write := func(path, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// cgroup v2, the process's cgroup below the root.
	write(filepath.Join(root, "v2/system.slice/udr.service/memory.max"), "1073741824\n")
	write(filepath.Join(root, "v2/system.slice/udr.service/memory.current"), "73741824\n")
	if m, ok := cgroupMemory("0::/system.slice/udr.service\n", filepath.Join(root, "v2")); !ok || m.Bytes != 1000000000 || m.By != "cgroup memory.max" {
		t.Errorf("cgroup v2: %+v, %v; want 1000000000 by cgroup memory.max", m, ok)
	}
	// cgroup v2 without a limit.
	write(filepath.Join(root, "v2max/memory.max"), "max\n")
	if m, ok := cgroupMemory("0::/\n", filepath.Join(root, "v2max")); ok {
		t.Errorf("cgroup v2 memory.max \"max\": %+v, want no bound", m)
	}
	// cgroup v1 in a cgroup namespace: the process's path is not under
	// the mount, whose root is its own cgroup.
	write(filepath.Join(root, "v1/memory/memory.limit_in_bytes"), "536870912\n")
	write(filepath.Join(root, "v1/memory/memory.usage_in_bytes"), "36870912\n")
	proc := "9:name=systemd:/\n4:cpu,memory:/process_api/abc\n0::/\n"
	if m, ok := cgroupMemory(proc, filepath.Join(root, "v1")); !ok || m.Bytes != 500000000 || m.By != "cgroup memory.limit_in_bytes" {
		t.Errorf("cgroup v1: %+v, %v; want 500000000 by cgroup memory.limit_in_bytes", m, ok)
	}
	// cgroup v1 without a limit: LONG_MAX rounded to a page.
	write(filepath.Join(root, "v1none/memory/memory.limit_in_bytes"), "9223372036854771712\n")
	if m, ok := cgroupMemory(proc, filepath.Join(root, "v1none")); ok {
		t.Errorf("cgroup v1 without a limit: %+v, want no bound", m)
	}
}

func TestAvailableMemory(t *testing.T) {
	m, err := AvailableMemory()
	if err != nil || m.Bytes == 0 || m.By == "" {
		t.Errorf("AvailableMemory() = %+v, %v; want some memory and its bound", m, err)
	}
}
