//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/netlab"
)

// ecmpConns is how many long connections the ECMP test keeps open.
const ecmpConns = 200

// ecmpService is the metrics' name of the echo service.
var ecmpService = fmt.Sprintf("TCP %s:%d", bgpVIP, echoPort)

// dialVIP opens connection id from h to the VIP's echo port.
func dialVIP(t *testing.T, h *netlab.Host, id int) *echoConn {
	t.Helper()
	var c net.Conn
	if err := h.Run(func() error {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort(bgpVIP.String(), strconv.Itoa(echoPort)), daemonEventTimeout)
		return err
	}); err != nil {
		t.Fatalf("connection %d to %s: %v", id, bgpVIP, err)
	}
	t.Cleanup(func() { c.Close() })
	return &echoConn{id: id, c: c, br: bufio.NewReader(c)}
}

// newConnsSucceed opens n new connections from h, echoes a line on each
// and closes them.
func newConnsSucceed(t *testing.T, h *netlab.Host, n, firstID int) {
	t.Helper()
	for i := range n {
		e := dialVIP(t, h, firstID+i)
		if err := e.echo(0); err != nil {
			t.Errorf("new connection: %v", err)
		}
		e.c.Close()
	}
}

// serviceConns returns a director's udr_service_connections_total of the
// echo service: the connections it scheduled (or, mid-stream, took over).
func serviceConns(t *testing.T, h *netlab.Host) float64 {
	t.Helper()
	return scrape(t, metricsClient(h))[`udr_service_connections_total{service="`+ecmpService+`"}`]
}

// TestPrivilegedBGPECMP is the active-active acceptance test: a client
// behind a router running FRR, two udr directors that announce the VIP by
// BGP (keepalive 1 s, hold time 3 s), ECMP over both with the layer-4
// hash, three real servers, an mh service. 200 long connections, each
// exchanging lines checked end to end, spread over both directors; one
// director is killed (SIGKILL): the router drops its route within the
// hold time, and every connection goes on through the other director (mh
// picks the same real server there, mid-stream), new connections succeed;
// the director comes back, the router spreads over both again, and
// nothing breaks. Then the other director hangs (SIGSTOP): its session
// stays open, the router drops its route when the hold time expires, and
// again nothing breaks; it is killed and comes back. It reports the
// failover times and the connections lost.
func TestPrivilegedBGPECMP(t *testing.T) {
	// mh-port: the client's port is hashed too, so that one client's
	// connections spread over the real servers.
	ecmpAcceptance(t, "ecmp", "mh", "mh-port", "")
}

// TestPrivilegedBGPECMPSync is TestPrivilegedBGPECMP with a wlc service,
// whose picks depend on each director's own counts, and both sync daemons
// on both directors: the connections a director carried go on through the
// other because its master synced them there, and a director that comes
// back announces the VIP only once warm, with the table its peer sent it.
func TestPrivilegedBGPECMPSync(t *testing.T) {
	ecmpAcceptance(t, "ecmpsync", "wlc", "", "sync: {master: true, backup: true}\n")
}

