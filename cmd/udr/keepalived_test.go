package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigImport runs `udr config import` on keepalived.conf files: a
// valid one prints its udr.yaml (the package's golden file, its notice and
// warnings on stderr), an invalid one fails naming the line.
func TestConfigImport(t *testing.T) {
	const conf = "../../keepalived/testdata/valid/10_vrrp_pair.conf"
	var stdout, stderr bytes.Buffer
	if err := runConfig([]string{"import", "--iface", "eth0", conf}, &stdout, &stderr); err != nil {
		t.Fatalf("udr config import: %v\n%s", err, stderr.String())
	}
	golden, err := os.ReadFile("../../keepalived/testdata/valid/10_vrrp_pair.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The golden file ends with the notice and warnings, as comments.
	want, _, _ := strings.Cut(string(golden), "# notice: ")
	want = strings.ReplaceAll(want, "testdata/", "../../keepalived/testdata/")
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want)
	}
	if n := strings.Count(stderr.String(), "skipped global_defs"); n != 1 {
		t.Errorf("stderr has %d notices of the skipped blocks, want 1:\n%s", n, stderr.String())
	}
	if !strings.Contains(stdout.String(), "retry_interval: 3s") {
		t.Errorf("delay_before_retry 3 is not retry_interval: 3s:\n%s", stdout.String())
	}

	// The printed udr.yaml is one udr config check takes.
	path := filepath.Join(t.TempDir(), "udr.yaml")
	if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runConfig([]string{"check", path}, &out, &out); err != nil || !strings.Contains(out.String(), "1 service, 1 real server, 1 health check: ok") {
		t.Errorf("udr config check of the import: %v\n%s", err, out.String())
	}

	// Without --iface: a placeholder, said on stderr.
	stdout.Reset()
	stderr.Reset()
	if err := runConfig([]string{"import", conf}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `interface: "CHANGE-ME"`) || !strings.Contains(stderr.String(), "no --iface") {
		t.Errorf("import without --iface: stdout\n%s\nstderr\n%s", stdout.String(), stderr.String())
	}

	// An invalid file: exit status 1, every error with its line.
	stdout.Reset()
	stderr.Reset()
	err = runConfig([]string{"import", "--iface", "eth0", "../../keepalived/testdata/invalid/many_errors.conf"}, &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || stdout.Len() != 0 {
		t.Fatalf("import of an invalid file: %v, stdout %q", err, stdout.String())
	}
	for _, want := range []string{"many_errors.conf:5: lb_kind NAT: udr forwards by direct routing only", "many_errors.conf:7: weight", "many_errors.conf:10: status_code"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}

	for _, args := range [][]string{{"import"}, {"import", "a", "b"}, {"import", "--iface", "a/b", conf}, {"export", conf}} {
		err := runConfig(args, &stdout, &stderr)
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("udr config %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}
