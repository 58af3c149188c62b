//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/udr-lb/udr/director"
)

// TestAdminStandbyCommand runs udr admin --standby and --active against a
// fake control API: each alone posts {"standby": ...} to /v1/standby and
// prints the answer's state; with anything else on the line the words go
// to ipvsadm's parser (POST /v1/ipvsadm).
func TestAdminStandbyCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "udr.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // the handlers run in the server's goroutines
	var got []string  // "PATH BODY" of each request
	standby, lying := false, false
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/standby", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, "/v1/standby "+string(b))
		var req struct{ Standby *bool }
		if json.Unmarshal(b, &req) != nil || req.Standby == nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		changed := *req.Standby != standby
		if !lying {
			standby = *req.Standby
		}
		json.NewEncoder(w).Encode(director.StandbyResponse{Standby: standby, Changed: changed})
	})
	mux.HandleFunc("POST /v1/ipvsadm", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, "/v1/ipvsadm "+string(b))
		mu.Unlock()
		json.NewEncoder(w).Encode(director.IpvsadmResponse{Exit: 0})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, tt := range []struct {
		args     []string
		out, req string
	}{
		{[]string{"--standby"}, "standby (was active)\n", `/v1/standby {"standby":true}`},
		{[]string{"--standby"}, "standby (already)\n", `/v1/standby {"standby":true}`},
		{[]string{"--active"}, "active (was standby)\n", `/v1/standby {"standby":false}`},
		{[]string{"--active"}, "active (already)\n", `/v1/standby {"standby":false}`},
		{[]string{"--standby", "-L"}, "", `/v1/ipvsadm {"args":["--standby","-L"]}`},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		var out, errb bytes.Buffer
		args := append([]string{"--control", sock}, tt.args...)
		if err := adminWith(args, strings.NewReader(""), &out, &errb); err != nil {
			t.Errorf("udr admin %s: %v", strings.Join(tt.args, " "), err)
		}
		mu.Lock()
		sent := got
		mu.Unlock()
		if out.String() != tt.out || len(sent) != 1 || sent[0] != tt.req {
			t.Errorf("udr admin %s: printed %q and sent %q; want %q and %q", strings.Join(tt.args, " "), out.String(), sent, tt.out, tt.req)
		}
	}
	// A daemon that answers another state than asked is an error.
	mu.Lock()
	standby, lying = false, true
	mu.Unlock()
	var out bytes.Buffer
	if err := adminWith([]string{"--control", sock, "--standby"}, nil, &out, io.Discard); err == nil || !strings.Contains(err.Error(), "standby=false") {
		t.Errorf("a daemon that stays active: %v, printed %q; want an error", err, out.String())
	}
}
