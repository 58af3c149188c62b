package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSplitScript(t *testing.T) {
	tests := []struct {
		line string
		want []string
		err  string
	}{
		{line: "/bin/check", want: []string{"/bin/check"}},
		{line: "  /bin/check  a\tb ", want: []string{"/bin/check", "a", "b"}},
		{line: `/bin/check 'a b' "c d" e\ f`, want: []string{"/bin/check", "a b", "c d", "e f"}},
		{line: `/bin/check 'a\b' "x\"y\z" ''`, want: []string{"/bin/check", `a\b`, `x"y\z`, ""}},
		{line: "", err: "script: empty"},
		{line: "''", err: "script: empty"},
		{line: "/bin/check 'a", err: "unterminated ' quote"},
		{line: `/bin/check a\`, err: `ends with \`},
		{line: "/bin/check\na", err: "a line feed (LF) at byte 10"},
		{line: "/bin/" + strings.Repeat("x", maxScript), err: "want at most 4096"},
	}
	for _, tt := range tests {
		got, err := SplitScript(tt.line)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("SplitScript(%q) = %q, %v; want an error containing %q", tt.line, got, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("SplitScript(%q): %v", tt.line, err)
		case tt.err == "":
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SplitScript(%q) (-want +got):\n%s", tt.line, diff)
			}
		}
	}
}

// script writes an executable shell script into a test directory and
// returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "check")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProbeMisc: exit 0 passes, any other status fails; with
// misc_dynamic, 2..255 passes with weight status-2 and 1 fails; the
// script gets its arguments unsplit by a shell, without LD_PRELOAD.
func TestProbeMisc(t *testing.T) {
	t.Setenv("LD_PRELOAD", "")
	t.Setenv("UDR_MISC_TEST", "seen")
	out := filepath.Join(t.TempDir(), "args")
	s := script(t, `printf '%s|' "$@" "$UDR_MISC_TEST" "${LD_PRELOAD-unset}" > `+out+`; exit $1`+"\n")
	tests := []struct {
		code    int
		dynamic bool
		err     string
	}{
		{code: 0},
		{code: 1, err: "exit status 1"},
		{code: 2, err: "exit status 2"},
		{code: 0, dynamic: true},
		{code: 1, dynamic: true, err: "exit status 1"},
		{code: 2, dynamic: true, err: "passed with weight 0"},
		{code: 42, dynamic: true, err: "passed with weight 40"},
		{code: 255, dynamic: true, err: "passed with weight 253"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("exit %d dynamic %v", tt.code, tt.dynamic), func(t *testing.T) {
			check := CheckConfig{Kind: KindMisc, Script: fmt.Sprintf("%s %d 'a b'", s, tt.code), MiscDynamic: tt.dynamic, Timeout: 5 * time.Second, Interval: 10 * time.Second}
			err := probeOnce(t, rs1, check)
			wantErr(t, err, tt.err)
			var w weightResult
			if errors.As(err, &w) != (tt.dynamic && tt.code >= 2) {
				t.Errorf("error %v: a weight %v, want %v", err, !errors.As(err, &w), tt.dynamic && tt.code >= 2)
			}
			b, rerr := os.ReadFile(out)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if want := fmt.Sprintf("%d|a b|seen|unset|", tt.code); string(b) != want {
				t.Errorf("script saw %q, want %q", b, want)
			}
		})
	}
	t.Run("missing program", func(t *testing.T) {
		err := probeOnce(t, rs1, CheckConfig{Kind: KindMisc, Script: filepath.Join(t.TempDir(), "none")})
		wantErr(t, err, "no such file or directory")
	})
}

// TestProbeMiscTimeout: a script that outlives its timeout is killed with
// the process it started, and reaped; the check fails.
func TestProbeMiscTimeout(t *testing.T) {
	dir := t.TempDir()
	s := script(t, "echo $$ > "+dir+"/script\nsleep 60 &\necho $! > "+dir+"/child\nwait\n")
	begin := time.Now()
	err := probeOnce(t, rs1, CheckConfig{Kind: KindMisc, Script: s, Timeout: 300 * time.Millisecond, Interval: time.Second})
	wantErr(t, err, "timed out after 300ms, killed")
	if took := time.Since(begin); took > 30*time.Second {
		t.Fatalf("the check took %v, want about its timeout", took)
	}
	for _, name := range []string{"script", "child"} {
		b, rerr := os.ReadFile(filepath.Join(dir, name))
		if rerr != nil {
			t.Fatal(rerr)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid <= 0 {
			t.Fatalf("%s pid %q", name, b)
		}
		// The script is our child: reaped, it is gone at once. Its
		// child was reparented; once killed it is gone or a zombie of
		// its new parent.
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if errors.Is(err, os.ErrNotExist) || err == nil && name == "child" && procState(string(st)) == "Z" {
				break
			}
			if name == "script" || time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still there after the check: %s", name, pid, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// procState returns the state letter of a /proc/PID/stat line.
func procState(stat string) string {
	if i := strings.LastIndexByte(stat, ')'); i >= 0 && i+3 <= len(stat) {
		return stat[i+2 : i+3]
	}
	return ""
}

// TestCheckerMiscWeight: the Weight callback hears of each weight a
// misc_dynamic script sets, once per change, and of the return to the
// configured weight (-1) on exit 0; exit 1 takes the server down.
func TestCheckerMiscWeight(t *testing.T) {
	codeFile := filepath.Join(t.TempDir(), "code")
	s := script(t, "exit $(cat "+codeFile+")\n")
	var got []string
	c, err := New(Config{Weight: func(tg Target, w int) { got = append(got, fmt.Sprintf("w=%d", w)) }},
		func(tg Target, up bool, _ string) { got = append(got, fmt.Sprintf("up=%v", up)) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check := CheckConfig{Kind: KindMisc, Script: s, MiscDynamic: true, Timeout: 5 * time.Second, Interval: 10 * time.Second, Rise: 1, Fall: 1}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: check}}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	for _, code := range []int{12, 12, 7, 0, 0, 1, 1, 3} {
		if err := os.WriteFile(codeFile, []byte(strconv.Itoa(code)), 0o644); err != nil {
			t.Fatal(err)
		}
		if n := step(c, now); n != 1 {
			t.Fatalf("%d checks ran, want 1", n)
		}
		now = now.Add(check.Interval)
	}
	want := []string{"w=10", "w=5", "w=-1", "up=false", "w=1", "up=true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("reports (-want +got):\n%s", diff)
	}
	if s := status(c)[rs1]; s.Weight != 1 || !s.Up {
		t.Fatalf("status %+v, want up with weight 1", s)
	}
}

// TestRunMiscLongerThanInterval: a misc check whose script outlasts its
// interval (a timeout above the interval, as keepalived's misc_timeout
// allows) never runs twice at once for a server: the next run starts after
// the last one was reaped.
func TestRunMiscLongerThanInterval(t *testing.T) {
	dir := t.TempDir()
	s := script(t, "echo start >> "+dir+"/log\nsleep 0.4\necho end >> "+dir+"/log\n")
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check := CheckConfig{Kind: KindMisc, Script: s, Interval: 100 * time.Millisecond, Timeout: 5 * time.Second}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: check}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Run(ctx) // waits for the run in progress
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) < 4 {
		t.Fatalf("log %q: want at least two runs in 2 s", lines)
	}
	for i, l := range lines {
		if want := []string{"start", "end"}[i%2]; l != want {
			t.Fatalf("log %q: line %d is %s, want %s: two runs overlapped", lines, i, l, want)
		}
	}
}
