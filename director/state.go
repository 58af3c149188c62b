//go:build linux

package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/handoff"
)

// StateFileName is the state file's name next to the control socket, where
// udr keeps it unless told otherwise (Settings.StateFile).
const StateFileName = "udr.state"

// StatePath returns the state file in force: StateFile, or udr.state in
// the control socket's directory when StateFile is empty; "" when there is
// none (StateFile "off", or empty with the control socket off).
func (s Settings) StatePath() string {
	switch {
	case s.StateFile == "off":
		return ""
	case s.StateFile != "":
		return s.StateFile
	case s.ControlSocket == "off" || s.ControlSocket == "":
		return ""
	}
	return filepath.Join(filepath.Dir(s.ControlSocket), StateFileName)
}

// loadState takes over the state file a stopped udr left, if there is one,
// before the workers start and before the VIPs are announced: the
// connections and templates whose service and real server are in t go to
// the workers' tables, the others are dropped and counted (one log line
// says how many of each). The file is removed once read, so that a later
// start after a crash never takes an old table. A file that cannot be
// used (another version, a bad checksum, a wrong size) is logged, renamed
// to FILE.rejected and udr starts with an empty table; a file that is not
// a state file at all (a path given by mistake) is logged and left alone.
func (d *Director) loadState(t *forwarder.Table) {
	path := d.settings.StatePath()
	if path == "" {
		return
	}
	start := time.Now()
	st, err := handoff.Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.log.Info("no state file: starting with an empty connection table", "state", path)
		return
	case errors.Is(err, handoff.ErrMagic):
		d.log.Error("the state file is not a udr state file: left alone; starting with an empty connection table", "state", path, "err", err)
		return
	case err != nil:
		rejected := path + ".rejected"
		if rerr := os.Rename(path, rejected); rerr != nil {
			rejected = ""
		}
		d.log.Error("state file refused: starting with an empty connection table", "state", path, "moved_to", rejected, "err", err)
		return
	}
	if err := os.Remove(path); err != nil {
		d.log.Warn("cannot remove the state file taken over", "state", path, "err", err)
	}
	ls := forwarder.LoadState(t, d.ps, st, start, d.fanout4, d.fanout6)
	d.log.Info("state taken over from the previous udr", "state", path,
		"age", time.Since(st.Saved).Round(time.Millisecond), "taken", ls.Taken, "dropped", ls.Dropped(),
		"dropped_no_server", ls.NoServer, "dropped_expired", ls.Expired, "dropped_refused", ls.Refused,
		"positions", ls.Positions, "positions_dropped", ls.PositionsDropped, "neighbors", ls.Neighbors, "took", time.Since(start).Round(time.Microsecond))
}

