//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udr-lb/udr/director"
)

// fakeControl is a control API on a unix socket that answers
// POST /v1/ipvsadm with a --rate listing whose rates grow with each
// request, and counts the connections it accepted.
type fakeControl struct {
	path     string
	requests atomic.Int64
	conns    atomic.Int64
	mu       sync.Mutex
	args     [][]string
	exitAt   int64 // the request that answers exit 1; 0: none
}

func newFakeControl(t *testing.T) *fakeControl {
	t.Helper()
	f := &fakeControl{path: filepath.Join(t.TempDir(), "udr.sock")}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ipvsadm", func(w http.ResponseWriter, r *http.Request) {
		n := f.requests.Add(1)
		var req director.IpvsadmRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.args = append(f.args, req.Args)
		f.mu.Unlock()
		out := director.IpvsadmResponse{Stdout: fmt.Sprintf(
			"IP Virtual Server version 1.2.1 (size=4096)\n"+
				"Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"+
				"  -> RemoteAddress:Port\n"+
				"TCP  192.0.2.100:80                   %3d %8d        0 %8d        0\n"+
				"  -> 192.0.2.11:80                    %3d %8d        0 %8d        0\n",
			n, 10*n, 1000*n, n, 10*n, 1000*n)}
		if n == f.exitAt {
			out = director.IpvsadmResponse{Stderr: "No such service\n", Exit: 1}
		}
		json.NewEncoder(w).Encode(out)
	})
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// TestWatchNotTerminal runs the --watch loop against a fake control API
// with a fixed clock and no waiting: --count refreshes, each after a
// separator line, with the rates each answer gave, over one connection.
func TestWatchNotTerminal(t *testing.T) {
	f := newFakeControl(t)
	o, err := parseWatch([]string{"-L", "-n", "--watch", "1", "--count", "3"})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	ticks := 0
	w := &watcher{client: controlClient(f.path), path: f.path, opts: o,
		now: func() time.Time { return clock },
		tick: func(d time.Duration) <-chan time.Time {
			if d != time.Second {
				t.Errorf("tick after %v, want 1s", d)
			}
			ticks++
			clock = clock.Add(d)
			c := make(chan time.Time, 1)
			c <- clock
			return c
		}}
	var out, errb bytes.Buffer
	if err := w.run(context.Background(), &out, &errb); err != nil {
		t.Fatal(err)
	}
	want := ""
	for n := 1; n <= 3; n++ {
		want += fmt.Sprintf("--- %d: 2026-12-07 08:00:%02d UTC, udr admin -L -n --rate (every 1s) ---\n", n, n-1) +
			"IP Virtual Server version 1.2.1 (size=4096)\n" +
			"Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n" +
			"  -> RemoteAddress:Port\n" +
			fmt.Sprintf("TCP  192.0.2.100:80                   %3d %8d        0 %8d        0\n", n, 10*n, 1000*n) +
			fmt.Sprintf("  -> 192.0.2.11:80                    %3d %8d        0 %8d        0\n", n, 10*n, 1000*n)
	}
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Error("escape sequences in output that is not a terminal")
	}
	if got := f.requests.Load(); got != 3 {
		t.Errorf("%d requests, want 3 (--count 3)", got)
	}
	if ticks != 2 {
		t.Errorf("waited %d times, want 2 (none after the last refresh)", ticks)
	}
	if got := f.conns.Load(); got != 1 {
		t.Errorf("%d connections to the control socket, want 1 reused", got)
	}
	for _, a := range f.args {
		if strings.Join(a, " ") != "-L -n --rate" {
			t.Errorf("asked %q, want -L -n --rate", a)
		}
	}
}

