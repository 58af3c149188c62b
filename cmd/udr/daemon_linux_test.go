//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// Time limits of the daemon tests. They bound waits for events that take
// milliseconds when udr works.
const (
	daemonStartTimeout = 20 * time.Second
	daemonStopTimeout  = 10 * time.Second
	daemonEventTimeout = 10 * time.Second
	commandTimeout     = 30 * time.Second
)

// daemonMetrics is the metrics address of the daemons under test, inside
// the director's own namespace, where nothing else listens.
const daemonMetrics = "127.0.0.1:9780"

// udrBinary is the udr command built for a test, and the ipvsadm symlink
// to it, in a directory that every user may traverse: the non-root checks
// execute it as nobody.
type udrBinary struct {
	dir, exe, ipvsadm string
}

// buildUDR builds cmd/udr into a t.TempDir() and links ipvsadm to it.
func buildUDR(t *testing.T) udrBinary {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent is 0700: open it for traversal only.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := udrBinary{dir: dir, exe: filepath.Join(dir, "udr"), ipvsadm: filepath.Join(dir, "ipvsadm")}
	out, err := exec.Command("go", "build", "-o", b.exe, "github.com/udr-lb/udr/cmd/udr").CombinedOutput()
	if err != nil {
		t.Fatalf("go build udr: %v\n%s", err, out)
	}
	if err := os.Symlink(b.exe, b.ipvsadm); err != nil {
		t.Fatal(err)
	}
	return b
}

// newDaemonLab is newLab with two real servers and IPv6.
func newDaemonLab(t *testing.T, name string) *drlab.Lab {
	t.Helper()
	return newLab(t, name, drlab.Options{RealServers: 2, IPv6: true})
}

// newLab builds the LVS-DR topology with opts. Its namespaces are removed
// when t ends, after every daemon started later has stopped, and t then
// fails if any of them is left.
func newLab(t *testing.T, name string, opts drlab.Options) *drlab.Lab {
	t.Helper()
	lab, err := drlab.New(name, opts)
	if err != nil {
		t.Fatalf("build lab %q: %v", name, err)
	}
	prefix := lab.Prefix()
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		if left := netlab.Leftovers(prefix); len(left) > 0 {
			t.Errorf("namespaces left after closing the lab: %q", left)
		}
	})
	return lab
}

// daemon is `udr run` as a subprocess in the lab director's namespace.
type daemon struct {
	bin     udrBinary
	sock    string
	cmd     *exec.Cmd
	log     *lineLog
	exited  chan struct{} // closed when the process has been waited for
	err     error         // of Wait, once exited is closed
	stopped bool          // stop has run: the test stopped it itself
}

// spawnDaemon starts argv, a command line that runs or execs udr run, in
// h's namespace with sock as its control socket, its output in the
// daemon's log; it does not wait for it to be running.
func spawnDaemon(t *testing.T, h *netlab.Host, bin udrBinary, sock string, argv ...string) *daemon {
	t.Helper()
	d := &daemon{bin: bin, sock: sock, log: newLineLog(), exited: make(chan struct{})}
	d.cmd = h.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start udr run: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	return d
}

// startDaemon runs `udr run ARGS...` in the director's namespace, whose
// control socket is sock, and waits for its "udr running" line. It stops the daemon (SIGTERM) when t ends,
// before the lab is closed, and fails t unless it then exits cleanly.
func startDaemon(t *testing.T, lab *drlab.Lab, bin udrBinary, sock string, args ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, lab, bin, sock, nil, args...)
}

// startDaemonWith is startDaemon with udr run started through wrap, a
// command and its arguments that execs the command line after them (a
// shell that sets a limit first); nil for none. The daemon's pid stays
// udr's.
func startDaemonWith(t *testing.T, lab *drlab.Lab, bin udrBinary, sock string, wrap []string, args ...string) *daemon {
	t.Helper()
	argv := append(append(append([]string{}, wrap...), bin.exe, "run"), args...)
	d := spawnDaemon(t, lab.Director, bin, sock, argv...)
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("udr run log:\n%s", d.log)
		}
	})
	if _, err := d.log.wait(0, "udr running", daemonStartTimeout, d.exited); err != nil {
		t.Fatalf("udr run %s: %v\n%s", strings.Join(args, " "), err, d.log)
	}
	return d
}

