package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBGPCollector(t *testing.T) {
	snap := &BGP{
		Peers:         []BGPPeer{{Address: "192.0.2.1", Up: true, UpdatesSent: 3, UpdatesReceived: 1}, {Address: "192.0.2.9"}},
		Routes:        []BGPRoute{{Prefix: "203.0.113.10/32", Announced: true}, {Prefix: "203.0.113.11/32"}},
		Announcements: 4,
		Withdrawals:   2,
	}
	c := NewBGPCollector(func() *BGP { return snap })
	const want = `
# HELP udr_bgp_peer_up Whether the BGP session with the peer is established (1) or not (0).
# TYPE udr_bgp_peer_up gauge
udr_bgp_peer_up{peer="192.0.2.1"} 1
udr_bgp_peer_up{peer="192.0.2.9"} 0
# HELP udr_bgp_peer_updates_total BGP UPDATE messages exchanged with the peer, by direction (sent, received), over every session.
# TYPE udr_bgp_peer_updates_total counter
udr_bgp_peer_updates_total{direction="received",peer="192.0.2.1"} 1
udr_bgp_peer_updates_total{direction="received",peer="192.0.2.9"} 0
udr_bgp_peer_updates_total{direction="sent",peer="192.0.2.1"} 3
udr_bgp_peer_updates_total{direction="sent",peer="192.0.2.9"} 0
# HELP udr_bgp_route_announced Whether udr announces the VIP's route (1) or has withdrawn it (0).
# TYPE udr_bgp_route_announced gauge
udr_bgp_route_announced{prefix="203.0.113.10/32"} 1
udr_bgp_route_announced{prefix="203.0.113.11/32"} 0
# HELP udr_bgp_route_changes_total Routes udr announced or withdrew, by change (announce, withdraw).
# TYPE udr_bgp_route_changes_total counter
udr_bgp_route_changes_total{change="announce"} 4
udr_bgp_route_changes_total{change="withdraw"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	snap = nil // no BGP: nothing
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("without BGP the collector reports %d metrics, want none", n)
	}
}
