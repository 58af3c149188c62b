package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLocalError(t *testing.T) {
	dialErr := func(call string, errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(call, errno)}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "socket EMFILE", err: dialErr("socket", syscall.EMFILE), want: true},
		{name: "socket ENFILE", err: dialErr("socket", syscall.ENFILE), want: true},
		{name: "sendto ENOBUFS, wrapped", err: fmt.Errorf("dr check: send SYN: %w", dialErr("sendto", syscall.ENOBUFS)), want: true},
		{name: "ENOMEM", err: dialErr("socket", syscall.ENOMEM), want: true},
		{name: "connect EADDRNOTAVAIL: no local port", err: dialErr("connect", syscall.EADDRNOTAVAIL), want: true},
		{name: "namespace handle", err: fmt.Errorf("get network namespace: %w", syscall.EMFILE), want: true},
		{name: "connection refused", err: dialErr("connect", syscall.ECONNREFUSED)},
		{name: "host unreachable", err: dialErr("connect", syscall.EHOSTUNREACH)},
		{name: "timeout", err: context.DeadlineExceeded},
		{name: "status", err: errors.New("GET http://192.0.2.11/: status 500, want 200")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LocalError(tt.err); got != tt.want {
				t.Fatalf("LocalError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestCheckerUnknown checks that a check the checker could not run (out
// of descriptors) changes nothing: the server neither falls nor rises, its
// run of failures is neither broken nor extended, and each such result is
// counted and told to Config.Unknown.
func TestCheckerUnknown(t *testing.T) {
	emfile := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	var results []error // what the next checks return, in order
	var reports, unknowns []string
	c, err := New(Config{Unknown: func(t Target, err error, run uint64) {
		unknowns = append(unknowns, fmt.Sprintf("%s run=%d: %v", t.Server, run, err))
	}}, func(t Target, up bool, reason string) {
		reports = append(reports, fmt.Sprintf("%s up=%v: %s", t.Server, up, reason))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.probe = func(context.Context, Target) error {
		err := results[0]
		results = results[1:]
		return err
	}
	check := CheckConfig{Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 2}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: check}}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	run := func(errs ...error) {
		t.Helper()
		for _, err := range errs {
			results = []error{err}
			if n := step(c, now); n != 1 {
				t.Fatalf("%d checks ran, want 1", n)
			}
			now = now.Add(check.Interval)
		}
	}

	// Ten checks that could not run: the server stays up.
	run(emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile)
	st := c.Status()[0]
	if len(reports) != 0 || !st.Up || st.Unknown != 10 || st.Checks != 0 {
		t.Fatalf("after 10 checks out of descriptors: reports %q, status %+v; want none, up, 10 unknown, 0 checks", reports, st)
	}
	if want := "unknown: dial tcp: socket: too many open files"; st.LastError != want {
		t.Errorf("LastError = %q, want %q", st.LastError, want)
	}
	if len(unknowns) != 10 || unknowns[0] != "192.0.2.11:80 run=1: dial tcp: socket: too many open files" || unknowns[9][:20] != "192.0.2.11:80 run=10" {
		t.Errorf("Unknown calls = %q, want 10 numbered 1..10", unknowns)
	}

	// A failure, an unknown, a failure: Fall (2) failures in a row.
	run(refused, emfile)
	if len(reports) != 0 {
		t.Fatalf("one failure and an unknown result reported %q", reports)
	}
	run(refused)
	want := []string{"192.0.2.11:80 up=false: 2 consecutive checks failed, last: dial tcp: connect: connection refused"}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Fatalf("reports (-want +got):\n%s", diff)
	}
	// Down, unknown results do not bring it back either.
	run(nil, emfile, emfile, nil)
	want = append(want, "192.0.2.11:80 up=true: 2 consecutive checks passed")
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Fatalf("reports (-want +got):\n%s", diff)
	}
	if st := c.Status()[0]; st.Unknown != 13 || st.Checks != 4 || st.LastError != "" {
		t.Errorf("status %+v, want 13 unknown, 4 checks, no error", st)
	}
	if got := unknowns[len(unknowns)-1]; got[:19] != "192.0.2.11:80 run=2" {
		t.Errorf("last Unknown call %q, want run=2: a known result restarts the count", got)
	}
}
