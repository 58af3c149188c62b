package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfileEnv checks that UDR_CPUPROFILE makes any command write a CPU
// profile (gzip-compressed protobuf, as runtime/pprof writes it), and that
// a path it cannot create is reported without failing the command.
func TestProfileEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	t.Setenv(profileEnv, path)
	if code := run([]string{"udr", "version"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("udr version: exit %d", code)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("%s: %d bytes, not a gzip-compressed profile", path, len(b))
	}

	t.Setenv(profileEnv, filepath.Join(t.TempDir(), "missing", "cpu.pprof"))
	var stderr strings.Builder
	if code := run([]string{"udr", "version"}, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), profileEnv) {
		t.Fatalf("udr version with an unwritable profile: exit %d, stderr %q; want 0 and a line naming %s", code, stderr.String(), profileEnv)
	}
}
