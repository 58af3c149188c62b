package health

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// probeOnce runs one check of a target on 127.0.0.1 and returns its error.
func probeOnce(t *testing.T, server netip.AddrPort, check CheckConfig) error {
	t.Helper()
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tg := Target{Service: web, Server: server, Check: check.withDefaults()}
	if err := tg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tg.Check.Timeout)
	defer cancel()
	return c.probe(ctx, tg)
}

// closedPort returns an address of the given network on 127.0.0.1 where
// nothing listens.
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	var addr netip.AddrPort
	if network == "tcp" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().(*net.TCPAddr).AddrPort()
		ln.Close()
	} else {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		pc.Close()
	}
	return addr
}

// wantErr checks that err is nil when want is "", and otherwise contains
// want.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("check failed: %v", err)
	case want != "" && err == nil:
		t.Fatalf("check passed, want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("check error = %v, want one containing %q", err, want)
	}
}

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := ln.Addr().(*net.TCPAddr).AddrPort()
	tests := []struct {
		name   string
		server netip.AddrPort
		check  CheckConfig
		err    string
	}{
		{name: "listening", server: open},
		{name: "closed", server: closedPort(t, "tcp"), err: "connection refused"},
		{name: "check port overrides", server: netip.AddrPortFrom(open.Addr(), 1), check: CheckConfig{Port: open.Port()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, probeOnce(t, tt.server, tt.check), tt.err)
		})
	}
}

func TestProbeHTTP(t *testing.T) {
	hosts := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusMovedPermanently)
		default:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	server := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	tests := []struct {
		name  string
		check CheckConfig
		host  string // the Host header the server saw
		err   string
	}{
		{name: "200", check: CheckConfig{Kind: KindHTTP, Path: "/ok"}, host: server.String()},
		{name: "host header", check: CheckConfig{Kind: KindHTTP, Path: "/ok", Host: "www.example.com"}, host: "www.example.com"},
		{name: "wrong status", check: CheckConfig{Kind: KindHTTP, Path: "/down"}, host: server.String(), err: "status 503, want 200"},
		{name: "expected status", check: CheckConfig{Kind: KindHTTP, Path: "/down", Status: 503}, host: server.String()},
		{name: "redirect not followed", check: CheckConfig{Kind: KindHTTP, Path: "/moved"}, host: server.String(), err: "status 301, want 200"},
		{name: "status in a set", check: CheckConfig{Kind: KindHTTP, Path: "/moved", Statuses: statuses(200, 299, 301, 302)}, host: server.String()},
		{name: "status not in a set", check: CheckConfig{Kind: KindHTTP, Path: "/down", Statuses: statuses(200, 299, 301, 302)}, host: server.String(),
			err: "status 503, want 200-299 301-302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, probeOnce(t, server, tt.check), tt.err)
			if got := <-hosts; got != tt.host {
				t.Fatalf("server saw Host %q, want %q", got, tt.host)
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		wantErr(t, probeOnce(t, closedPort(t, "tcp"), CheckConfig{Kind: KindHTTP}), "connection refused")
	})
}

// udpServer answers every datagram on 127.0.0.1 with answer(datagram), or
// not at all when answer returns nil, until the test ends.
func udpServer(t *testing.T, answer func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestProbeUDP(t *testing.T) {
	echo := udpServer(t, func(b []byte) []byte { return append([]byte("re: "), b...) })
	silent := udpServer(t, func([]byte) []byte { return nil })
	short := CheckConfig{Kind: KindUDP, Payload: "ping", Interval: time.Second, Timeout: 200 * time.Millisecond}
	tests := []struct {
		name   string
		server netip.AddrPort
		err    string
	}{
		{name: "reply", server: echo},
		{name: "no reply", server: silent, err: "i/o timeout"},
		{name: "port unreachable", server: closedPort(t, "udp"), err: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, probeOnce(t, tt.server, short), tt.err)
		})
	}
}

// dnsAnswer is a tiny DNS responder: it answers a query with its header
// turned into a response (ID kept, QR and RA set), its question, and one A
// record 192.0.2.53 for it; idDelta changes the ID it answers with.
func dnsAnswer(idDelta uint16, qr bool) func([]byte) []byte {
	return func(q []byte) []byte {
		if len(q) < dnsHeaderLen {
			return nil
		}
		r := append([]byte(nil), q...)
		binary.BigEndian.PutUint16(r[0:], binary.BigEndian.Uint16(q[0:])+idDelta)
		flags := binary.BigEndian.Uint16(q[2:]) | 0x0080 // RA
		if qr {
			flags |= dnsFlagQR
		}
		binary.BigEndian.PutUint16(r[2:], flags)
		binary.BigEndian.PutUint16(r[6:], 1) // ANCOUNT
		r = append(r, 0xc0, dnsHeaderLen)    // the question's name
		r = binary.BigEndian.AppendUint16(r, 1)
		r = binary.BigEndian.AppendUint16(r, dnsClassIN)
		r = binary.BigEndian.AppendUint32(r, 60)
		r = binary.BigEndian.AppendUint16(r, 4)
		return append(r, 192, 0, 2, 53)
	}
}

func TestProbeDNS(t *testing.T) {
	check := CheckConfig{Kind: KindDNS, DNSName: "www.example.com", Interval: time.Second, Timeout: 200 * time.Millisecond}
	tests := []struct {
		name   string
		server netip.AddrPort
		err    string
	}{
		{name: "answer", server: udpServer(t, dnsAnswer(0, true))},
		{name: "wrong id", server: udpServer(t, dnsAnswer(1, true)), err: "last reply: dns response id"},
		{name: "echo of the query", server: udpServer(t, dnsAnswer(0, false)), err: "not a response"},
		{name: "not dns", server: udpServer(t, func([]byte) []byte { return []byte("hello") }), err: "shorter than a header"},
		{name: "no server", server: closedPort(t, "udp"), err: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, probeOnce(t, tt.server, check), tt.err)
		})
	}
}

// TestRun runs a real checker against a listener on 127.0.0.1: the server
// comes up, then goes down once the listener closes.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type event struct {
		up     bool
		reason string
	}
	events := make(chan event, 10)
	c, err := New(Config{}, func(_ Target, up bool, reason string) { events <- event{up, reason} })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := ln.Addr().(*net.TCPAddr).AddrPort()
	check := CheckConfig{Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Rise: 2, Fall: 2, InitialDown: true}
	if err := c.Set([]Target{{Service: web, Server: server, Check: check}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	next := func() event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no transition within 5 s")
			return event{}
		}
	}
	if e := next(); !e.up || e.reason != "2 consecutive checks passed" {
		t.Fatalf("first transition = %+v, want up after 2 checks", e)
	}
	ln.Close()
	if e := next(); e.up || !strings.Contains(e.reason, "2 consecutive checks failed, last: dial tcp "+server.String()) {
		t.Fatalf("second transition = %+v, want down after 2 refused connections", e)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

// statuses returns the set of the ranges lo1..hi1, lo2..hi2, ...
func statuses(bounds ...int) StatusSet {
	var s StatusSet
	for i := 0; i+1 < len(bounds); i += 2 {
		if err := s.Add(bounds[i], bounds[i+1]); err != nil {
			panic(err)
		}
	}
	return s
}
