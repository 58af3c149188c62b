//go:build linux

package director

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
// to FILE.rejected and udr starts with an empty table.
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
		"positions", ls.Positions, "positions_dropped", ls.PositionsDropped, "took", time.Since(start).Round(time.Microsecond))
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
