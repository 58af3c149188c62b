//go:build linux

package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
)

// The restart test's services: wrr and wlc, with real servers of unequal
// weights, on ports the lab's HTTP servers leave free.
const restartRules = `-A -t 192.0.2.100:7001 -s wrr
-a -t 192.0.2.100:7001 -r 192.0.2.11:7001 -g -w 2
-a -t 192.0.2.100:7001 -r 192.0.2.12:7001 -g -w 1
-A -t 192.0.2.100:7002 -s wlc
-a -t 192.0.2.100:7002 -r 192.0.2.11:7002 -g -w 1
-a -t 192.0.2.100:7002 -r 192.0.2.12:7002 -g -w 3
`

const (
	restartConns    = 20 // long connections per service
	restartClients  = 10 // client addresses they come from
	exchangeEvery   = 250 * time.Millisecond
	exchangeTimeout = 30 * time.Second // an exchange across the restart waits for TCP's retransmission
	carryOnTimeout  = 60 * time.Second
)

// echoServer serves the restart test's connections on a real server: it
// greets each with its name, then answers every line with its name and
// the line.
func echoServer(t *testing.T, rs *netlab.Host, name string, ports ...int) {
	t.Helper()
	var lns []net.Listener
	err := rs.Run(func() error {
		for _, p := range ports {
			ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					if _, err := fmt.Fprintf(c, "%s\n", name); err != nil {
						return
					}
					r := bufio.NewReader(c)
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if _, err := fmt.Fprintf(c, "%s %s", name, line); err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// longConn is one long connection of the client, with the real server
// that greeted it.
type longConn struct {
	id     int
	c      net.Conn
	r      *bufio.Reader
	server string
	seq    int
	done   atomic.Int64 // exchanges completed
}

// exchange sends one line with fresh random data and checks that the
// same real server echoes it, whole.
func (lc *longConn) exchange() error {
	var b [16]byte
	rand.Read(b[:])
	lc.seq++
	line := fmt.Sprintf("%d %d %s\n", lc.id, lc.seq, hex.EncodeToString(b[:]))
	lc.c.SetDeadline(time.Now().Add(exchangeTimeout))
	if _, err := lc.c.Write([]byte(line)); err != nil {
		return fmt.Errorf("connection %d (%s): write: %w", lc.id, lc.server, err)
	}
	got, err := lc.r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("connection %d (%s): no echo of exchange %d: %w", lc.id, lc.server, lc.seq, err)
	}
	if want := lc.server + " " + line; got != want {
		return fmt.Errorf("connection %d: echo %q, want %q", lc.id, got, want)
	}
	lc.done.Add(1)
	return nil
}

// dialLong opens the long connections: restartConns to each port, from
// restartClients client addresses in turn, and reads each greeting.
func dialLong(t *testing.T, lab *drlab.Lab, clients []netip.Addr, ports ...int) []*longConn {
	t.Helper()
	var out []*longConn
	err := lab.Client.Run(func() error {
		for _, port := range ports {
			for i := range restartConns {
				d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: clients[i%len(clients)].AsSlice()}}
				c, err := d.Dial("tcp4", netip.AddrPortFrom(drlab.VIP, uint16(port)).String())
				if err != nil {
					return fmt.Errorf("dial %s:%d from %v: %w", drlab.VIP, port, clients[i%len(clients)], err)
				}
				out = append(out, &longConn{id: len(out), c: c, r: bufio.NewReader(c)})
			}
		}
		return nil
	})
	t.Cleanup(func() {
		for _, lc := range out {
			lc.c.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, lc := range out {
		lc.c.SetDeadline(time.Now().Add(10 * time.Second))
		g, err := lc.r.ReadString('\n')
		if err != nil {
			t.Fatalf("connection %d: no greeting: %v", lc.id, err)
		}
		lc.server = strings.TrimSpace(g)
	}
	return out
}

// addClients gives the lab's client restartClients addresses more,
// 192.0.2.60 on, and returns them.
func addClients(t *testing.T, lab *drlab.Lab) []netip.Addr {
	t.Helper()
	var clients []netip.Addr
	var prefixes []netip.Prefix
	for i := range restartClients {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(60 + i)})
		clients = append(clients, a)
		prefixes = append(prefixes, netip.PrefixFrom(a, 24))
	}
	if err := lab.Client.AddAddrs("eth0", prefixes...); err != nil {
		t.Fatal(err)
	}
	return clients
}

// dialSpread is dialLong with one exchange checked on each connection; t
// fails unless the connections reach as many real servers as servers says.
func dialSpread(t *testing.T, lab *drlab.Lab, clients []netip.Addr, servers int, ports ...int) []*longConn {
	t.Helper()
	conns := dialLong(t, lab, clients, ports...)
	per := make(map[string]int)
	for _, lc := range conns {
		if err := lc.exchange(); err != nil {
			t.Fatal(err)
		}
		per[lc.server]++
	}
	if len(per) != servers {
		t.Fatalf("connections per real server %v: want all %d used", per, servers)
	}
	return conns
}

// exchanger runs an exchange on every connection every exchangeEvery
// until stop is closed; the first error of each connection is kept.
type exchanger struct {
	wg   sync.WaitGroup
	stop chan struct{}
	once sync.Once
	mu   sync.Mutex
	errs []error
}

func exchangeAll(conns []*longConn) *exchanger {
	x := &exchanger{stop: make(chan struct{})}
	for _, lc := range conns {
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			tick := time.NewTicker(exchangeEvery)
			defer tick.Stop()
			for {
				select {
				case <-x.stop:
					return
				case <-tick.C:
				}
				if err := lc.exchange(); err != nil {
					x.mu.Lock()
					x.errs = append(x.errs, err)
					x.mu.Unlock()
					return
				}
			}
		}()
	}
	return x
}

func (x *exchanger) end() []error {
	x.once.Do(func() { close(x.stop) })
	x.wg.Wait()
	return x.failed()
}

func (x *exchanger) failed() []error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]error(nil), x.errs...)
}

