//go:build linux

package director

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/internal/bounded"
)

// DefaultControlSocket is where udr run serves its control API and where
// udr admin looks for it: udr.yaml's default control_socket.
const DefaultControlSocket = config.DefaultControlSocket

// ControlMaxConns is the most connections the control socket holds at
// once, or less under a low descriptor limit (bounded.ConnCap).
const ControlMaxConns = 32

// ControlLimits are the control socket's bounds, with at most maxConns
// connections: headers within 5 s, a whole request (body included) within
// 15 s, the command and its answer within 2 minutes.
func ControlLimits(maxConns int, log *slog.Logger) bounded.Limits {
	return bounded.Limits{
		MaxConns:          maxConns,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		Name:              "control",
		Logger:            log,
	}
}

// ControlHandler returns the control API:
//
//	POST /v1/ipvsadm   {"args": [...], "stdin": "..."} → {"stdout", "stderr", "exit"}
//	POST /v1/reload    re-read the rules or config file; 200, or 422 with the error
//	GET  /v1/state     the virtual server table with live counts, as JSON (ipvsadm -L -j)
//	POST /v1/handoff   stop forwarding and answer the connection table (package handoff); then udr run exits
//	POST /v1/standby   {"standby": true|false} → {"standby", "changed"}: standby or active (SetStandby)
//	GET  /v1/bgp       the BGP sessions and the VIPs' routes, as JSON (bgp.Status); 404 without BGP
//	POST /v1/trace     {"filter": [...], "count", "duration", "frames"} → a stream of JSON lines (TraceEvent): udr admin --trace
//	GET  /v1/status    what udr status prints, as JSON (status.Status; each list at most status.MaxRows)
//
// A body must come with its Content-Length (no chunked encoding), of at
// most MaxRequestBody bytes, and hold one JSON object and nothing else.
func (d *Director) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ipvsadm", func(w http.ResponseWriter, r *http.Request) {
		body, status, err := readBody(w, r, MaxRequestBody)
		if err != nil {
			// Close the connection after the answer: the server would
			// otherwise read on in what is left of the body first.
			w.Header().Set("Connection", "close")
			http.Error(w, err.Error(), status)
			return
		}
		req, err := decodeIpvsadmRequest(body)
		if err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		var out, errb bytes.Buffer
		code := admin.Run(req.Args, d, strings.NewReader(req.Stdin), &out, &errb, admin.Options{})
		writeJSON(w, http.StatusOK, IpvsadmResponse{Stdout: out.String(), Stderr: errb.String(), Exit: code})
	})
	mux.HandleFunc("POST /v1/handoff", d.serveHandOff)
	mux.HandleFunc("POST /v1/standby", d.serveStandby)
	mux.HandleFunc("GET /v1/bgp", d.serveBGP)
	mux.HandleFunc("POST /v1/trace", d.serveTrace)
	mux.HandleFunc("GET /v1/status", d.serveStatus)
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

// readBody reads a request's body of at most limit bytes, which must have
// a Content-Length: a chunked body, whose chunk sizes could promise any
// length, is refused before a byte of it is read, as is a length over
// limit. It returns the HTTP status of a refusal.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, error) {
	switch {
	case r.ContentLength < 0:
		return nil, http.StatusLengthRequired, errors.New("request body without a Content-Length: the control API takes no chunked body")
	case r.ContentLength > limit:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes: at most %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, http.StatusRequestTimeout, fmt.Errorf("request body: %d of %d bytes came before the deadline", len(b), r.ContentLength)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	return b, 0, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// ServeControl serves ControlHandler on ln (from ListenControl) within lim
// (ControlLimits) until ctx is done; closing the listener removes the
// socket.
func (d *Director) ServeControl(ctx context.Context, ln net.Listener, lim bounded.Limits) error {
	srv := bounded.New(d.ControlHandler(), lim)
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
// the daemon's user (root). What is at path already is left alone unless
// it is a stale socket, one that nothing listens on (a daemon that died
// left it): that is replaced. A socket that answers is an error (another
// udr is serving it), and so is anything else at path: a regular file, a
// directory, a symbolic link, a socket udr cannot probe.
func ListenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Bind in a private (0700) directory beside path, make the socket 0600,
	// then move it into place: no other user can connect in between.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".udr-sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "sock")
	ln, err := net.Listen("unix", bound)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(bound, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(bound)
	if err != nil {
		return fail(err)
	}
	// Never over something that appeared at path meanwhile.
	if err := renameNoReplace(bound, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = errors.New("a file appeared there while udr was binding; udr leaves it alone")
		}
		return fail(err)
	}
	return controlListener{ln, path, fi}, nil
}

// removeStaleSocket makes room for the control socket at path: nothing is
// there, or a socket nothing listens on, which it removes. Anything else
// is an error, and is left as it is.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s: %s is there, not a socket; udr leaves it alone: remove it or give another --control path",
			path, fileKind(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("control socket %s: another udr is listening on it", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Stale: its daemon died without removing it.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("control socket %s: remove the stale socket: %w", path, err)
		}
		return nil
	default:
		// EAGAIN (a full backlog: someone listens), EACCES, a timeout.
		return fmt.Errorf("control socket %s: cannot tell whether another udr is listening on it (%v); udr leaves it alone", path, err)
	}
}

// fileKind names what a file of mode m is, for messages.
func fileKind(m os.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case os.ModeDir:
		return "a directory"
	case os.ModeSymlink:
		return "a symbolic link"
	case os.ModeNamedPipe:
		return "a named pipe"
	case os.ModeDevice, os.ModeDevice | os.ModeCharDevice:
		return "a device"
	}
	return "a file of mode " + m.String()
}

// renameNoReplace moves from to to unless to exists (os.ErrExist then):
// renameat2(RENAME_NOREPLACE), or where the file system lacks it a hard
// link and an unlink.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		if err != nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
		}
		return nil
	}
	if err := os.Link(from, to); err != nil {
		return err
	}
	return os.Remove(from)
}

// controlListener removes its socket file when closed: it was bound under
// another name and renamed, so the listener cannot unlink it itself. It
// removes only its own socket, not a file that replaced it.
type controlListener struct {
	net.Listener
	path string
	fi   os.FileInfo // of the socket it bound
}

func (l controlListener) Close() error {
	if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
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
