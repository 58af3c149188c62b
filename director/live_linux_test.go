//go:build linux

package director_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/service"
)

// TestPrivilegedLiveChanges: 100 clients, a new connection per request,
// while ipvsadm commands change the service through Director.Apply: real
// servers added, a weight raised, one quiesced, drained and deleted, the
// timeouts set. No request may fail, and in each phase the servers share
// the new connections as the weights of that phase say.
func TestPrivilegedLiveChanges(t *testing.T) {
	netlab.Privileged(t)
	const (
		clients     = 100
		maxDuration = 20 * time.Second
		maxRequests = 300_000
		drainLimit  = 3 * time.Second // rs2's connections end in milliseconds
		tolerance   = 0.15
	)
	const svc = "-t " + vipPort
	l := newLab(t, "live", drlab.Options{RealServers: 3})
	cs := loadClients(t, l, clients)
	l.start(1, "-A "+svc+" -s wrr", "-a "+svc+" -r 192.0.2.11:80 -g -w 1")
	key := service.Key{Proto: service.TCP, Addr: drlab.VIP, Port: 80}
	rs2Key := admin.DestKey{Service: key, Dest: netip.MustParseAddrPort("192.0.2.12:80")}

	// The script. Each step's change takes effect between its start and
	// its end; a phase is the time between two steps.
	steps := []struct {
		at      time.Duration
		args    string
		weights map[string]int // the phase the step begins
	}{
		{0, "", map[string]int{"rs1": 1}},
		{3 * time.Second, "-a " + svc + " -r 192.0.2.12:80 -g -w 1", map[string]int{"rs1": 1, "rs2": 1}},
		{6 * time.Second, "-a " + svc + " -r 192.0.2.13:80 -g -w 1", map[string]int{"rs1": 1, "rs2": 1, "rs3": 1}},
		{9 * time.Second, "-e " + svc + " -r 192.0.2.11:80 -g -w 3", map[string]int{"rs1": 3, "rs2": 1, "rs3": 1}},
		{12 * time.Second, "-e " + svc + " -r 192.0.2.12:80 -g -w 0", map[string]int{"rs1": 3, "rs2": 0, "rs3": 1}},
		{15 * time.Second, "-d " + svc + " -r 192.0.2.12:80", map[string]int{"rs1": 3, "rs2": 0, "rs3": 1}},
		{16 * time.Second, "--set 60 30 60", map[string]int{"rs1": 3, "rs2": 0, "rs3": 1}},
	}
	starts := make([]time.Duration, len(steps)) // since begin
	ends := make([]time.Duration, len(steps))
	var drainTime time.Duration // from quiescing rs2 to its last active connection's end
	var fin []admin.Conn        // the connection list just before --set
	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	defer cancel()
	begin := time.Now()
	scriptErr := make(chan error, 1)
	go func() {
		err := func() error {
			for i := 1; i < len(steps); i++ {
				st := steps[i]
				if err := sleepUntil(ctx, begin.Add(st.at)); err != nil {
					return fmt.Errorf("step %d (%s): %w", i, st.args, err)
				}
				if strings.HasPrefix(st.args, "--set") {
					s, err := l.d.State(true)
					if err != nil {
						return err
					}
					fin = s.Conns
				}
				cmd, err := admin.ParseCommand(strings.Fields(st.args))
				if err != nil {
					return fmt.Errorf("parse %q: %w", st.args, err)
				}
				starts[i] = time.Since(begin)
				// Apply acts in the director's namespace itself.
				if err := l.d.Apply(cmd); err != nil {
					return fmt.Errorf("apply %q: %w", st.args, err)
				}
				ends[i] = time.Since(begin)
				if strings.HasSuffix(st.args, "-w 0") {
					// rs2 is deleted only once its connections are over.
					if drainTime, err = awaitDrained(ctx, l, rs2Key, drainLimit); err != nil {
						return err
					}
				}
			}
			return nil
		}()
		if err != nil {
			cancel()
		}
		scriptErr <- err
	}()
	runs := runLoad(ctx, cs, maxRequests, begin)
	if err := <-scriptErr; err != nil {
		t.Fatalf("script: %v", err)
	}
	t.Logf("rs2 had no active connection %v after it was quiesced", drainTime.Round(time.Millisecond))

	// A request counts in a phase if it began and ended within it: its
	// SYN was scheduled then. Requests that straddle a step, or whose SYN
	// was sent again, count for the failures only.
	phase := func(r request) int {
		for p := len(steps) - 1; p >= 0; p-- {
			if r.start >= ends[p] {
				if p+1 < len(steps) && r.start+r.took >= starts[p+1] {
					return -1
				}
				return p
			}
		}
		return -1
	}
	served := make([]map[string]int, len(steps))
	for i := range served {
		served[i] = make(map[string]int)
	}
	var total, failed int
	var failures, slow []string
	var last time.Duration // the last request's start
	for _, run := range runs {
		for _, r := range run {
			total++
			last = max(last, r.start)
			if r.took > 900*time.Millisecond {
				slow = append(slow, r.start.Round(time.Millisecond).String())
			}
			if r.err != nil {
				failed++
				if len(failures) < 10 {
					failures = append(failures, fmt.Sprintf("started at %v from %v, failed after %v: %v",
						r.start.Round(time.Millisecond), r.local, r.took.Round(time.Millisecond), r.err))
				}
				continue
			}
			if p := phase(r); p >= 0 {
				served[p][r.server]++
			}
		}
	}
	t.Logf("%d requests (%d failed) by %d clients in %v: %.0f requests/s; %d slower than 900 ms (a SYN sent again), started at %s",
		total, failed, clients, last.Round(time.Millisecond), float64(total)/last.Seconds(), len(slow), strings.Join(slow, " "))
	t.Logf("step times: starts %v, ends %v", starts, ends)
	if failed > 0 {
		t.Errorf("%d of %d requests failed; first:\n%s", failed, total, strings.Join(failures, "\n"))
	}
	for i, st := range steps {
		until := last
		if i+1 < len(steps) {
			until = starts[i+1]
		}
		n := 0
		for _, c := range served[i] {
			n += c
		}
		t.Logf("phase %d [%v, %v) after %q: %d requests (%.0f/s), served %v",
			i, ends[i].Round(time.Millisecond), until.Round(time.Millisecond), st.args, n, float64(n)/(until-ends[i]).Seconds(), served[i])
		if n == 0 {
			t.Errorf("phase %d (after %q): no request", i, st.args)
		}
		sum := 0
		for _, w := range st.weights {
			sum += w
		}
		for name, w := range st.weights {
			want := float64(n) * float64(w) / float64(sum)
			got := float64(served[i][name])
			if w == 0 && got != 0 {
				t.Errorf("phase %d (after %q): %s, weight 0, got %d new connections, want none", i, st.args, name, served[i][name])
			} else if got < (1-tolerance)*want || got > (1+tolerance)*want {
				t.Errorf("phase %d (after %q): %s served %d of %d, want %.0f ±%.0f%% (weight %d of %d)", i, st.args, name, served[i][name], n, want, tolerance*100, w, sum)
			}
		}
		if other := n - served[i]["rs1"] - served[i]["rs2"] - served[i]["rs3"]; other != 0 {
			t.Errorf("phase %d: %d answers from no real server: %v", i, other, served[i])
		}
	}
	checkTimeouts(t, l, fin)
}

