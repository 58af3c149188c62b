package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestLoadConfigBounds checks that a udr.yaml nested too deep, with too
// many aliases, or whose aliases expand it too far is refused with its
// file and line before it is parsed, in little time and memory: 40,000
// levels of "[" (80 KB) drove the parser past 6 GB.
func TestLoadConfigBounds(t *testing.T) {
	laughs := "interface: eth0\nx0: &a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n"
	for i := 1; i <= 7; i++ {
		refs := strings.TrimSuffix(strings.Repeat("*a"+string(rune('0'+i-1))+", ", 10), ", ")
		laughs += "x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + refs + "]\n"
	}
	deepBlock := "interface: eth0\nservices:\n"
	for i := range 40 {
		deepBlock += strings.Repeat("  ", i+1) + "k:\n"
	}
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"40000 [", strings.Repeat("[", 40000), "udr.yaml:1: nested more than 32 levels deep: udr reads no deeper"},
		{"40000 {a:", "interface: eth0\nservices: " + strings.Repeat("{a: ", 40000), "udr.yaml:2: nested more than 32 levels deep"},
		{"40000 -", "interface: eth0\nservices:\n" + strings.Repeat("- ", 40000) + "x\n", "udr.yaml:3: nested more than 32 levels deep"},
		{"indented", deepBlock, "udr.yaml:34: nested more than 32 levels deep"},
		{"101 aliases", "interface: eth0\nx: &a 1\ny: [" + strings.TrimSuffix(strings.Repeat("*a, ", 101), ", ") + "]\n", "udr.yaml:3: more than 100 aliases: udr reads no more"},
		{"laughs", laughs, "udr.yaml: its aliases expand it to more than 1000000 nodes"},
		{"size", "interface: eth0\n#" + strings.Repeat("x", MaxFileSize) + "\n", "udr.yaml: larger than 1048576 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, _, err := parseConfig([]byte(tt.yaml), "udr.yaml", ".")
			runtime.ReadMemStats(&after)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("parseConfig: %v, want an error starting %q", err, tt.want)
			}
			// The tokens of the input, not the parser's tree.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
				t.Errorf("parseConfig allocated %d MB", alloc>>20)
			}
		})
	}
}

// TestLoadConfigDepthKept checks that the bounds leave a real udr.yaml
// alone: nesting as deep as its shape goes, in block and flow style, and
// anchors shared by health checks.
func TestLoadConfigDepthKept(t *testing.T) {
	const yaml = `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    health_check: &hc {kind: http, path: /healthz, interval: 2s, timeout: 1s}
    servers:
      - address: 192.0.2.11
        health_check:
          kind: http
          path: /ready
      - {address: 192.0.2.12, health_check: *hc}
  - address: 192.0.2.101
    port: 80
    flags: [sh-port]
    scheduler: sh
    servers: [{address: 192.0.2.13, health_check: {kind: tcp, rise: 1}}]
`
	fc, cfg, _, err := parseConfig([]byte(yaml), "udr.yaml", ".")
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if len(cfg.Services) != 2 || fc.Services[0].Servers[1].HealthCheck.Path != "/healthz" {
		t.Errorf("parseConfig: %+v", fc.Services)
	}
}

// TestLoadBounded checks that Load reads at most MaxFileSize bytes: of a
// larger file, and of one that never ends.
func TestLoadBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "udr.yaml")
	if err := os.WriteFile(path, []byte("interface: eth0\n#"+strings.Repeat("x", MaxFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, "/dev/zero"} {
		if _, _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), p+": larger than 1048576 bytes") {
			t.Errorf("Load(%s): %v, want an error that it is larger than 1048576 bytes", p, err)
		}
	}
}