// waitCarryOn waits until every connection has completed n exchanges more
// than marks says, or one has failed.
func waitCarryOn(t *testing.T, x *exchanger, conns []*longConn, marks []int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(carryOnTimeout)
	for {
		if errs := x.failed(); len(errs) > 0 {
			t.Fatalf("%d of %d connections broke across the restart; first: %v", len(errs), len(conns), errors.Join(errs...))
		}
		behind := 0
		for i, lc := range conns {
			if lc.done.Load() < marks[i]+n {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections made no %d exchanges within %v of the restart", behind, len(conns), n, carryOnTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// markDone records in marks each connection's exchanges so far, for
// waitCarryOn.
func markDone(conns []*longConn, marks []int64) {
	for i, lc := range conns {
		marks[i] = lc.done.Load()
	}
}

// exchangeEach makes one more exchange on every connection, which checks
// that it still reaches its own real server, and fails t for each that
// does not, naming a reset as one. It returns how many failed.
func exchangeEach(t *testing.T, conns []*longConn) (failed int) {
	t.Helper()
	for _, lc := range conns {
		if err := lc.exchange(); err != nil {
			failed++
			if errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("reset: %v", err)
			} else {
				t.Error(err)
			}
		}
	}
	return failed
}

// restartDaemon is a daemon that the test stops, or that exits on its
// own after a hand-off.
type restartDaemon struct {
	*daemon
	once sync.Once
}

// stop sends SIGTERM and checks a clean exit (daemon.stop), once.
func (d *restartDaemon) stop(t *testing.T) { d.once.Do(func() { d.daemon.stop(t) }) }

// handedOff waits for the daemon to exit by itself, cleanly, after a
// hand-off.
func (d *restartDaemon) handedOff(t *testing.T) {
	t.Helper()
	d.once.Do(func() {
		select {
		case <-d.exited:
			if d.err != nil {
				t.Errorf("udr run after the hand-off: %v", d.err)
			}
		case <-time.After(daemonStopTimeout):
			d.cmd.Process.Kill()
			<-d.exited
			t.Errorf("udr run did not exit within %v of the hand-off", daemonStopTimeout)
		}
	})
}

// startRestartDaemon is startDaemon for a daemon the test stops itself,
// or that a hand-off ends; at the test's end it is stopped if it still
// runs.
func startRestartDaemon(t *testing.T, lab *drlab.Lab, bin udrBinary, sock string, args ...string) *restartDaemon {
	t.Helper()
	return startSyncDaemon(t, lab.Director, bin, sock, args...)
}

// waitReachable waits until d has logged both real servers reachable.
func waitReachable(t *testing.T, d *daemon) {
	t.Helper()
	from := 0
	for range 2 {
		line, err := d.log.wait(from, "real server reachable", daemonEventTimeout, d.exited)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(d.log.String(), "\n") {
			if l == line {
				from = i + 1
				break
			}
		}
	}
}

// TestPrivilegedRestartKeepsConnections: 20 long connections through a wrr
// service and 20 through a wlc service, from 10 client addresses, carry on
// across SIGTERM and a new udr run with the same rules and state file:
// every one keeps exchanging data with the same real server, checked end
// to end, with no reset, and ipvsadm -L -n shows the same ActiveConn and
// InActConn. The first udr has two workers and the second three: the state
// file puts each connection in the worker the fanout now hands its client
// to.
func TestPrivilegedRestartKeepsConnections(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "restart")
	clients := addClients(t, lab)
	for i, rs := range lab.RS {
		echoServer(t, rs, fmt.Sprintf("rs%d", i+1), 7001, 7002)
	}
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(restartRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	state := filepath.Join(bin.dir, "udr.state")
	args := func(workers string) []string {
		return []string{"--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", "off", "--state", state, "--workers", workers}
	}
	old := startRestartDaemon(t, lab, bin, sock, args("2")...)
	waitReachable(t, old.daemon)

	conns := dialSpread(t, lab, clients, 2, 7001, 7002)
	listing := old.mustIpvsadm(t, "-L", "-n")
	x := exchangeAll(conns)
	defer x.end()
	marks := make([]int64, len(conns))
	markDone(conns, marks)
	waitCarryOn(t, x, conns, marks, 2)

	mark := old.log.len()
	old.stop(t)
	if _, err := old.log.wait(mark, "state saved", daemonEventTimeout, old.exited); err != nil {
		t.Fatalf("the stopping udr: %v", err)
	}
	markDone(conns, marks)

	nd := startRestartDaemon(t, lab, bin, sock, args("3")...)
	waitCarryOn(t, x, conns, marks, 3)
	line, err := nd.log.wait(0, "state taken over", daemonEventTimeout, nd.exited)
	if err != nil {
		t.Fatalf("the new udr: %v", err)
	}
	if want := fmt.Sprintf("taken=%d dropped=0 ", len(conns)); !strings.Contains(line, want) {
		t.Errorf("the new udr took over %q, want %q", line, want)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file still there after it was taken over: %v", err)
	}
	if got := nd.mustIpvsadm(t, "-L", "-n"); got != listing {
		t.Errorf("ipvsadm -L -n after the restart:\n%s\nwant, as before it:\n%s", got, listing)
	}

	// The hand-off: a new udr run --takeover while this one runs. The
	// running one stops forwarding, answers its table and exits; the
	// new one, with one worker, goes on.
	markDone(conns, marks)
	mark = nd.log.len()
	third := startRestartDaemon(t, lab, bin, sock, append(args("1"), "--takeover")...)
	nd.handedOff(t)
	if _, err := nd.log.wait(mark, "connection table handed to the new udr", daemonEventTimeout, nd.exited); err != nil {
		t.Errorf("the udr handing off: %v", err)
	}
	// The udr that handed over left the offloads off for the new one.
	var off host.Offloads
	if err := lab.Director.Run(func() (err error) { off, err = host.GetOffloads("eth0"); return err }); err != nil {
		t.Fatal(err)
	}
	if off != (host.Offloads{}) {
		t.Errorf("offloads after the hand-off: %+v, want all off for the udr that took over", off)
	}
	waitCarryOn(t, x, conns, marks, 3)
	line, err = third.log.wait(0, "state taken over from the running udr", daemonEventTimeout, third.exited)
	if err != nil {
		t.Fatalf("the udr taking over: %v", err)
	}
	if want := fmt.Sprintf("taken=%d dropped=0 ", len(conns)); !strings.Contains(line, want) {
		t.Errorf("the udr taking over took %q, want %q", line, want)
	}
	if errs := x.end(); len(errs) > 0 {
		t.Fatalf("connections broke: %v", errors.Join(errs...))
	}
	if got := third.mustIpvsadm(t, "-L", "-n"); got != listing {
		t.Errorf("ipvsadm -L -n after the hand-off:\n%s\nwant, as before it:\n%s", got, listing)
	}
	// Every connection still reaches its own real server (checked by
	// each echo) and none was reset.
	exchangeEach(t, conns)

	// A state file that was damaged is refused with a clear line, kept
	// aside, and udr starts with an empty table.
	third.stop(t)
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("the third udr left no state file: %v", err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fourth := startRestartDaemon(t, lab, bin, sock, args("1")...)
	if line, err := fourth.log.wait(0, "state file refused", daemonEventTimeout, fourth.exited); err != nil {
		t.Errorf("a damaged state file: %v", err)
	} else if !strings.Contains(line, "checksum mismatch") {
		t.Errorf("a damaged state file: %q, want the checksum named", line)
	}
	if _, err := os.Stat(state + ".rejected"); err != nil {
		t.Errorf("the refused state file was not kept aside: %v", err)
	}

	// A state file given by mistake (here the rules) is neither taken
	// nor replaced.
	fourth.stop(t)
	fifth := startRestartDaemon(t, lab, bin, sock, append(args("1"), "--state", rules)...)
	if _, err := fifth.log.wait(0, "not a udr state file", daemonEventTimeout, fifth.exited); err != nil {
		t.Errorf("--state naming the rules file: %v", err)
	}
	mark = fifth.log.len()
	fifth.stop(t)
	if _, err := fifth.log.wait(mark, "state not saved", daemonEventTimeout, fifth.exited); err != nil {
		t.Errorf("--state naming the rules file, at SIGTERM: %v", err)
	}
	if b, err := os.ReadFile(rules); err != nil || string(b) != restartRules {
		t.Errorf("the rules file after a udr ran with --state naming it: %q, %v", b, err)
	}
}
