//go:build linux

package director_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
	"golang.org/x/sys/unix"
)

// The walkthrough's service and real servers, as ipvsadm writes them.
const (
	vipPort = "192.0.2.100:80"
	rs1     = "192.0.2.11"
	rs2     = "192.0.2.12"
)

// Time limits of the end-to-end tests. They bound waits for events that
// arrive in milliseconds when udr works.
const (
	requestTimeout = 5 * time.Second
	eventTimeout   = 10 * time.Second
	stopTimeout    = 5 * time.Second
)

// lab is one end-to-end test's world: a drlab topology, the rules file and
// an in-process director in the director's namespace.
type lab struct {
	*drlab.Lab
	t     *testing.T
	rules string // path of the ipvsadm-save rules file
	log   *logWatch
	d     *director.Director
}

// newLab builds the topology name with o. Its namespaces are removed when t
// ends, and t then fails if any of them is left. Call netlab.Privileged
// first.
func newLab(t *testing.T, name string, o drlab.Options) *lab {
	t.Helper()
	dl, err := drlab.New(name, o)
	if err != nil {
		t.Fatalf("build lab %q: %v", name, err)
	}
	prefix := dl.Prefix()
	// Cleanups run last-registered first: this check runs after Close.
	t.Cleanup(func() {
		if left := netlab.Leftovers(prefix); len(left) > 0 {
			t.Errorf("namespaces left after closing the lab: %q", left)
		}
	})
	t.Cleanup(func() {
		if err := dl.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return &lab{Lab: dl, t: t, rules: filepath.Join(t.TempDir(), "rules")}
}

// writeRules replaces the rules file with lines.
func (l *lab) writeRules(lines ...string) {
	l.t.Helper()
	if err := os.WriteFile(l.rules, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// start writes rules, starts the director on the director's eth0 and waits
// until it knows the MAC of each of the rules' nServers real servers. The
// director stops before the lab is closed.
func (l *lab) start(nServers int, rules ...string) {
	l.t.Helper()
	l.writeRules(rules...)
	l.startWith(nServers, director.Config{Settings: director.Settings{Iface: "eth0"}, Rules: l.rules})
}

// startWith starts a director with cfg (its Logger set to the test's log
// watcher) and waits until it has found nServers real servers' MACs.
func (l *lab) startWith(nServers int, cfg director.Config) {
	l.t.Helper()
	l.log = newLogWatch(l.t)
	cfg = withTestWorkers(l.t, withTestIO(l.t, cfg))
	cfg.Logger = slog.New(l.log.handler())
	err := l.Director.Run(func() error {
		var err error
		l.d, err = director.New(cfg)
		return err
	})
	if err != nil {
		l.log.stop()
		l.t.Fatalf("director.New: %v", err)
	}
	checkIO(l.t, l.d, cfg)
	if want := workersOf(l.t, l.d.Settings().Workers); l.d.Workers() != want {
		l.t.Fatalf("director runs %d workers, asked for %d", l.d.Workers(), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.d.Run(ctx) }()
	l.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				l.t.Errorf("director Run: %v", err)
			}
			l.t.Logf("director verdicts: %s", verdicts(l.d.Stats()))
		case <-time.After(stopTimeout):
			l.t.Errorf("director Run did not return within %v of its context's end", stopTimeout)
		}
		if err := l.d.Close(); err != nil {
			l.t.Errorf("director Close: %v", err)
		}
		l.log.stop()
	})
	if err := l.log.await("real server reachable", nServers, eventTimeout); err != nil {
		l.t.Fatal(err)
	}
}

// reload rewrites the rules file with rules and reloads the director from
// inside its namespace, as SIGHUP does in `udr run`.
func (l *lab) reload(rules ...string) {
	l.t.Helper()
	l.writeRules(rules...)
	if err := l.Director.Run(l.d.Reload); err != nil {
		l.t.Fatalf("Reload: %v", err)
	}
}

// gets fetches url n times with c, a new connection each, and returns the
// answers (real server names).
func gets(t *testing.T, c *http.Client, url string, n int) []string {
	t.Helper()
	var got []string
	for i := range n {
		body, err := drlab.Get(c, url)
		if err != nil {
			t.Fatalf("GET %s (%d of %d): %v", url, i+1, n, err)
		}
		got = append(got, body)
	}
	return got
}

// neighborMAC returns h's neighbour table entry for ip, if it has one with
// a link-layer address.
func neighborMAC(t *testing.T, h *netlab.Host, ip netip.Addr) (net.HardwareAddr, bool) {
	t.Helper()
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := h.Netlink().NeighList(0, family)
	if err != nil {
		t.Fatalf("neighbours of %s: %v", h.Name(), err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr, true
		}
	}
	return nil, false
}

// keepAlive is one HTTP/1.1 connection that carries many requests.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

// dialKeepAlive opens a TCP connection to addr from h's namespace.
func dialKeepAlive(t *testing.T, h *netlab.Host, addr string) *keepAlive {
	t.Helper()
	var c net.Conn
	err := h.Run(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, requestTimeout)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

// get sends one request for path on the connection and returns the answer
// without its trailing newline. It may be called from any goroutine, one
// call at a time.
func (k *keepAlive) get(path string) (string, error) {
	if err := k.c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: 192.0.2.100\r\n\r\n", path); err != nil {
		return "", fmt.Errorf("GET %s on %s: %w", path, k.c.LocalAddr(), err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s on %s: %w", path, k.c.LocalAddr(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s on %s: %w", path, k.c.LocalAddr(), err)
	}
	if resp.Close {
		return "", fmt.Errorf("GET %s on %s: the server closes the connection", path, k.c.LocalAddr())
	}
	return strings.TrimSpace(string(b)), nil
}

// logWatch is the director's slog destination: it shows each record with
// t.Logf and lets the test wait for a message.
type logWatch struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool          // t may be gone: drop records
	msgs    []string      // every record's message, in order
	grew    chan struct{} // closed and replaced when msgs grows
}