// stop sends SIGTERM (`ip netns exec` execs udr: the pid is udr's) and
// waits for a clean exit. A test may stop the daemon itself; the cleanup's
// stop then does nothing.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.stopped {
		return
	}
	d.stopped = true
	select {
	case <-d.exited:
		t.Errorf("udr run exited before the test ended: %v", d.err)
		return
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM udr run: %v", err)
	}
	select {
	case <-d.exited:
		if d.err != nil {
			t.Errorf("udr run after SIGTERM: %v", d.err)
		}
		if !strings.Contains(d.log.String(), "udr stopped") {
			t.Errorf("udr run exited without its \"udr stopped\" line")
		}
	case <-time.After(daemonStopTimeout):
		d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("udr run did not exit within %v of SIGTERM", daemonStopTimeout)
	}
}

// result is what one command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// ipvsadm runs the ipvsadm symlink with args, as root, with UDR_CONTROL
// naming the daemon's socket and stdin as its standard input.
func (d *daemon) ipvsadm(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCommand(t, stdin, nil, []string{"UDR_CONTROL=" + d.sock}, d.bin.ipvsadm, args...)
}

// admin runs `udr admin --control SOCK ARGS...` with the credentials cred
// (nil: root's).
func (d *daemon) admin(t *testing.T, cred *syscall.Credential, args ...string) result {
	t.Helper()
	return runCommand(t, "", cred, nil, d.bin.exe, append([]string{"admin", "--control", d.sock}, args...)...)
}

// mustIpvsadm runs ipvsadm with args and fails t unless it succeeds
// silently; it returns stdout.
func (d *daemon) mustIpvsadm(t *testing.T, args ...string) string {
	t.Helper()
	r := d.ipvsadm(t, "", args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("ipvsadm %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func runCommand(t *testing.T, stdin string, cred *syscall.Credential, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// lineLog collects a process's output line by line and lets a test wait
// for a line.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	grew    chan struct{} // closed, and replaced, when a line arrives
}

func newLineLog() *lineLog { return &lineLog{grew: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.grew)
		l.grew = make(chan struct{})
	}
	return len(p), nil
}

// len returns the number of complete lines so far: a mark for wait.
func (l *lineLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + string(l.partial)
}

// wait returns the first line from line number from on that contains s.
// It gives up after timeout, or when exited is closed (the process was
// waited for, so all its output is in) and no such line came.
func (l *lineLog) wait(from int, s string, timeout time.Duration, exited <-chan struct{}) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		line, grew := l.find(from, s)
		if line != "" {
			return line, nil
		}
		select {
		case <-grew:
		case <-exited:
			if line, _ := l.find(from, s); line != "" {
				return line, nil
			}
			return "", fmt.Errorf("the process exited without a line containing %q", s)
		case <-deadline.C:
			return "", fmt.Errorf("no line containing %q within %v", s, timeout)
		}
	}
}

// find returns the first line from line number from on that contains s, or
// "" and a channel closed when the next line arrives.
func (l *lineLog) find(from int, s string) (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines[min(from, len(l.lines)):] {
		if strings.Contains(line, s) {
			return line, nil
		}
	}
	return "", l.grew
}

// hostAddrs returns the addresses configured in h's namespace.
func hostAddrs(t *testing.T, h *netlab.Host) []netip.Addr {
	t.Helper()
	list, err := h.Netlink().AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("addresses of %s: %v", h.Name(), err)
	}
	var addrs []netip.Addr
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			addrs = append(addrs, ip.Unmap())
		}
	}
	return addrs
}

// needCurl skips t, or fails it when CI=true, unless curl is installed.
func needCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("curl is not installed (.ci/run installs the Debian package curl): %v", err)
		}
		t.Skipf("skipping: curl is not installed (apt-get install curl): %v", err)
	}
}
