//go:build linux

package director_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedConcurrentLoad: 200 clients open a new connection per
// request for 10 s against wrr 2:1. No request may fail, and the servers
// share the connections 2:1.
func TestPrivilegedConcurrentLoad(t *testing.T) {
	netlab.Privileged(t)
	const (
		clients     = 200
		maxDuration = 10 * time.Second
		maxRequests = 200_000
	)
	l := newLab(t, "load", drlab.Options{})
	// The servers close first (Connection: close), so the client keeps no
	// TIME_WAIT; a wide port range still keeps ports from running out.
	if err := l.Client.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	l.start(2,
		"-A -t "+vipPort+" -s wrr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 2",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	c := drlab.HTTPClient(l.Client, requestTimeout)

	type tally struct {
		served map[string]int
		failed int
		errs   []error // the first few
		slow   int     // requests slower than 900 ms: a SYN retransmitted
		max    time.Duration
	}
	tallies := make([]tally, clients)
	var issued atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range tallies {
		wg.Go(func() {
			tl := &tallies[i]
			tl.served = make(map[string]int)
			for ctx.Err() == nil && issued.Add(1) <= maxRequests {
				t0 := time.Now()
				body, err := drlab.Get(c, "http://192.0.2.100/")
				d := time.Since(t0)
				tl.max = max(tl.max, d)
				if d > 900*time.Millisecond {
					tl.slow++
				}
				if err != nil {
					tl.failed++
					if len(tl.errs) < 3 {
						tl.errs = append(tl.errs, err)
					}
					continue
				}
				tl.served[body]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	served := make(map[string]int)
	var total, failed, slow int
	var slowest time.Duration
	var errs []error
	for _, tl := range tallies {
		for name, n := range tl.served {
			served[name] += n
			total += n
		}
		failed += tl.failed
		slow += tl.slow
		slowest = max(slowest, tl.max)
		errs = append(errs, tl.errs...)
	}
	t.Logf("%d requests (%d failed) by %d clients in %v: %.0f requests/s; served %v; %d slower than 900 ms, slowest %v",
		total+failed, failed, clients, elapsed.Round(time.Millisecond), float64(total+failed)/elapsed.Seconds(), served,
		slow, slowest.Round(time.Millisecond))
	// TCP hides lost frames from the requests: count the SYNs the client
	// had to send again.
	t.Logf("client SYN retransmissions: %d", tcpExtCounter(t, l.Client, "TCPSynRetrans"))
	if failed > 0 {
		t.Errorf("%d of %d requests failed; first errors: %v", failed, total+failed, errors.Join(errs...))
	}
	if total == 0 {
		t.Fatal("no request succeeded")
	}
	for name, weight := range map[string]int{"rs1": 2, "rs2": 1} {
		want := float64(total) * float64(weight) / 3
		if got := float64(served[name]); got < 0.9*want || got > 1.1*want {
			t.Errorf("%s served %d of %d requests, want %.0f ±10%% (weight %d of 3)", name, served[name], total, want, weight)
		}
	}
	if other := total - served["rs1"] - served["rs2"]; other != 0 {
		t.Errorf("%d answers named neither rs1 nor rs2: %v", other, served)
	}
}

// TestPrivilegedForwardingOnNoDuplicates: with IP forwarding on in the
// director's kernel, each connection's SYN still reaches exactly one real
// server exactly once, and it is udr's copy (TTL untouched), not one the
// kernel routed (TTL decremented).
func TestPrivilegedForwardingOnNoDuplicates(t *testing.T) {
	netlab.Privileged(t)
	const requests = 50
	l := newLab(t, "fwd", drlab.Options{})
	if err := l.Director.Run(func() error {
		for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/eth0/forwarding"} {
			if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rules := []string{
		"-A -t " + vipPort + " -s rr",
		"-a -t " + vipPort + " -r " + rs1 + ":80 -g -w 1",
		"-a -t " + vipPort + " -r " + rs2 + ":80 -g -w 1",
	}

	// With the director's own MAC answering for the VIP, the kernel would
	// route the VIP traffic too: udr refuses to start so.
	l.writeRules(rules...)
	err := l.Director.Run(func() error {
		d, err := director.New(director.Config{Settings: director.Settings{Iface: "eth0", VIPMAC: "iface"}, Rules: l.rules, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			d.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "forwarding") {
		t.Errorf("director.New with VIPMAC \"iface\" and forwarding on: error %v, want a refusal naming forwarding", err)
	}

	dirMAC, err := l.Director.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	caps := make([]*synCapture, len(l.RS))
	for i, rs := range l.RS {
		caps[i] = captureSYNs(t, rs)
	}
	l.start(2, rules...)
	c := drlab.HTTPClient(l.Client, requestTimeout)
	served := map[string]int{}
	for _, name := range gets(t, c, "http://192.0.2.100/", requests) {
		served[name]++
	}

	for i, cp := range caps {
		name := l.RS[i].Name()
		syns := cp.stop(t)
		ports := map[uint16]int{}
		for _, s := range syns {
			ports[s.srcPort]++
			if s.ttl != 64 {
				t.Errorf("%s: SYN from port %d with TTL %d, want 64: the director's kernel routed it, not udr", name, s.srcPort, s.ttl)
			}
			if !bytes.Equal(s.srcMAC[:], dirMAC) {
				t.Errorf("%s: SYN from port %d sent by %v, want the director %v", name, s.srcPort, net.HardwareAddr(s.srcMAC[:]), dirMAC)
			}
		}
		for port, n := range ports {
			if n > 1 {
				t.Errorf("%s: SYN from client port %d arrived %d times, want once", name, port, n)
			}
		}
		t.Logf("%s: %d SYNs from %d client ports, %d connections served", name, len(syns), len(ports), served[name])
		if len(syns) != served[name] {
			t.Errorf("%s: %d SYNs to %s arrived, %d connections served", name, len(syns), vipPort, served[name])
		}
	}
	if served["rs1"] != requests/2 || served["rs2"] != requests/2 {
		t.Errorf("rr over %d requests served %v, want %d each", requests, served, requests/2)
	}
}

// synSeen is one TCP SYN to the VIP's port 80 that reached a real server.
type synSeen struct {
	srcMAC  [6]byte
	ttl     uint8
	srcPort uint16
}

// synCapture records, from an AF_PACKET socket on a real server's eth0,
// the SYNs to VIP:80 addressed to that server's MAC: the frames its IP
// stack accepts.
type synCapture struct {
	conn *packet.Conn
	done chan struct{}
	mu   sync.Mutex
	syns []synSeen
}

func captureSYNs(t *testing.T, rs *netlab.Host) *synCapture {
	t.Helper()
	mac, err := rs.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	cp := &synCapture{done: make(chan struct{})}
	err = rs.Run(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		cp.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", rs.Name(), err)
	}
	t.Cleanup(func() { cp.conn.Close() })
	go cp.read([6]byte(mac))
	return cp
}

func (cp *synCapture) read(mac [6]byte) {
	defer close(cp.done)
	b := make([]byte, 2048)
	for {
		n, _, err := cp.conn.ReadFrom(b)
		if err != nil {
			return
		}
		if s, ok := parseSYN(b[:n], mac); ok {
			cp.mu.Lock()
			cp.syns = append(cp.syns, s)
			cp.mu.Unlock()
		}
	}
}

// parseSYN returns the SYN (without ACK) to 192.0.2.100:80 in frame, if
// frame is one sent to mac.
func parseSYN(frame []byte, mac [6]byte) (synSeen, bool) {
	const eth = 14
	if len(frame) < eth+20 || [6]byte(frame[0:6]) != mac || binary.BigEndian.Uint16(frame[12:14]) != unix.ETH_P_IP {
		return synSeen{}, false
	}
	ip := frame[eth:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != unix.IPPROTO_TCP || [4]byte(ip[16:20]) != [4]byte{192, 0, 2, 100} || len(ip) < ihl+14 {
		return synSeen{}, false
	}
	tcp := ip[ihl:]
	const syn, ack = 0x02, 0x10
	if binary.BigEndian.Uint16(tcp[2:4]) != 80 || tcp[13]&(syn|ack) != syn {
		return synSeen{}, false
	}
	return synSeen{srcMAC: [6]byte(frame[6:12]), ttl: ip[8], srcPort: binary.BigEndian.Uint16(tcp[0:2])}, true
}

// stop ends the capture and returns the SYNs seen. A duplicate would
// arrive within microseconds of the original; the last connection's gets
// a quiet period of 200 ms to show up.
func (cp *synCapture) stop(t *testing.T) []synSeen {
	t.Helper()
	if err := cp.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	<-cp.done
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.syns
}

// tcpExtCounter reads the TcpExt counter name of h's namespace from
// /proc/thread-self/net/netstat (/proc/net follows the process's main
// thread, not the thread Run moved into h).
func tcpExtCounter(t *testing.T, h *netlab.Host, name string) uint64 {
	t.Helper()
	var b []byte
	if err := h.Run(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/netstat")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Pairs of lines: "TcpExt: name ..." then "TcpExt: value ...".
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == name {
				v, err := strconv.ParseUint(values[j], 10, 64)
				if err != nil {
					t.Fatalf("%s: TcpExt %s = %q: %v", h.Name(), name, values[j], err)
				}
				return v
			}
		}
	}
	t.Fatalf("%s: no TcpExt counter %s in /proc/net/netstat", h.Name(), name)
	return 0
}
