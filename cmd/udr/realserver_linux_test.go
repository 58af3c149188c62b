//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedRealServerCommand runs `udr realserver check`, `setup`,
// `check` and `teardown` in a fresh namespace: check reports what is missing
// with the command that fixes it and fails, setup fixes it (twice, to show
// it is idempotent), and teardown removes the VIP.
func TestPrivilegedRealServerCommand(t *testing.T) {
	lab := netlab.ForTest(t, "rscmd")
	rs, err := lab.AddHost("rs")
	if err != nil {
		t.Fatal(err)
	}
	udr := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		var code int
		if err := rs.Run(func() error {
			code = run(append([]string{"udr", "realserver"}, args...), &out, &errb)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return code, out.String() + errb.String()
	}
	vip := []string{"--vip", "192.0.2.100", "--vip", "2001:db8::100"}

	code, out := udr(append([]string{"check"}, vip...)...)
	if code == 0 || !strings.Contains(out, "missing") || !strings.Contains(out, "fix: sysctl -w net.ipv4.conf.all.arp_ignore=1") || !strings.Contains(out, "fix: ip addr add 192.0.2.100/32 dev lo") {
		t.Fatalf("check before setup: exit %d\n%s\nwant a failure listing the missing items and their fixes", code, out)
	}
	for range 2 {
		if code, out := udr(append([]string{"setup"}, vip...)...); code != 0 {
			t.Fatalf("setup: exit %d\n%s", code, out)
		}
	}
	if code, out := udr(append([]string{"check"}, vip...)...); code != 0 || strings.Contains(out, "missing") {
		t.Fatalf("check after setup: exit %d\n%s", code, out)
	}
	if code, out := udr(append([]string{"teardown"}, vip...)...); code != 0 {
		t.Fatalf("teardown: exit %d\n%s", code, out)
	}
	if code, out := udr(append([]string{"check"}, vip...)...); code == 0 {
		t.Fatalf("check after teardown passed:\n%s", out)
	}
	if code, out := udr("check"); code != 2 || !strings.Contains(out, "--vip is required") {
		t.Fatalf("check without --vip: exit %d %q, want 2 and a message", code, out)
	}
}
