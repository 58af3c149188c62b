//go:build linux

package director

import (
	"errors"
	"net/http"
	"strings"
)

// SetStandby switches the director to standby (on) or to active, the two
// states of an active/backup pair that keepalived's VRRP drives through
// `udr admin --standby` and `udr admin --active` (forwarder.Options.Standby).
// It swaps in the running table with the state flipped: the workers see it
// from their next frame, with no lock and no compile. In standby nothing
// answers ARP/NDP for the VIPs or forwards to them, and no announcement is
// sent; the connection table, its timers and the control plane's calls
// into the workers go on. Becoming active announces the VIPs at once
// (gratuitous ARP, unsolicited NA), a burst as at start. It reports
// whether the state changed; each change is logged.
func (d *Director) SetStandby(on bool) (changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.table.Load()
	if t.Options().Standby == on {
		return false
	}
	d.table.Store(t.WithStandby(on))
	var vips []string
	for _, v := range t.VIPs() {
		vips = append(vips, v.String())
	}
	if on {
		d.log.Info("standby: no ARP/NDP answers, announcements or forwarding for the VIPs", "vips", strings.Join(vips, ","))
		return true
	}
	d.log.Info("active: announcing the VIPs and forwarding", "vips", strings.Join(vips, ","))
	// The control loop starts the announcements' burst (as after a
	// change of the VIPs).
	select {
	case d.changed <- struct{}{}:
	default:
	}
	return true
}

// Standby reports whether the director is in standby.
func (d *Director) Standby() bool { return d.table.Load().Options().Standby }

// StandbyRequest is the body of POST /v1/standby. Standby must be given:
// a request without it changes nothing.
type StandbyRequest struct {
	Standby *bool `json:"standby"`
}

// StandbyResponse is its answer: the state now, and whether the request
// changed it.
type StandbyResponse struct {
	Standby bool `json:"standby"`
	Changed bool `json:"changed"`
}

// serveStandby is POST /v1/standby: {"standby": true} or false, what `udr
// admin --standby` and `--active` send.
func (d *Director) serveStandby(w http.ResponseWriter, r *http.Request) {
	body, status, err := readBody(w, r, MaxRequestBody)
	if err != nil {
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), status)
		return
	}
	on, err := decodeStandbyRequest(body)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	changed := d.SetStandby(on)
	writeJSON(w, http.StatusOK, StandbyResponse{Standby: d.Standby(), Changed: changed})
}

// decodeStandbyRequest reads the body of POST /v1/standby: one JSON
// object with the key standby, true or false, and nothing else.
func decodeStandbyRequest(body []byte) (bool, error) {
	const want = `want {"standby": true} or {"standby": false}`
	var req StandbyRequest
	if err := decodeObject(body, &req, want); err != nil {
		return false, err
	}
	if req.Standby == nil {
		return false, errors.New(`no "standby" key: ` + want)
	}
	return *req.Standby, nil
}