func newLogWatch(t testing.TB) *logWatch {
	return &logWatch{t: t, grew: make(chan struct{})}
}

func (w *logWatch) handler() slog.Handler { return &logHandler{w: w} }

func (w *logWatch) add(msg, line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.t.Logf("director: %s", line)
	w.msgs = append(w.msgs, msg)
	close(w.grew)
	w.grew = make(chan struct{})
}

// stop drops every later record; call it before the test ends.
func (w *logWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// await waits until n records in all carry the message msg.
func (w *logWatch) await(msg string, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		got, grew := w.count(msg), w.grew
		w.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-grew:
		case <-deadline.C:
			return fmt.Errorf("director logged %q %d times within %v, want %d", msg, got, timeout, n)
		}
	}
}

func (w *logWatch) count(msg string) int {
	n := 0
	for _, m := range w.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// logHandler formats records as "LEVEL message key=value ..." for a
// logWatch. Groups are flattened: the director uses none.
type logHandler struct {
	w     *logWatch
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.w.add(r.Message, b.String())
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{w: h.w, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }

// verdicts formats the non-zero verdict counters as "name=count ...".
func verdicts(st forwarder.Stats) string {
	var parts []string
	for v, n := range st.Verdicts {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", forwarder.Verdict(v), n))
		}
	}
	return strings.Join(parts, " ")
}

// withTestIO returns cfg with the receive backend that UDR_TEST_IO names
// (ring, ring-v2, socket or auto), as if given by --io, unless cfg gives one: the
// namespace tests run with each backend that way. Unset, cfg is unchanged.
func withTestIO(t testing.TB, cfg director.Config) director.Config {
	t.Helper()
	s := os.Getenv("UDR_TEST_IO")
	if s == "" || cfg.Given&director.SetIO != 0 {
		return cfg
	}
	io, err := forwarder.ParseIO(s)
	if err != nil {
		t.Fatalf("UDR_TEST_IO: %v", err)
	}
	cfg.IO = io
	cfg.Given |= director.SetIO
	return cfg
}

// withTestWorkers returns cfg with the number of workers that
// UDR_TEST_WORKERS gives, as if by --workers, unless cfg gives one: the
// namespace tests run with one worker and with several that way. Unset,
// cfg is unchanged.
func withTestWorkers(t testing.TB, cfg director.Config) director.Config {
	t.Helper()
	s := os.Getenv("UDR_TEST_WORKERS")
	if s == "" || cfg.Given&director.SetWorkers != 0 {
		return cfg
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("UDR_TEST_WORKERS=%q: want a number of workers, 1 or more", s)
	}
	cfg.Workers = n
	cfg.Given |= director.SetWorkers
	return cfg
}

// workersOf returns how many packet workers Settings.Workers n asks for:
// director.WorkersAuto (a udr.yaml with no workers key) one per CPU in the
// process's affinity mask but one, 0 one.
func workersOf(t testing.TB, n int) int {
	t.Helper()
	if n != director.WorkersAuto {
		return max(n, 1)
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	return max(cpus.Count()-1, 1)
}

// checkIO fails t unless d receives with the backend cfg asked for.
func checkIO(t testing.TB, d *director.Director, cfg director.Config) {
	t.Helper()
	if cfg.Given&director.SetIO != 0 && cfg.IO != forwarder.IOAuto && d.IO() != cfg.IO {
		t.Fatalf("director receives with %s, asked for %s", d.IO(), cfg.IO)
	}
}
