package admin

import (
	"bytes"
	"strings"
	"testing"
)

// TestListStandby: a listing of a director in standby says so in one line
// on stderr, after ipvsadm's stdout, which stays byte for byte what it is
// when active; -j has "standby": true. The connection and timeout
// listings, and an active director's, say nothing.
func TestListStandby(t *testing.T) {
	run := func(b *fakeBackend, args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := Run(args, b, nil, &stdout, &stderr, Options{Resolver: fakeResolver{}}); code != 0 {
			t.Fatalf("%v: status %d, stderr %q", args, code, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	for _, args := range [][]string{{"-L", "-n"}, {"-L"}, {"-L", "-n", "--stats"}, {"-L", "-n", "-t", "192.0.2.100:80"}, {}} {
		active := walkthroughBackend(t)
		standby := walkthroughBackend(t)
		standby.standby = true
		aout, aerr := run(active, args...)
		sout, serr := run(standby, args...)
		if sout != aout {
			t.Errorf("%v: stdout in standby differs from active:\n%s\nwant\n%s", args, sout, aout)
		}
		if aerr != "" {
			t.Errorf("%v: stderr when active: %q, want none", args, aerr)
		}
		if want := standbyNote + "\n"; serr != want {
			t.Errorf("%v: stderr in standby %q, want %q", args, serr, want)
		}
	}
	for _, args := range [][]string{{"-L", "-n", "-c"}, {"-L", "--timeout"}} {
		b := walkthroughBackend(t)
		b.standby = true
		if _, serr := run(b, args...); serr != "" {
			t.Errorf("%v: stderr in standby %q, want none", args, serr)
		}
	}
	b := walkthroughBackend(t)
	if l := runJSON(t, b, "-L", "-n", "-j"); l.Standby {
		t.Error("-j: standby when active")
	}
	if out, _ := run(b, "-L", "-n", "-j"); strings.Contains(out, "standby") {
		t.Errorf("-j when active names standby:\n%s", out)
	}
	b.standby = true
	if l := runJSON(t, b, "-L", "-n", "-j"); !l.Standby {
		t.Error(`-j in standby: no "standby": true`)
	}
}
