//go:build linux

package health

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProbeOutOfDescriptors runs real TCP checks of a listening server
// while the process has no descriptor left: socket() fails with EMFILE,
// and the server must stay up, its checks counted as unknown. When
// descriptors are free again the same checks pass.
func TestProbeOutOfDescriptors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reports []string
	c, err := New(Config{}, func(t Target, up bool, reason string) {
		reports = append(reports, t.Server.String()+" "+reason)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check := CheckConfig{Interval: 5 * time.Second, Timeout: 5 * time.Second, Fall: 2}
	tg := Target{Service: web, Server: ln.Addr().(*net.TCPAddr).AddrPort(), Check: check}
	if err := c.Set([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	tg = c.Status()[0].Target // with the defaults filled in
	probe := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), check.Timeout)
		defer cancel()
		c.finish(tg, c.probe(ctx, tg))
	}

	var unknown []error
	func() {
		release := exhaustDescriptors(t)
		defer release()
		for range 4 {
			ctx, cancel := context.WithTimeout(context.Background(), check.Timeout)
			err := c.probe(ctx, tg)
			cancel()
			unknown = append(unknown, err)
			c.finish(tg, err)
		}
	}()
	t.Logf("checks without descriptors: %v", unknown)
	for _, err := range unknown {
		if err == nil || !strings.Contains(err.Error(), "too many open files") {
			t.Fatalf("check without descriptors: %v, want too many open files", err)
		}
	}
	st := c.Status()[0]
	if len(reports) != 0 || !st.Up {
		t.Fatalf("after 4 checks without descriptors: reports %q, status %+v; want no report, up", reports, st)
	}
	if st.Unknown != 4 || st.Checks != 0 {
		t.Errorf("after 4 checks without descriptors: status %+v, want 4 unknown, 0 checks", st)
	}
	probe()
	if st := c.Status()[0]; !st.Up || st.Checks != 1 || st.LastError != "" {
		t.Fatalf("check with descriptors free: %+v, want a passed check", st)
	}
}

// exhaustDescriptors lowers the soft RLIMIT_NOFILE to just above the
// descriptors open now and fills the rest with /dev/null, so that the
// next socket() or open() fails with EMFILE. release undoes both.
func exhaustDescriptors(t *testing.T) (release func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(len(ents)) + 16
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fds []int
	release = func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	}
	for range lim.Cur {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EMFILE {
			return release
		}
		if err != nil {
			release()
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	release()
	t.Fatalf("%d descriptors opened under a limit of %d without EMFILE", len(fds), lim.Cur)
	return nil
}
