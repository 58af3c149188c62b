//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedRunCapacity runs udr run, in a namespace of its own and
// with its address space limited to 4 GiB (ulimit -v), with capacities it
// cannot take: out of range by flag (a usage error, exit status 2), and
// the largest that udr.yaml accepts, which does not fit in the limit
// (exit status 1). Each is a one-line error; none is a panic or the
// runtime's fatal out of memory.
func TestPrivilegedRunCapacity(t *testing.T) {
	lab := netlab.ForTest(t, "capacity")
	h, err := lab.AddHost("director")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(h, "eth0", netip.MustParsePrefix("192.0.2.1/24")); err != nil {
		t.Fatal(err)
	}
	bin := buildUDR(t)
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(bin.dir, "udr.yaml")
	if err := os.WriteFile(conf, []byte("interface: eth0\ncapacity: 268435456\ncontrol_socket: \"off\"\nmetrics_address: \"off\"\nrules: rules\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--iface", "eth0", "--rules", rules, "--control", "off", "--metrics", "off"}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{append(base, "--capacity", "-1"), 2, "udr: run: --capacity -1 out of range 1..268435456"},
		{append(base, "--capacity", "99999999999"), 2, "udr: run: --capacity 99999999999 out of range 1..268435456"},
		{[]string{"run", "--config", conf}, 1, "udr: capacity 268435456: the connection table needs"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		// 4 GiB of address space: the Go runtime starts in it, a table
		// of 268435456 entries (16 GiB) does not fit.
		cmd := h.Command("sh", "-c", `ulimit -v 4194304 && exec "$@"`, "sh", bin.exe)
		cmd.Args = append(cmd.Args, tt.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Start()
		if err == nil {
			stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
			err = cmd.Wait()
			stop()
		}
		cancel()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("udr %s: %v", strings.Join(tt.args, " "), err)
		}
		got := strings.TrimSpace(stderr.String())
		code := cmd.ProcessState.ExitCode()
		lines := strings.Split(got, "\n")
		last := lines[len(lines)-1]
		if code != tt.code || !strings.Contains(last, tt.want) || strings.Contains(got, "goroutine ") || strings.Contains(got, "fatal error") {
			if len(got) > 2000 {
				got = got[:2000] + "..."
			}
			t.Errorf("udr %s: exit status %d, stderr:\n%s\nwant exit status %d and a last line containing %q, no panic", strings.Join(tt.args, " "), code, got, tt.code, tt.want)
		}
	}
}