// SaveState writes the connection table and the scheduler positions to the
// state file (Settings.StatePath), for the next udr to take over. Call it
// after Run returned: the workers have stopped, and nothing changes the
// tables any more. It does nothing when there is no state file.
func (d *Director) SaveState() error {
	d.mu.Lock()
	path := d.settings.StatePath()
	d.mu.Unlock()
	if path == "" {
		return nil
	}
	start := time.Now()
	st := forwarder.SaveState(d.table.Load(), d.ps, start)
	if err := handoff.Write(path, st); err != nil {
		return err
	}
	d.log.Info("state saved for the next start", "state", path, "entries", len(st.Entries),
		"positions", len(st.Services), "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// handOff is the state of a hand-off of the connection table to a new udr
// over the control socket (POST /v1/handoff).
type handOff struct {
	ctx         context.Context // done when a hand-off stops the workers
	cancel      context.CancelFunc
	workersDone chan struct{} // closed when the workers have stopped
	mu          sync.Mutex
	requested   bool          // a hand-off was asked for; guarded by mu
	stopping    bool          // the workers stopped without one: no hand-off any more; guarded by mu
	done        chan struct{} // closed when the requested hand-off has answered
	handed      atomic.Bool   // the table went out whole
}

func (h *handOff) init() {
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.workersDone = make(chan struct{})
	h.done = make(chan struct{})
}

// stopped is called once the workers have stopped: it waits for a
// requested hand-off to answer, and refuses any later one (the table then
// goes to the state file).
func (h *handOff) stopped() {
	h.mu.Lock()
	requested := h.requested
	h.stopping = !requested
	h.mu.Unlock()
	if requested {
		<-h.done
	}
}

// request reports whether a hand-off may go ahead: the first one, asked
// for before the workers stopped on their own.
func (h *handOff) request() (ok bool, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.requested:
		return false, "a hand-off was already served"
	case h.stopping:
		return false, "udr is stopping: its table goes to the state file"
	}
	h.requested = true
	return true, ""
}

// HandedOff reports whether Run returned because the connection table was
// handed to a new udr, which forwards from then on: udr run then exits
// without writing the state file.
func (d *Director) HandedOff() bool { return d.hand.handed.Load() }

// handOffTimeout bounds how long a hand-off waits for the workers to stop.
const handOffTimeout = 10 * time.Second

// serveHandOff is POST /v1/handoff: it stops the workers (forwarding stops
// here), answers the connection table and the scheduler positions in the
// state file's format, and makes Run return. Only one hand-off is ever
// served.
func (d *Director) serveHandOff(w http.ResponseWriter, r *http.Request) {
	if ok, why := d.hand.request(); !ok {
		http.Error(w, why, http.StatusConflict)
		return
	}
	defer close(d.hand.done)
	d.log.Info("a new udr takes the connection table over: forwarding stops here")
	d.hand.cancel()
	select {
	case <-d.hand.workersDone:
	case <-time.After(handOffTimeout):
		d.log.Error("hand-off: the workers did not stop", "waited", handOffTimeout)
		http.Error(w, "the workers did not stop", http.StatusServiceUnavailable)
		return
	}
	start := time.Now()
	st := forwarder.SaveState(d.table.Load(), d.ps, start)
	b, err := handoff.Encode(st)
	if err != nil {
		d.log.Error("hand-off: cannot encode the table", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if v := d.offloadsLeft(); v != "" {
		w.Header().Set(offloadsHeader, v)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if _, err := w.Write(b); err != nil {
		d.log.Error("hand-off: the new udr did not take the table; it goes to the state file", "err", err)
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	d.hand.handed.Store(true)
	d.log.Info("connection table handed to the new udr", "entries", len(st.Entries), "positions", len(st.Services),
		"bytes", len(b), "took", time.Since(start).Round(time.Microsecond))
}

// takeOver asks the udr serving the control socket for its connection
// table and takes it over as loadState takes the state file. With no udr
// there (no socket, or nobody listening), it reads the state file instead.
// Any other failure is an error: the other udr may still forward.
func (d *Director) takeOver(t *forwarder.Table) error {
	path := d.settings.ControlSocket
	if path == "" || path == "off" {
		return errors.New("take over: no control socket to reach the running udr through")
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			d.log.Info("take over: no udr serves the control socket; reading the state file", "control", path, "err", err)
			d.loadState(t)
			return nil
		}
		return fmt.Errorf("take over through %s: %w", path, err)
	}
	c.Close()
	client := &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", path)
		}},
	}
	start := time.Now()
	resp, err := client.Post("http://udr/v1/handoff", "", nil)
	if err != nil {
		return fmt.Errorf("take over through %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("take over through %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	// The other udr has stopped forwarding and leaves its offloads off
	// for this one, whatever becomes of its table.
	d.adoptOffloads(resp.Header.Get(offloadsHeader))
	// At most what a table of every entry of this udr's capacity and
	// every real server takes, and the header must say so.
	limit := int64(handoff.HeaderSize) + handoff.MaxServices*handoff.ServiceSize + handoff.MaxDests*handoff.DestSize + handoff.MaxNeighbors*handoff.NeighborSize +
		int64(2*capacityOr(d.settings.Capacity)+1<<20)*handoff.EntrySize
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("more than %d bytes", limit)
	}
	var st *handoff.State
	if err == nil {
		st, err = handoff.Decode(b)
	}
	if err != nil {
		// The other udr has stopped forwarding: start empty rather
		// than not at all.
		d.log.Error("take over: the table received cannot be used: starting with an empty connection table", "control", path, "err", err)
		return nil
	}
	ls := forwarder.LoadState(t, d.ps, st, time.Now(), d.fanout4, d.fanout6)
	d.log.Info("state taken over from the running udr", "control", path,
		"taken", ls.Taken, "dropped", ls.Dropped(),
		"dropped_no_server", ls.NoServer, "dropped_expired", ls.Expired, "dropped_refused", ls.Refused,
		"positions", ls.Positions, "positions_dropped", ls.PositionsDropped, "neighbors", ls.Neighbors, "took", time.Since(start).Round(time.Microsecond))
	return nil
}
