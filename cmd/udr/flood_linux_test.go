//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// The flood test's bounds.
const (
	floodCapacity = 32768
	floodFor      = 10 * time.Second
	floodMax      = 30_000_000 // frames: the generator stops at this count or at floodFor
	// floodTuples is the least the generator sends, however long it takes
	// (up to floodMaxTime): a generator slowed down by a loaded machine or
	// the race detector must still fill every worker's share of the table
	// several times over, or the test measures nothing.
	floodTuples  = 4 * floodCapacity
	floodMaxTime = 60 * time.Second
	floodLong    = 20 // long connections
	floodHTTP    = 50 // HTTP clients
	// floodRSS bounds udr's resident memory during the flood (about 80 MiB
	// at start, its rings included): its table is allocated at start, and
	// a flood must not make anything grow.
	floodRSS  = 128 << 20
	echoPort  = 7
	echoEvery = 1500 * time.Millisecond
)

// TestPrivilegedFlood: 10 s of spoofed SYNs and SYN+ACK pairs (a SYN then an
// ACK per tuple) from 198.51.100.0/24 and 203.0.113.0/24 to the VIP's port
// 80, sent as fast as a generator in its own process and namespace can,
// against `udr run --capacity 32768`, while 20 long TCP connections echo a
// line every 1.5 s through it and 50 HTTP clients open a connection per
// request. Every long connection survives, at least 99 % of the requests
// succeed, the table never holds more than its capacity (and was full: it
// evicted), and udr's RSS stays under floodRSS. Without the eviction order
// of conntrack/doc.go, 0 of 20 long connections survived. It runs with the
// defences off, and with --drop-entry 1 --secure-tcp 1, which must turn on.
//
// The generator runs at a low CPU priority (nice 10): on a small machine
// a generator that takes a CPU from the director makes the kernel drop
// frames at the director's socket, real ones as much as the flood's,
// which measures the machine, not the table. At its full rate with the
// CPU left over, the flood fills the table in its first second and turns
// it over about once a second (the test asks for one turn at least); on a
// machine busy with other tests, or with the race detector slowing it,
// the generator goes on past floodFor until it has sent floodTuples.
func TestPrivilegedFlood(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"auto defences", []string{"--drop-entry", "1", "--secure-tcp", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) { flood(t, bin, tc.args...) })
	}
}

