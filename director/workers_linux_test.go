//go:build linux

package director_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedWorkers runs the walkthrough with two workers and clients
// from eight addresses, which the fanout spreads over both: every worker
// forwards frames, yet the order of new connections gives the sequences
// of one worker (wrr 1:1, then 2:1 after a reload); then each client
// follows its persistence template, whichever worker owns it, and the
// connection listing holds every client's connections; a persistence
// netmask wider than a host re-programs the fanout, and the clients of
// one template follow it.
func TestPrivilegedWorkers(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "workers", drlab.Options{})
	var addrs []netip.Addr
	var prefixes []netip.Prefix
	for i := range 8 {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(60 + i)})
		addrs = append(addrs, a)
		prefixes = append(prefixes, netip.PrefixFrom(a, 24))
	}
	if err := l.Client.AddAddrs("eth0", prefixes...); err != nil {
		t.Fatal(err)
	}
	clients := make([]*http.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = httpClientFrom(l, a)
	}
	l.writeRules(
		"-A -t "+vipPort+" -s wrr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	l.startWith(2, director.Config{Settings: director.Settings{Iface: "eth0", Workers: 2}, Given: director.SetWorkers, Rules: l.rules})

	// getRound fetches n pages, the i-th from client i mod 8.
	getRound := func(n int) []string {
		t.Helper()
		var got []string
		for i := range n {
			body, err := drlab.Get(clients[i%len(clients)], "http://192.0.2.100/")
			if err != nil {
				t.Fatalf("GET from %v (%d of %d): %v", addrs[i%len(addrs)], i+1, n, err)
			}
			got = append(got, body)
		}
		return got
	}
	want := strings.Fields("rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1")
	if diff := cmp.Diff(want, getRound(8)); diff != "" {
		t.Fatalf("weights 1:1 over two workers (-want +got):\n%s", diff)
	}
	l.reload(
		"-A -t "+vipPort+" -s wrr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 2",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	want = strings.Fields("rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1")
	if diff := cmp.Diff(want, getRound(12)); diff != "" {
		t.Fatalf("weights 2:1 over two workers after reload (-want +got):\n%s", diff)
	}

	// Persistence: rr picks a template per client in the order the
	// clients come (rs2 first, from the head); every later connection of
	// a client follows its template.
	l.reload(
		"-A -t "+vipPort+" -s rr -p 60",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	got := getRound(24)
	for i, body := range got {
		if want := []string{"rs2", "rs1"}[i%len(addrs)%2]; body != want {
			t.Fatalf("persistent service: request %d from %v went to %s, want %s (its template)\ngot %v", i, addrs[i%len(addrs)], body, want, got)
		}
	}

	// Both workers forwarded frames: the fanout spread the clients.
	deadline := time.Now().Add(5 * time.Second) // the counters are published every second
	for {
		ws := l.d.WorkerStats()
		busy := 0
		for _, s := range ws {
			if s.Frames.Verdicts[forwarder.VerdictForward] > 0 {
				busy++
			}
		}
		if busy == len(ws) {
			t.Logf("forwarded per worker: %d, %d; batches %d, %d", ws[0].Frames.Verdicts[forwarder.VerdictForward],
				ws[1].Frames.Verdicts[forwarder.VerdictForward], ws[0].Batches, ws[1].Batches)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d workers forwarded frames: %+v", busy, len(ws), ws)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The listing is the workers' tables together: every client has its
	// connections and its template in it.
	st, err := l.d.State(true)
	if err != nil {
		t.Fatal(err)
	}
	conns, templates := map[netip.Addr]int{}, map[netip.Addr]int{}
	for _, c := range st.Conns {
		if c.Template {
			templates[c.Client.Addr()]++
		} else {
			conns[c.Client.Addr()]++
		}
	}
	for _, a := range addrs {
		if conns[a] < 3 || templates[a] != 1 {
			t.Errorf("listing: client %v has %d connections and %d templates, want at least 3 (5 or 6 were made) and 1", a, conns[a], templates[a])
		}
	}

	// -M 255.255.255.0: the eight clients share one template. The fanout
	// hashed /32s, which spread them over both workers: the reload widens
	// its mask to /24, so that one worker owns their template and every
	// connection follows it.
	l.reload(
		"-A -t "+vipPort+" -s rr -p 60 -M 255.255.255.0",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	if err := l.log.await("the workers' fanout now hashes clients by a persistence netmask: clients moved to another worker lose their connections", 1, 0); err != nil {
		t.Error(err)
	}
	got = getRound(16)
	for i, body := range got {
		if body != got[0] {
			t.Fatalf("-M 255.255.255.0: request %d from %v went to %s, request 0 to %s: one template covers them all\ngot %v", i, addrs[i%len(addrs)], body, got[0], got)
		}
	}
}

// httpClientFrom is drlab.HTTPClient with connections from source address
// src.
func httpClientFrom(l *lab, src netip.Addr) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.Client.Run(func() error {
			var err error
			d := net.Dialer{Timeout: requestTimeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("from %v: %w", src, err)
		}
		return c, nil
	}
	return &http.Client{Timeout: requestTimeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}
