package bgp

import (
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Status is what udr admin -L --bgp lists: the sessions, and every VIP's
// route with the reason it is announced or withdrawn. Its JSON form is
// the control API's GET /v1/bgp (udr admin -L --bgp -j).
type Status struct {
	ASN      uint32        `json:"asn"`
	RouterID netip.Addr    `json:"router_id"`
	Peers    []PeerStatus  `json:"peers"`
	Routes   []RouteStatus `json:"routes"`
	// Announcements and Withdrawals count the routes udr announced and
	// withdrew since it started.
	Announcements uint64 `json:"announcements"`
	Withdrawals   uint64 `json:"withdrawals"`
}

// RouteStatus is one VIP's route.
type RouteStatus struct {
	Prefix    netip.Prefix `json:"prefix"`
	Announced bool         `json:"announced"`
	Reason    string       `json:"reason"`
	Since     time.Time    `json:"since"` // when it was last announced or withdrawn
}

// WriteTable writes st as a table, one line per peer and per route:
//
//	Peer 192.0.2.1 AS 65000 state Established up 00:01:02 updates sent 2 received 0
//	Route 203.0.113.10/32 announced real servers available: tcp 203.0.113.10:80 3 of 3
func (st *Status) WriteTable(w io.Writer, now time.Time) error {
	var err error
	p := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	p("BGP AS %d router-id %s, %d announcements, %d withdrawals\n", st.ASN, st.RouterID, st.Announcements, st.Withdrawals)
	for _, peer := range st.Peers {
		up := ""
		if peer.Up() && !peer.Since.IsZero() {
			up = " up " + clock(now.Sub(peer.Since))
		}
		p("Peer %s AS %d state %s%s updates sent %d received %d", peer.Address, peer.ASN, peer.State, up, peer.UpdatesSent, peer.UpdatesReceived)
		if !peer.Up() && peer.LastError != "" {
			p(" last error %q", peer.LastError)
		}
		p("\n")
	}
	for _, r := range st.Routes {
		state := "withdrawn"
		if r.Announced {
			state = "announced"
		}
		p("Route %s %s %s\n", r.Prefix, state, r.Reason)
	}
	return err
}

// clock writes d as HH:MM:SS, or DdHH:MM:SS past a day.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	if days := s / 86400; days > 0 {
		return fmt.Sprintf("%dd%02d:%02d:%02d", days, s%86400/3600, s%3600/60, s%60)
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s%3600/60, s%60)
}
