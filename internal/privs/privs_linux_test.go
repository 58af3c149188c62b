//go:build linux

package privs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSetString(t *testing.T) {
	for _, tt := range []struct {
		s    Set
		want string
	}{
		{0, "none"},
		{Of(unix.CAP_NET_RAW, unix.CAP_NET_ADMIN), "cap_net_admin,cap_net_raw"},
		{Of(0, 40, 41), "cap_chown,cap_checkpoint_restore,cap_41"},
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint64(tt.s), got, tt.want)
		}
	}
}

func TestWithin(t *testing.T) {
	keep := Of(unix.CAP_NET_RAW, unix.CAP_NET_ADMIN)
	done := State{Effective: keep, Permitted: keep, Bounding: keep, NoNewPrivs: true}
	for _, tt := range []struct {
		name string
		st   State
		want bool
	}{
		{"restricted", done, true},
		{"fewer than kept", State{Effective: Of(unix.CAP_NET_RAW), Permitted: Of(unix.CAP_NET_RAW), Bounding: keep, NoNewPrivs: true}, true},
		{"no no_new_privs", State{Effective: keep, Permitted: keep, Bounding: keep}, false},
		{"more permitted", State{Effective: keep, Permitted: keep | Of(unix.CAP_SYS_ADMIN), Bounding: keep, NoNewPrivs: true}, false},
		{"inheritable", State{Effective: keep, Permitted: keep, Inheritable: Of(unix.CAP_SYS_ADMIN), Bounding: keep, NoNewPrivs: true}, false},
		{"ambient", State{Effective: keep, Permitted: keep, Ambient: Of(unix.CAP_NET_RAW, unix.CAP_KILL), Bounding: keep, NoNewPrivs: true}, false},
		// Without CAP_SETPCAP the bounding set cannot shrink, and
		// no_new_privs keeps execve from granting what it holds.
		{"full bounding, no setpcap", State{Effective: keep, Permitted: keep, Bounding: ^Set(0) >> 23, NoNewPrivs: true}, true},
	} {
		if got := tt.st.Within(keep); got != tt.want {
			t.Errorf("%s: %s: Within = %v, want %v", tt.name, tt.st, got, tt.want)
		}
	}
}

// childEnv makes the test binary the program that TestPrivilegedRestrict
// restricts.
const childEnv = "UDR_PRIVS_TEST_CHILD"

// TestPrivilegedRestrict runs this test binary as root with
// TestRestrictChild: Restrict re-executes it, and every thread it has
// afterwards (several, started before and after) holds only the kept
// capabilities, in the bounding set too, with no_new_privs.
func TestPrivilegedRestrict(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestPrivilegedRestrict needs root")
		}
		t.Skip("skipping: needs root, to have capabilities to give up")
	}
	out := filepath.Join(t.TempDir(), "status")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestrictChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	status, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("child wrote nothing: %v\n%s", err, b)
	}
	threads := strings.Split(strings.TrimSpace(string(status)), "\n\n")
	if len(threads) < 2 {
		t.Errorf("the child had %d threads, want several", len(threads))
	}
	for _, th := range threads {
		for _, want := range []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000003000", "CapEff:\t0000000000003000",
			"CapBnd:\t0000000000003000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1"} {
			if !strings.Contains(th, want) {
				t.Errorf("a thread of the restricted child lacks %q:\n%s", want, th)
			}
		}
	}
	if !strings.Contains(string(b), "restricted: effective=cap_net_admin,cap_net_raw") {
		t.Errorf("the child's output does not show its restricted state:\n%s", b)
	}
}

// TestRestrictChild is the program of TestPrivilegedRestrict.
func TestRestrictChild(t *testing.T) {
	out := os.Getenv(childEnv)
	if out == "" {
		t.Skip("run by TestPrivilegedRestrict")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Threads before: goroutines locked to threads of their own.
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lockedUntil(stop)
		}()
	}
	st, err := Restrict(Of(unix.CAP_NET_RAW, unix.CAP_NET_ADMIN), nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("restricted: %s\n", st)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lockedUntil(stop)
		}()
	}
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, tid := range tids {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", tid.Name(), "status"))
		if err != nil {
			continue
		}
		sb.Write(b)
		sb.WriteString("\n")
	}
	close(stop)
	wg.Wait()
	if err := os.WriteFile(out, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lockedUntil holds a thread of its own until stop is closed.
func lockedUntil(stop <-chan struct{}) {
	runtime.LockOSThread()
	<-stop
}
