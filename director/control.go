//go:build linux

package director

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/config"
)

// DefaultControlSocket is where udr run serves its control API and where
// udr admin looks for it: udr.yaml's default control_socket.
const DefaultControlSocket = config.DefaultControlSocket

// IpvsadmRequest is the body of POST /v1/ipvsadm: one ipvsadm command line
// (without the program name) and, for -R, its standard input.
type IpvsadmRequest struct {
	Args  []string `json:"args"`
	Stdin string   `json:"stdin,omitempty"`
}

// IpvsadmResponse is what the command printed and its exit status, as
// ipvsadm itself would have printed and returned them.
type IpvsadmResponse struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
}

// ControlHandler returns the control API:
//
//	POST /v1/ipvsadm   {"args": [...], "stdin": "..."} → {"stdout", "stderr", "exit"}
//	POST /v1/reload    re-read the rules or config file; 200, or 422 with the error
//	GET  /v1/state     the virtual server table with live counts, as JSON (ipvsadm -L -j)
//	POST /v1/handoff   stop forwarding and answer the connection table (package handoff); then udr run exits
func (d *Director) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ipvsadm", func(w http.ResponseWriter, r *http.Request) {
		var req IpvsadmRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		var out, errb bytes.Buffer
		code := admin.Run(req.Args, d, strings.NewReader(req.Stdin), &out, &errb, admin.Options{})
		writeJSON(w, http.StatusOK, IpvsadmResponse{Stdout: out.String(), Stderr: errb.String(), Exit: code})
	})
	mux.HandleFunc("POST /v1/handoff", d.serveHandOff)
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Reload(); err != nil {
			d.log.Error("reload failed; the running table stays", "err", err)
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		d.log.Info("reloaded through the control API")
		writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
	})
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, r *http.Request) {
		var out, errb bytes.Buffer
		if code := admin.Run([]string{"-L", "-n", "-j"}, d, nil, &out, &errb, admin.Options{}); code != 0 {
			http.Error(w, errb.String(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out.Bytes())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// ServeControl serves ControlHandler on ln (from ListenControl) until ctx
// is done; closing the listener removes the socket.
func (d *Director) ServeControl(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: d.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenControl creates the control socket at path, mode 0600 and owned by
// the daemon's user (root). A stale socket left by a daemon that died is
// replaced; a live one is an error.
func ListenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another udr is serving it", path)
	}
	os.Remove(path)
	// Bind in a private (0700) directory beside path, make the socket 0600,
	// then move it into place: no other user can connect in between.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".udr-sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	ln, err := net.Listen("unix", filepath.Join(tmp, "sock"))
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(filepath.Join(tmp, "sock"), 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, "sock"), path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return controlListener{ln, path}, nil
}

// controlListener removes its socket file when closed: it was bound under
// another name and renamed, so the listener cannot unlink it itself.
type controlListener struct {
	net.Listener
	path string
}

func (l controlListener) Close() error {
	os.Remove(l.path)
	return l.Listener.Close()
}

// ListenMetrics opens the metrics endpoint's TCP listener in the director's
// network namespace.
func (d *Director) ListenMetrics(addr string) (net.Listener, error) {
	var ln net.Listener
	err := d.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint %s: %w", addr, err)
	}
	return ln, nil
}
