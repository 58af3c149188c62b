//go:build linux

package host

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlPath maps a dotted sysctl name to its /proc/sys file. The
// interface part of a name must not contain dots; use sysctlConfPath for
// per-interface settings.
func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// sysctlConfPath is the file of net.<family>.conf.<ifname>.<key>; ifname
// may contain dots (VLAN interfaces such as eth0.100).
func sysctlConfPath(family, ifname, key string) string {
	return filepath.Join("/proc/sys/net", family, "conf", ifname, key)
}

// readSysctl returns the trimmed contents of a /proc/sys file.
func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read sysctl: %w", err)
	}
	return string(bytes.TrimSpace(b)), nil
}

// writeSysctl writes value to a /proc/sys file.
func writeSysctl(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("write sysctl: %w", err)
	}
	return nil
}
