//go:build linux

package director_test

import (
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/service"
)

// tlsSeen is what a real server's TLS server saw of the checks.
type tlsSeen struct {
	mu     sync.Mutex
	body   string
	sni    map[string]bool
	remote map[netip.Addr]bool
}

// startTLS runs an HTTPS server on rs<i>:8443 with httptest's untrusted
// certificate, answering seen.body, until the test ends.
func startTLS(t *testing.T, l *lab, i int, seen *tlsSeen) {
	t.Helper()
	var ln net.Listener
	if err := l.RS[i-1].Run(func() error {
		var err error
		ln, err = net.Listen("tcp", ":8443")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			seen.remote[ap.Addr()] = true
		}
		w.Write([]byte(seen.body))
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		seen.mu.Lock()
		seen.sni[h.ServerName] = true
		seen.mu.Unlock()
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
}

func (s *tlsSeen) setBody(b string) {
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

// TestPrivilegedHealthKeepalivedChecks: keepalived's checkers as udr runs
// them. On :443, an https check (SSL_GET: an untrusted certificate, SNI
// from host) with a digest, from a source address of the director's
// (bindto), with retry_interval (delay_before_retry): rs1's body changes,
// its digest no longer matches and it is quiesced; restored, it is back.
// On :80, a misc_dynamic check (MISC_CHECK) sets rs1's weight from the
// script's exit status, and exit 1 quiesces it.
func TestPrivilegedHealthKeepalivedChecks(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "hka", drlab.Options{})
	source := netip.MustParsePrefix("192.0.2.3/24")
	if err := l.Director.AddAddrs("eth0", source); err != nil {
		t.Fatal(err)
	}
	seen := make([]*tlsSeen, 2)
	for i := range seen {
		seen[i] = &tlsSeen{body: fmt.Sprintf("rs%d\n", i+1), sni: map[string]bool{}, remote: map[netip.Addr]bool{}}
		startTLS(t, l, i+1, seen[i])
	}
	sum := md5.Sum([]byte("rs1\n"))
	digest := hex.EncodeToString(sum[:])
	codeFile := filepath.Join(t.TempDir(), "code")
	if err := os.WriteFile(codeFile, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "check")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit $(cat \"$1\")\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.startFile(2, fmt.Sprintf(`interface: eth0
services:
  - address: 192.0.2.100
    port: 443
    scheduler: rr
    servers:
      - address: 192.0.2.11
        health_check: {kind: https, port: 8443, host: "www.example:8443", digest: %s, source: 192.0.2.3,
                       interval: 2s, retry_interval: 300ms, timeout: 1s, rise: 1, fall: 2}
      - address: 192.0.2.12
        health_check: {kind: https, port: 8443, interval: 500ms, timeout: 300ms}
  - address: 192.0.2.100
    port: 80
    scheduler: wrr
    servers:
      - address: 192.0.2.11
        weight: 5
        health_check: {kind: misc, script: "%s %s", misc_dynamic: true, interval: 500ms, timeout: 400ms, rise: 1, fall: 1}
      - address: 192.0.2.12
`, digest, script, codeFile))
	https1 := netip.MustParseAddrPort("192.0.2.11:443")
	https2 := netip.MustParseAddrPort("192.0.2.12:443")
	misc1 := netip.MustParseAddrPort("192.0.2.11:80")

	for _, a := range []netip.AddrPort{https1, https2} {
		if _, err := awaitHealth(l, a, true, time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// The checks reached the servers: rs1's from the source, with SNI.
	awaitSeen := func(s *tlsSeen, what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			good := ok()
			s.mu.Unlock()
			if good {
				return
			}
			if time.Now().After(deadline) {
				s.mu.Lock()
				defer s.mu.Unlock()
				t.Fatalf("%s: not seen; SNI %v, remote %v", what, s.sni, s.remote)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	awaitSeen(seen[0], "rs1: a check from 192.0.2.3 with SNI www.example", func() bool {
		return seen[0].sni["www.example"] && seen[0].remote[source.Addr()] && len(seen[0].remote) == 1
	})
	awaitSeen(seen[1], "rs2: a check without SNI from 192.0.2.2", func() bool {
		return seen[1].sni[""] && seen[1].remote[drlab.Director.Addr()]
	})

	// Another body: the digest fails. The first failure is retried 300
	// ms later (health's unit tests count the schedule): rs1 is down
	// within an interval and a retry, plus slack for a loaded machine.
	changed := time.Now()
	seen[0].setBody("rs1 changed\n")
	if _, err := awaitHealth(l, https1, false, changed.Add(2*time.Second+300*time.Millisecond+2*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Logf("rs1 down %v after its body changed", time.Since(changed).Round(time.Millisecond))
	if w, ok := stateWeight(t, l, https1); !ok || w != 0 {
		t.Fatalf("rs1:443 with the wrong digest: weight %d (present %v), want 0", w, ok)
	}
	seen[0].setBody("rs1\n")
	if _, err := awaitHealth(l, https1, true, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if w, _ := stateWeight(t, l, https1); w != 1 {
		t.Fatalf("rs1:443 with its digest again: weight %d, want 1", w)
	}

	// misc_dynamic: exit 0 keeps weight 5, 12 sets 10, 1 quiesces, 2
	// sets 0 while up, 0 restores 5.
	awaitWeight := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			w, ok := stateWeight(t, l, misc1)
			if ok && w == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("rs1:80 weight %d (present %v), want %d", w, ok, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, step := range []struct {
		code   string
		weight int32
		up     bool
	}{{"0", 5, true}, {"12", 10, true}, {"1", 0, false}, {"0", 5, true}, {"2", 0, true}, {"0", 5, true}} {
		if err := os.WriteFile(codeFile, []byte(step.code), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := awaitHealth(l, misc1, step.up, time.Now().Add(10*time.Second)); err != nil {
			t.Fatalf("exit %s: %v", step.code, err)
		}
		awaitWeight(step.weight)
	}
}

// TestPrivilegedSorryServer: when the health checks take both real
// servers out, the service loses its quorum and rs3, its sorry server,
// answers alone; when rs1 recovers, rs3 leaves the table and rs1 answers.
func TestPrivilegedSorryServer(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "hsorry", drlab.Options{RealServers: 3})
	l.startFile(2, `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    scheduler: rr
    health_check: {kind: http, interval: 500ms, timeout: 300ms, rise: 1, fall: 1, on_failure: remove}
    sorry_server: {address: 192.0.2.13, port: 80}
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
`)
	client := drlab.HTTPClient(l.Client, requestTimeout)
	web := service.Key{Proto: service.TCP, Addr: drlab.VIP, Port: 80}
	rs3 := netip.MustParseAddrPort("192.0.2.13:80")
	if _, ok := stateWeight(t, l, rs3); ok {
		t.Fatal("the sorry server is in the table while the service has its quorum")
	}
	// answersOnly polls until a few GETs in a row come from want alone.
	answersOnly := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var got []string
			for range 4 {
				body, err := drlab.Get(client, "http://192.0.2.100/")
				if err != nil {
					got = append(got, err.Error())
					continue
				}
				got = append(got, body)
			}
			if slices.Equal(got, []string{want, want, want, want}) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("answers %q, want only %s", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	answersOnly2 := func() {
		t.Helper()
		got := gets(t, client, "http://192.0.2.100/", 4)
		if !slices.Contains(got, "rs1") || !slices.Contains(got, "rs2") {
			t.Fatalf("answers %q, want rs1 and rs2", got)
		}
	}
	answersOnly2()
	for i := 1; i <= 2; i++ {
		if err := l.StopHTTP(i, 80); err != nil {
			t.Fatal(err)
		}
	}
	answersOnly("rs3")
	if lost, kept := l.d.QuorumLost(web); !lost || !kept {
		t.Fatalf("quorum lost %v (kept %v), want lost", lost, kept)
	}
	if q := quorumMetric(l, web); q == nil || *q {
		t.Fatalf("udr_service_quorum_up: %v, want 0", q)
	}
	if w, ok := stateWeight(t, l, rs3); !ok || w != 1 {
		t.Fatalf("sorry server: weight %d (present %v), want 1", w, ok)
	}
	if err := l.log.await("service lost its quorum", 1, 0); err != nil {
		t.Error(err)
	}
	if err := l.StartHTTP(1, 80); err != nil {
		t.Fatal(err)
	}
	answersOnly("rs1")
	if _, ok := stateWeight(t, l, rs3); ok {
		t.Fatal("the sorry server is still in the table after rs1 recovered")
	}
	if lost, _ := l.d.QuorumLost(web); lost {
		t.Fatal("quorum still lost after rs1 recovered")
	}
	if q := quorumMetric(l, web); q == nil || !*q {
		t.Fatalf("udr_service_quorum_up: %v, want 1", q)
	}
}

// quorumMetric returns the service's QuorumUp in the metrics.
func quorumMetric(l *lab, key service.Key) *bool {
	for _, s := range l.d.MetricsSnapshot().Services {
		if s.Key == key {
			return s.QuorumUp
		}
	}
	return nil
}