// TestWatchTerminal checks the redraw: home and clear before each
// refresh, and the header of watch(1).
func TestWatchTerminal(t *testing.T) {
	f := newFakeControl(t)
	o, err := parseWatch([]string{"-Ln", "--stats", "--watch=0.5", "--count=2"})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	fired := make(chan time.Time, 1)
	w := &watcher{client: controlClient(f.path), path: f.path, opts: o, terminal: true,
		now:  func() time.Time { return clock },
		tick: func(time.Duration) <-chan time.Time { fired <- clock; return fired }}
	var out, errb bytes.Buffer
	if err := w.run(context.Background(), &out, &errb); err != nil {
		t.Fatal(err)
	}
	screens := strings.Split(out.String(), "\x1b[H\x1b[2J")
	if len(screens) != 3 || screens[0] != "" {
		t.Fatalf("%d clears, want 2: %q", len(screens)-1, out.String())
	}
	head := "Every 500ms: udr admin -Ln --stats    2026-12-07 08:00:00 UTC\n\n"
	if !strings.HasPrefix(screens[1], head) || !strings.Contains(screens[2], "TCP  192.0.2.100:80                     2       20") {
		t.Errorf("screens %q, want each after %q, the second with the second answer", screens[1:], head)
	}
}

// TestWatchStops checks the ends of the loop: a listing that fails stops
// it with ipvsadm's exit status and message, and a cancelled context
// (SIGINT, SIGTERM) stops it without an error.
func TestWatchStops(t *testing.T) {
	f := newFakeControl(t)
	f.exitAt = 2
	o, _ := parseWatch([]string{"-L", "-n", "--watch"})
	now := func() time.Time { return time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC) }
	immediate := func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	w := &watcher{client: controlClient(f.path), path: f.path, opts: o, now: now, tick: immediate}
	var out, errb bytes.Buffer
	err := w.run(context.Background(), &out, &errb)
	if exitCode(err, &errb) != 1 || errb.String() != "No such service\n" {
		t.Errorf("failed listing: %v, stderr %q; want exit 1 and ipvsadm's message", err, errb.String())
	}
	if o.interval != watchDefault {
		t.Errorf("--watch without an interval: %v, want %v", o.interval, watchDefault)
	}

	ctx, cancel := context.WithCancel(context.Background())
	f.exitAt = 0
	w.tick = func(time.Duration) <-chan time.Time { cancel(); return nil }
	out.Reset()
	if err := w.run(ctx, &out, &errb); err != nil {
		t.Errorf("cancelled: %v, want nil", err)
	}
	if n := strings.Count(out.String(), "\n--- ") + strings.Count(out.String()[:4], "--- "); n != 1 {
		t.Errorf("cancelled after the first refresh: %d refreshes printed", n)
	}
}

// TestWatchCommandLine runs `udr admin -L -n --watch 0.1 --count 3` as a
// user would, against the fake control API.
func TestWatchCommandLine(t *testing.T) {
	f := newFakeControl(t)
	var out, errb bytes.Buffer
	err := adminWith([]string{"--control", f.path, "-L", "-n", "--watch", "0.1", "--count", "3"}, nil, &out, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if n := strings.Count(out.String(), "--- "); n != 3 {
		t.Errorf("%d refreshes, want 3:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "TCP  192.0.2.100:80                     3       30        0     3000") {
		t.Errorf("third refresh's rates missing:\n%s", out.String())
	}
}

func TestWatchBadCommandLine(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "--watch"},                    // no -L
		{"-L", "--watch", "0"},               // interval too short
		{"-L", "--watch=7200"},               // too long
		{"-L", "--watch", "--count", "0"},    // count
		{"-L", "--watch", "--count"},         // count missing
		{"-L", "--watch", "--count", "many"}, // count
		{"-L", "--watch=abc"},                // interval
	} {
		if _, err := parseWatch(args); exitCode(err, &bytes.Buffer{}) != 2 {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestNoDaemon: udr status and udr admin --watch with nothing serving the
// socket exit 2 with a message naming it.
func TestNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"status", "--control", sock},
		{"status", "--control", sock, "-j"},
		{"admin", "--control", sock, "-L", "-n", "--watch", "1", "--count", "2"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"udr"}, args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "cannot reach the udr daemon at "+sock) || out.Len() != 0 {
			t.Errorf("udr %s: exit %d, stdout %q, stderr %q; want 2 and the socket named", strings.Join(args, " "), code, out.String(), errb.String())
		}
	}
}