// ecmpAcceptance runs the ECMP acceptance test with the service's
// scheduler sched and flags, and extra appended to both udr.yaml files.
func ecmpAcceptance(t *testing.T, name, sched, flags, extra string) {
	synced := extra != ""
	l := newBGPLab(t, name, 2)
	bin := buildUDR(t)
	dir := t.TempDir()
	var configs, socks [2]string
	var ds [2]*bgpDaemon
	for i := range 2 {
		configs[i] = filepath.Join(dir, fmt.Sprintf("udr%d.yaml", i+1))
		socks[i] = filepath.Join(dir, fmt.Sprintf("udr%d.sock", i+1))
		if err := os.WriteFile(configs[i], []byte(bgpConfig(dir, i+1, sched, flags, 1)+extra), 0o644); err != nil {
			t.Fatal(err)
		}
		ds[i] = startBGPDaemon(t, l.directors[i], bin, configs[i], socks[i])
	}
	l.waitGateways(t, "both directors announced", bgpRouteTimeout, 1, 2)

	conns := make([]*echoConn, ecmpConns)
	for i := range conns {
		conns[i] = dialVIP(t, l.Routed, i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, e := range conns {
		wg.Go(func() { e.run(ctx) })
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	t.Cleanup(stop)
	// lost counts the connections that failed so far, naming the first.
	lost := func() (int, error) {
		n, first := 0, error(nil)
		for _, e := range conns {
			if err := e.failed(); err != nil {
				if n == 0 {
					first = err
				}
				n++
			}
		}
		return n, first
	}
	// Every connection echoes a line each echoEvery: after two periods
	// each has carried data through its director.
	time.Sleep(2*echoEvery + 500*time.Millisecond)
	// The statistics follow the estimator's 2 s tick: poll until both
	// directors count every connection.
	var before [2]float64
	waitUntil(t, "the directors' statistics to count the connections", 3*daemonEventTimeout, func() bool {
		before = [2]float64{serviceConns(t, l.directors[0]), serviceConns(t, l.directors[1])}
		return before[0]+before[1] >= ecmpConns
	})
	for i, d := range ds {
		r := d.admin(t, "-L", "-n", "--stats")
		t.Logf("director%d (%s) udr admin -L -n --stats:\n%s", i+1, bgpDirectorAddr(i+1).Addr(), r.stdout)
	}
	t.Logf("connections scheduled: director1 %v, director2 %v", before[0], before[1])
	if before[0] == 0 || before[1] == 0 || before[0]+before[1] != ecmpConns {
		t.Errorf("the %d connections are not spread over both directors: %v and %v", ecmpConns, before[0], before[1])
	}
	if n, err := lost(); n > 0 {
		t.Fatalf("%d connections failed before the failover; the first: %v", n, err)
	}

	if synced {
		// Each director's master has sent its connections to the
		// other's backup (within 2 s, IPVS_SYNC_FLUSH_TIME).
		for i, d := range ds {
			waitUntil(t, fmt.Sprintf("director%d's table to hold every connection", i+1), 3*daemonEventTimeout, func() bool {
				return activeConns(t, d) >= ecmpConns
			})
		}
	}

	// SIGKILL director1: no withdrawal; its BGP socket is closed by the
	// kernel, so the router drops the route at once.
	killed := time.Now()
	if err := ds[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-ds[0].exited
	l.waitGateways(t, "director1's route dropped after SIGKILL", bgpRouteTimeout, 2)
	failover := time.Since(killed)
	t.Logf("failover: the router dropped director1's route %v after SIGKILL (hold time 3 s)", failover.Round(time.Millisecond))
	if failover > 10*time.Second {
		t.Errorf("failover took %v, want the hold time (3 s) and a few seconds of slack at most", failover)
	}
	// Every connection sends again: those that were on director1 go
	// through director2 now.
	time.Sleep(3*echoEvery + time.Second)
	if n, err := lost(); n > 0 {
		t.Errorf("%d of %d connections lost at the failover; the first: %v", n, ecmpConns, err)
	}
	if synced {
		// The synced entries are director2's own now: every one of
		// the 200 connections counts in its ActiveConn.
		if n := activeConns(t, ds[1]); n < ecmpConns {
			t.Errorf("director2's table holds %d active connections after the failover, want the %d", n, ecmpConns)
		}
	} else {
		// With mh, director2 schedules each of them mid-stream.
		var took float64
		waitUntil(t, "director2's statistics to count the connections it took over", 3*daemonEventTimeout, func() bool {
			took = serviceConns(t, l.directors[1]) - before[1]
			return took >= before[0]
		})
		t.Logf("director2 took over %v connections mid-stream (director1 had %v)", took, before[0])
	}
	newConnsSucceed(t, l.Routed, 20, 1000)

	// director1 comes back and rejoins.
	ds[0] = startBGPDaemon(t, l.directors[0], bin, configs[0], socks[0])
	rejoin := l.waitGateways(t, "director1 announced again", bgpRouteTimeout, 1, 2)
	t.Logf("rejoin: the router routes via both directors %v after director1 started", rejoin.Round(time.Millisecond))
	if synced {
		// It got the table before it announced the VIP.
		line, err := ds[0].log.wait(0, "resync: received the peers' connection table", daemonEventTimeout, ds[0].exited)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("director1: %s", line)
		lines := strings.Split(ds[0].log.String(), "\n")
		got := slices.IndexFunc(lines, func(s string) bool { return strings.Contains(s, "resync: received the peers' connection table") })
		announced := slices.IndexFunc(lines, func(s string) bool { return strings.Contains(s, "bgp route announced") })
		if got < 0 || announced < got {
			t.Errorf("director1 announced the VIP (log line %d) before its resync came (line %d)", announced, got)
		}
		if n := activeConns(t, ds[0]); n < ecmpConns {
			t.Errorf("director1's table holds %d active connections after its resync, want the %d", n, ecmpConns)
		}
	}
	time.Sleep(3*echoEvery + time.Second)
	newConnsSucceed(t, l.Routed, 20, 2000)
	// The statistics follow the estimator's 2 s tick: poll.
	var back float64
	waitUntil(t, "director1 to schedule connections after it rejoined", 3*daemonEventTimeout, func() bool {
		back = serviceConns(t, l.directors[0])
		return back > 0
	})
	t.Logf("director1 scheduled %v connections after it rejoined (new ones, and with mh mid-stream ones)", back)
	if n, err := lost(); n > 0 {
		t.Fatalf("%d of %d connections lost after director1 rejoined; the first: %v", n, ecmpConns, err)
	}

	// A director that hangs (SIGSTOP) keeps its BGP session open: the
	// router drops its route only when the hold time expires, and the
	// connections it carried go on through the other director.
	hung := time.Now()
	if err := ds[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	l.waitGateways(t, "director2's route dropped when its hold time expired", bgpRouteTimeout, 1)
	holdFailover := time.Since(hung)
	t.Logf("failover of a hung director: the router dropped director2's route %v after SIGSTOP (hold time 3 s)", holdFailover.Round(time.Millisecond))
	if holdFailover > 10*time.Second {
		t.Errorf("failover of a hung director took %v, want the hold time (3 s) and a few seconds of slack at most", holdFailover)
	}
	time.Sleep(3*echoEvery + time.Second)
	newConnsSucceed(t, l.Routed, 20, 3000)
	if err := ds[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-ds[1].exited
	ds[1] = startBGPDaemon(t, l.directors[1], bin, configs[1], socks[1])
	l.waitGateways(t, "director2 announced again", bgpRouteTimeout, 1, 2)
	time.Sleep(3*echoEvery + time.Second)
	newConnsSucceed(t, l.Routed, 20, 4000)
	stop()
	n, err := lost()
	t.Logf("connections lost: %d of %d", n, ecmpConns)
	if n > 0 {
		t.Errorf("%d of %d connections lost; the first: %v", n, ecmpConns, err)
	}
}

// activeConns sums the ActiveConn column of a director's udr admin -L -n.
func activeConns(t *testing.T, d *bgpDaemon) int {
	t.Helper()
	r := d.admin(t, "-L", "-n")
	n := 0
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "->" {
			if v, err := strconv.Atoi(f[4]); err == nil {
				n += v
			}
		}
	}
	return n
}