// awaitDrained polls the director's state until the real server k has no
// active connection, for at most limit, and returns when that was.
func awaitDrained(ctx context.Context, l *lab, k admin.DestKey, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	for {
		st, err := l.d.State(false)
		if err != nil {
			return 0, err
		}
		info, ok := st.Dests[k]
		if !ok {
			return 0, fmt.Errorf("%v: not in the table", k.Dest)
		}
		if info.ActiveConn == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%v still has %d active connections %v after it was quiesced", k.Dest, info.ActiveConn, limit)
		}
		if err := sleepUntil(ctx, time.Now().Add(20*time.Millisecond)); err != nil {
			return 0, err
		}
	}
}

// checkTimeouts checks that --set 60 30 60 changed the listing and the
// connection table: before, FIN_WAIT entries expire within 120 s; after,
// new ones within 30 s and ESTABLISHED ones within 60 s.
func checkTimeouts(t *testing.T, l *lab, before []admin.Conn) {
	t.Helper()
	st, err := l.d.State(true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (service.Timeouts{TCP: 60, TCPFin: 30, UDP: 60}); st.Config.Timeouts != want {
		t.Errorf("timeouts after --set 60 30 60 = %+v, want %+v", st.Config.Timeouts, want)
	}
	var out, errb strings.Builder
	if code := admin.Run([]string{"-L", "--timeout"}, l.d, nil, &out, &errb, admin.Options{}); code != 0 || out.String() != "Timeout (tcp tcpfin udp): 60 30 60\n" {
		t.Errorf("ipvsadm -L --timeout = %q (exit %d, stderr %q), want %q", out.String(), code, errb.String(), "Timeout (tcp tcpfin udp): 60 30 60\n")
	}
	maxExpires := func(conns []admin.Conn, state string) (uint32, int) {
		var m uint32
		n := 0
		for _, c := range conns {
			if c.State == state {
				m = max(m, c.Expires)
				n++
			}
		}
		return m, n
	}
	if m, n := maxExpires(before, "FIN_WAIT"); n == 0 || m <= 30 || m > 120 {
		t.Errorf("before --set: %d FIN_WAIT entries expiring within %d s; want some, with the default 120 s timeout", n, m)
	}
	// The listing is taken when the load is over, about 4 s after --set:
	// every FIN_WAIT entry whose last packet came after --set expires
	// within 30 s, and the requests' connections last milliseconds, so no
	// ESTABLISHED entry can be older than --set.
	var fresh int
	for _, c := range st.Conns {
		switch {
		case c.State == "ESTABLISHED" && c.Expires > 60:
			t.Errorf("after --set 60 30 60: %v → %v ESTABLISHED expires in %d s, want at most 60", c.Client, c.Dest, c.Expires)
		case c.State == "FIN_WAIT" && c.Expires <= 30:
			fresh++
		}
	}
	if fresh == 0 {
		t.Errorf("after --set 60 30 60: no FIN_WAIT entry expires within 30 s")
	}
	t.Logf("connection table: %d entries before --set, %d after; %d FIN_WAIT entries with the new 30 s timeout", len(before), len(st.Conns), fresh)
}

// A request made by runLoad.
type request struct {
	start, took time.Duration // start since the run began
	local       netip.AddrPort
	server      string // the answer, when err is nil
	err         error
}

// runLoad makes requests with each of clients concurrently, one at a time
// per client, until ctx is done or maxRequests were made, and returns each
// client's requests in order.
func runLoad(ctx context.Context, clients []*loadClient, maxRequests int64, begin time.Time) [][]request {
	var issued atomic.Int64
	runs := make([][]request, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil && issued.Add(1) <= maxRequests {
				t0 := time.Now()
				body, err := drlab.Get(c.http, "http://192.0.2.100/")
				runs[i] = append(runs[i], request{start: t0.Sub(begin), took: time.Since(t0), local: c.lastLocal(), server: body, err: err})
			}
		})
	}
	wg.Wait()
	return runs
}

