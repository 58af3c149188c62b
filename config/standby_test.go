package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStandbyKey: standby is false unless the file says true, and a value
// that is not a boolean is an error naming the key.
func TestStandbyKey(t *testing.T) {
	dir := t.TempDir()
	load := func(extra string) (*File, error) {
		path := filepath.Join(dir, "udr.yaml")
		body := "interface: eth0\n" + extra + "services:\n  - {address: 192.0.2.100, port: 80, servers: [{address: 192.0.2.11}]}\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		fc, _, _, err := Load(path)
		return fc, err
	}
	for _, tt := range []struct {
		extra string
		want  bool
	}{{"", false}, {"standby: false\n", false}, {"standby: true\n", true}} {
		fc, err := load(tt.extra)
		if err != nil {
			t.Fatalf("%q: %v", tt.extra, err)
		}
		if fc.Standby != tt.want {
			t.Errorf("%q: Standby %v, want %v", tt.extra, fc.Standby, tt.want)
		}
	}
	if _, err := load("standby: maybe\n"); err == nil || !strings.Contains(err.Error(), "standby") {
		t.Errorf("standby: maybe: error %v, want one naming standby", err)
	}
}
