//go:build linux

package director_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedControlAPIConcurrent drives the control API in-process
// (under the race detector in make test): listings, edits and connection
// lists from several goroutines at once while clients connect, and every
// answer is ipvsadm's.
func TestPrivilegedControlAPIConcurrent(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "ctlapi", drlab.Options{})
	l.start(2,
		"-A -t 192.0.2.100:80 -s rr",
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1",
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1",
	)
	h := l.d.ControlHandler()
	ipvsadm := func(args ...string) director.IpvsadmResponse {
		body, _ := json.Marshal(director.IpvsadmRequest{Args: args})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/ipvsadm", strings.NewReader(string(body))))
		var out director.IpvsadmResponse
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Errorf("POST /v1/ipvsadm %q: %d %s", args, rec.Code, rec.Body)
		}
		return out
	}
	client := drlab.HTTPClient(l.Client, requestTimeout)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				switch g {
				case 0: // connections while the table changes
					if _, err := drlab.Get(client, "http://192.0.2.100/"); err != nil {
						t.Errorf("GET: %v", err)
					}
				case 1:
					if r := ipvsadm("-L", "-n", "--stats"); r.Exit != 0 || !strings.Contains(r.Stdout, "192.0.2.11:80") {
						t.Errorf("-L -n --stats: %+v", r)
					}
				case 2:
					if r := ipvsadm("-L", "-n", "-c"); r.Exit != 0 || !strings.HasPrefix(r.Stdout, "IPVS connection entries\n") {
						t.Errorf("-L -n -c: %+v", r)
					}
				case 3:
					w := fmt.Sprint(1 + i%3)
					if r := ipvsadm("-e", "-t", "192.0.2.100:80", "-r", "192.0.2.12:80", "-g", "-w", w); r.Exit != 0 {
						t.Errorf("-e -w %s: %+v", w, r)
					}
				}
			}
		}()
	}
	wg.Wait()
	if r := ipvsadm("-a", "-t", "192.0.2.100:80", "-r", "192.0.2.12:80"); r.Exit != 255 || r.Stderr != "Destination already exists\n" {
		t.Errorf("-a of an existing server: %+v, want exit 255 and ipvsadm's message", r)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/state", nil))
	if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) || !strings.Contains(rec.Body.String(), "192.0.2.12") {
		t.Errorf("GET /v1/state: %d %s", rec.Code, rec.Body)
	}
}