// loadClient is one load client: an HTTP client with an address of its
// own, and a new connection, from the next port, per request.
type loadClient struct {
	http  *http.Client
	addr  netip.Addr
	ports atomic.Uint32                  // the last port used
	local atomic.Pointer[netip.AddrPort] // of the last connection
}

func (c *loadClient) lastLocal() netip.AddrPort {
	if p := c.local.Load(); p != nil {
		return *p
	}
	return netip.AddrPort{}
}

// Client ports of loadClient, by order of use.
const (
	firstClientPort = 1024
	lastClientPort  = 65535
)

// dial opens the connection of a request from c's next port in the
// client's namespace h.
func (c *loadClient) dial(ctx context.Context, h *netlab.Host, network, address string) (net.Conn, error) {
	c.local.Store(nil)
	port := c.ports.Add(1)
	if port > lastClientPort {
		return nil, fmt.Errorf("client %v: every port from %d to %d was used", c.addr, firstClientPort, lastClientPort)
	}
	local := netip.AddrPortFrom(c.addr, uint16(port))
	d := &net.Dialer{Timeout: requestTimeout, LocalAddr: net.TCPAddrFromAddrPort(local)}
	var conn net.Conn
	err := h.Run(func() error {
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err == nil {
		c.local.Store(&local)
	}
	return conn, err
}

// loadClients gives l's client n more addresses, 192.0.2.150 onwards, and
// returns a load client for each.
//
// Why an address each, and ports chosen in order: in DR a connection's
// entry stays in FIN_WAIT for tcp_fin (120 s) after the client's FIN, and
// with the kernel's default conn_reuse_mode=1 a SYN from the same client
// address and port goes to that entry's real server, whatever the weights
// say now, or is dropped if that server was deleted (IPVS.md 2.7, 2.9;
// udr does the same). Linux's own choice of ports comes back to a port
// within seconds at a few hundred connections a second, even when
// connect() chooses it (IP_BIND_ADDRESS_NO_PORT). Each client here uses a
// port once: 64512 connections at most, more than a run makes.
func loadClients(t *testing.T, l *lab, n int) []*loadClient {
	t.Helper()
	if n > 100 {
		t.Fatalf("loadClients(%d): at most 100 addresses, 192.0.2.150..249", n)
	}
	cs := make([]*loadClient, n)
	for i := range cs {
		c := &loadClient{addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(150 + i)})}
		c.ports.Store(firstClientPort - 1)
		if err := l.Client.AddAddrs("eth0", netip.PrefixFrom(c.addr, 24)); err != nil {
			t.Fatal(err)
		}
		dial := func(ctx context.Context, network, address string) (net.Conn, error) {
			return c.dial(ctx, l.Client, network, address)
		}
		c.http = &http.Client{
			Timeout:   requestTimeout,
			Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
		}
		cs[i] = c
	}
	return cs
}

// sleepUntil waits until deadline or until ctx is done.
func sleepUntil(ctx context.Context, deadline time.Time) error {
	tm := time.NewTimer(time.Until(deadline))
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("the run ended first"), ctx.Err())
	}
}