func flood(t *testing.T, bin udrBinary, args ...string) {
	lab := newLab(t, "flood", drlab.Options{})
	gen, err := lab.AddHost("gen")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(gen, "eth0", netip.MustParsePrefix("192.0.2.60/24")); err != nil {
		t.Fatal(err)
	}
	if err := lab.Client.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	for _, rs := range lab.RS {
		startEcho(t, rs)
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte(`-A -t 192.0.2.100:80 -s wrr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
-A -t 192.0.2.100:7 -s wrr
-a -t 192.0.2.100:7 -r 192.0.2.11:7 -g -w 1
-a -t 192.0.2.100:7 -r 192.0.2.12:7 -g -w 1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, append([]string{"--iface", "eth0", "--rules", rules, "--control", sock,
		"--metrics", daemonMetrics, "--capacity", strconv.Itoa(floodCapacity)}, args...)...)
	c := drlab.HTTPClient(lab.Client, floodRequestTimeout)
	for i, deadline := 0, time.Now().Add(daemonEventTimeout); i < 2; {
		if _, err := drlab.Get(c, "http://192.0.2.100/"); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("GET before the flood: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		i++
	}
	vipMAC := neighbor(t, lab.Client, drlab.VIP)
	metrics := drlab.HTTPClient(lab.Director, daemonEventTimeout)

	// The long connections: open, and echoing, for 2 s before the flood,
	// so that they have carried traffic over time.
	longs := make([]*echoConn, floodLong)
	for i := range longs {
		longs[i] = dialEcho(t, lab.Client, i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var longWG sync.WaitGroup
	for _, e := range longs {
		longWG.Go(func() { e.run(ctx) })
	}
	time.Sleep(2 * time.Second)
	for _, e := range longs {
		if err := e.failed(); err != nil {
			t.Fatalf("before the flood: %v", err)
		}
	}

	pid := d.cmd.Process.Pid
	rssBefore := rss(t, pid)
	rssMax := rssBefore
	genOut := startGenerator(t, gen, vipMAC)
	floodStart := time.Now()

	// The HTTP clients, during the flood.
	var ok200, failed atomic.Int64
	var errMu sync.Mutex
	var firstErrs []error
	var httpWG sync.WaitGroup
	httpCtx, httpStop := context.WithCancel(ctx)
	defer httpStop()
	for range floodHTTP {
		httpWG.Go(func() {
			for n := 0; httpCtx.Err() == nil && n < 10_000; n++ {
				if _, err := drlab.Get(c, "http://192.0.2.100/"); err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err)
					}
					errMu.Unlock()
					continue
				}
				ok200.Add(1)
			}
		})
	}

	// Watch the table and udr while the flood runs.
	var maxConns float64
	defending := false
	for watching := true; watching; {
		select {
		case <-genOut.done:
			watching = false
			httpStop()
		default:
			if time.Since(floodStart) > floodMaxTime+30*time.Second {
				t.Fatal("the generator did not stop")
			}
		}
		m := scrape(t, metrics)
		maxConns = max(maxConns, m["udr_conntrack_entries"])
		defending = defending || m["udr_conntrack_defending_workers"] > 0
		rssMax = max(rssMax, rss(t, pid))
		time.Sleep(200 * time.Millisecond)
	}
	httpWG.Wait()
	sent := genOut.wait(t)

	// After the flood, every long connection echoes once more.
	time.Sleep(echoEvery + 500*time.Millisecond)
	cancel()
	longWG.Wait()
	var lost []string
	for _, e := range longs {
		if err := e.failed(); err != nil {
			lost = append(lost, err.Error())
		}
	}
	m := scrape(t, metrics)
	total := ok200.Load() + failed.Load()
	t.Logf("generator: %s; udr: %.0f frames forwarded, %.0f dropped for no connection, %.0f kernel drops",
		sent, m["udr_frames_forwarded_total"], m[`udr_frames_dropped_total{reason="no-conn"}`], m[`udr_socket_kernel_drops_total{direction="rx"}`])
	t.Logf("table: at most %.0f of %d entries, %.0f evictions, %.0f dropped by the defences; udr RSS %d MiB before the flood, at most %d MiB",
		maxConns, floodCapacity, m["udr_conntrack_evictions_total"], m["udr_conntrack_defense_dropped_total"], rssBefore>>20, rssMax>>20)
	t.Logf("HTTP: %d of %d requests succeeded (first errors: %v); long connections: %d of %d survived",
		ok200.Load(), total, errors.Join(firstErrs...), floodLong-len(lost), floodLong)

	if len(lost) > 0 {
		t.Errorf("%d of %d long connections lost; first: %s", len(lost), floodLong, lost[0])
	}
	if total == 0 || float64(ok200.Load()) < 0.99*float64(total) {
		t.Errorf("%d of %d HTTP requests succeeded, want >= 99%%; first errors: %v", ok200.Load(), total, errors.Join(firstErrs...))
	}
	if maxConns > floodCapacity {
		t.Errorf("the table held %.0f entries, capacity %d", maxConns, floodCapacity)
	}
	if ev := m["udr_conntrack_evictions_total"]; ev < floodCapacity {
		t.Errorf("only %.0f evictions: the flood did not fill the table", ev)
	}
	if len(args) > 0 && !defending {
		t.Error("the automatic defences never turned on")
	}
	if rssMax > floodRSS {
		t.Errorf("udr's RSS reached %d MiB during the flood, bound %d MiB", rssMax>>20, floodRSS>>20)
	}
}

// neighbor returns h's neighbour entry's MAC for ip.
func neighbor(t *testing.T, h *netlab.Host, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	neighs, err := h.Netlink().NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr
		}
	}
	t.Fatalf("%s has no MAC for %s", h.Name(), ip)
	return nil
}

// scrape returns udr's metrics without labels or with their labels as
// written, e.g. udr_frames_dropped_total{reason="no-conn"}.
func scrape(t *testing.T, c *http.Client) map[string]float64 {
	t.Helper()
	resp, err := c.Get("http://" + daemonMetrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// floodRequestTimeout leaves room for a SYN sent three times (1 s, then
// 2 s later): frames the flood crowds out of the director's socket are lost
// to real clients too.
const floodRequestTimeout = 10 * time.Second

// startEcho serves TCP echo on rs's port 7 until the test ends.
func startEcho(t *testing.T, rs *netlab.Host) {
	t.Helper()
	var ln net.Listener
	if err := rs.Run(func() error {
		var err error
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(echoPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// echoConn is one long connection: every echoEvery it sends a line and
// reads it back, until its context ends; the first failure stops it.
// Between lines it is idle, as long-lived connections mostly are.
type echoConn struct {
	id  int
	c   net.Conn
	br  *bufio.Reader
	mu  sync.Mutex
	err error
}

func dialEcho(t *testing.T, h *netlab.Host, id int) *echoConn {
	t.Helper()
	var c net.Conn
	if err := h.Run(func() error {
		var err error
		c, err = net.DialTimeout("tcp", "192.0.2.100:"+strconv.Itoa(echoPort), daemonEventTimeout)
		return err
	}); err != nil {
		t.Fatalf("long connection %d: %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	return &echoConn{id: id, c: c, br: bufio.NewReader(c)}
}

func (e *echoConn) run(ctx context.Context) {
	tick := time.NewTicker(echoEvery)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		if err := e.echo(seq); err != nil {
			e.mu.Lock()
			e.err = err
			e.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// echo sends line seq and reads it back. The deadline is generous: a lost
// frame costs a retransmission, but a connection whose entry is gone never
// gets through again.
func (e *echoConn) echo(seq int) error {
	line := fmt.Sprintf("connection %d line %d\n", e.id, seq)
	if err := e.c.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(e.c, line); err != nil {
		return fmt.Errorf("long connection %d (%s), line %d: %w", e.id, e.c.LocalAddr(), seq, err)
	}
	got, err := e.br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("long connection %d (%s), line %d: %w", e.id, e.c.LocalAddr(), seq, err)
	}
	if got != line {
		return fmt.Errorf("long connection %d: echoed %q, sent %q", e.id, got, line)
	}
	return nil
}

func (e *echoConn) failed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// rss returns process pid's resident set size in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS: %v", err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// generator is the flood's process: this test binary running
// TestFloodGenerator in the generator's namespace.
type generator struct {
	done chan struct{}
	out  strings.Builder
	err  error
}

func startGenerator(t *testing.T, gen *netlab.Host, dst net.HardwareAddr) *generator {
	t.Helper()
	cmd := gen.Command("nice", "-n", "10", os.Args[0], "-test.run=^TestFloodGenerator$", "-test.v")
	cmd.Env = append(os.Environ(), "UDR_FLOOD_GENERATOR="+dst.String())
	g := &generator{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &g.out, &g.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the generator: %v", err)
	}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	return g
}

// wait returns the generator's report once it has exited.
func (g *generator) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(floodMaxTime + 30*time.Second):
		t.Fatal("the generator did not stop")
	}
	for line := range strings.Lines(g.out.String()) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "flood: "); ok {
			if g.err != nil {
				t.Fatalf("generator: %v: %s", g.err, g.out.String())
			}
			return s
		}
	}
	t.Fatalf("generator: %v, no report: %s", g.err, g.out.String())
	return ""
}

// TestFloodGenerator is the flood test's generator, run as its own process
// in the generator's namespace (UDR_FLOOD_GENERATOR holds the VIP's MAC):
// for floodFor, and on until it has sent floodTuples (but no longer than
// floodMaxTime), or floodMax frames, whichever comes first, spoofed tuples to
// the VIP's port 80 from 198.51.100.1-254 and 203.0.113.1-254, every other
// one a SYN alone and the others a SYN then an ACK, sent as fast as one
// AF_PACKET socket takes them.
func TestFloodGenerator(t *testing.T) {
	mac := os.Getenv("UDR_FLOOD_GENERATOR")
	if mac == "" {
		t.Skip("the generator of TestPrivilegedFlood: runs only as its subprocess")
	}
	dst, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	f := make([]byte, 60)
	copy(f[0:6], dst)
	copy(f[6:12], ifi.HardwareAddr)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	vip := drlab.VIP.As4()
	var sent, tuples, errs int
	start := time.Now()
	deadline, limit := start.Add(floodFor), start.Add(floodMaxTime)
	more := func() bool {
		now := time.Now()
		return now.Before(limit) && (now.Before(deadline) || tuples < floodTuples)
	}
	for sent < floodMax && (sent%1024 != 0 || more()) {
		i := tuples
		tuples++
		src := [4]byte{198, 51, 100, byte(1 + i%254)}
		if i/254%2 == 1 {
			src = [4]byte{203, 0, 113, byte(1 + i%254)}
		}
		sport := uint16(1024 + i/508%64000)
		flags := []byte{0x02}
		if i%2 == 1 {
			flags = []byte{0x02, 0x10}
		}
		for _, fl := range flags {
			floodFrame(f, src, vip, sport, fl)
			if _, err := unix.Write(fd, f); err != nil {
				errs++ // ENOBUFS when the link is full: the next one
				continue
			}
			sent++
		}
	}
	el := time.Since(start)
	fmt.Printf("flood: %d frames (%d tuples) in %v, %.0f frames/s, %d refused\n",
		sent, tuples, el.Round(time.Millisecond), float64(sent)/el.Seconds(), errs)
}

// floodFrame writes into f (60 bytes, Ethernet header set) an IPv4 TCP
// segment with flags from src:sport to vip:80.
func floodFrame(f []byte, src, vip [4]byte, sport uint16, flags byte) {
	ip := f[14:34]
	clear(f[14:])
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[4:], sport)
	ip[8] = 64
	ip[9] = unix.IPPROTO_TCP
	copy(ip[12:16], src[:])
	copy(ip[16:20], vip[:])
	binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], uint32(sport)<<16|1) // seq
	if flags&0x10 != 0 {
		binary.BigEndian.PutUint32(tcp[4:], uint32(sport)<<16|2)
		binary.BigEndian.PutUint32(tcp[8:], 1) // ack
	}
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	binary.BigEndian.PutUint16(tcp[16:], checksum.Finish(checksum.Add(checksum.Pseudo(src[:], vip[:], unix.IPPROTO_TCP, 20), tcp)))
}
