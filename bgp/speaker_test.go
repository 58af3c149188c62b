package bgp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// freePort returns a TCP port of 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// router is a plain GoBGP server on 127.0.0.1:port that accepts the
// speaker's routes, as a router would.
func router(t *testing.T, port int) *server.BgpServer {
	t.Helper()
	r := server.NewBgpServer()
	go r.Serve()
	t.Cleanup(r.Stop)
	ctx := context.Background()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "192.0.2.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis:  apiPeer(Peer{}).AfiSafis, // IPv4 and IPv6 unicast
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// ribRoutes returns the router's best routes: prefix → next hop, and their
// communities and MED.
func ribRoutes(t *testing.T, r *server.BgpServer) map[netip.Prefix]routeSeen {
	t.Helper()
	out := make(map[netip.Prefix]routeSeen)
	for _, fam := range []gobgp.Family{gobgp.RF_IPv4_UC, gobgp.RF_IPv6_UC} {
		err := r.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(prefix gobgp.NLRI, paths []*apiutil.Path) {
				for _, p := range paths {
					if !p.Best {
						continue
					}
					pfx, err := netip.ParsePrefix(prefix.String())
					if err != nil {
						t.Errorf("prefix %q: %v", prefix.String(), err)
						continue
					}
					var seen routeSeen
					for _, a := range p.Attrs {
						switch a := a.(type) {
						case *gobgp.PathAttributeNextHop:
							seen.nextHop = a.Value
						case *gobgp.PathAttributeMpReachNLRI:
							seen.nextHop = a.Nexthop
						case *gobgp.PathAttributeCommunities:
							seen.communities = a.Value
						case *gobgp.PathAttributeMultiExitDisc:
							seen.med = a.Value
						case *gobgp.PathAttributeAsPath:
							seen.asPath = a.String()
						}
					}
					out[pfx] = seen
				}
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type routeSeen struct {
	nextHop     netip.Addr
	communities []uint32
	med         uint32
	asPath      string
}

// waitFor polls cond for up to 60 s (a loaded machine is slow, a session
// takes a few seconds).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSpeakerAnnounceWithdraw(t *testing.T) {
	port := freePort(t)
	r := router(t, port)
	med := uint32(20)
	s, err := Start(Config{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.2"),
		Peers: []Peer{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Port: uint16(port),
			HoldTime: 9 * time.Second, ConnectRetry: time.Second}},
		NextHop:     netip.MustParseAddr("198.51.100.2"),
		NextHop6:    netip.MustParseAddr("2001:db8::2"),
		Communities: []uint32{65001<<16 | 100},
		MED:         &med,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "the session to come up", func() bool {
		ps := s.Peers()
		return len(ps) == 1 && ps[0].Up()
	})
	if ps := s.Peers(); ps[0].Since.IsZero() || ps[0].ASN != 65000 {
		t.Errorf("peer status %+v: want an uptime and AS 65000", ps[0])
	}

	vip4 := HostPrefix(netip.MustParseAddr("203.0.113.10"))
	vip6 := HostPrefix(netip.MustParseAddr("2001:db8::10"))
	for _, p := range []netip.Prefix{vip4, vip6, vip4} { // the second vip4 changes nothing
		if err := s.Announce(p); err != nil {
			t.Fatal(err)
		}
	}
	// The router's own route must not reach the speaker's RIB.
	nlri, _ := gobgp.NewIPAddrPrefix(netip.MustParsePrefix("198.51.100.0/24"))
	nh, _ := gobgp.NewPathAttributeNextHop(netip.MustParseAddr("127.0.0.1"))
	if _, err := r.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: gobgp.RF_IPv4_UC, Nlri: nlri,
		Attrs: []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(0), nh}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both routes in the router's RIB", func() bool { return len(ribRoutes(t, r)) == 3 })
	got := ribRoutes(t, r)
	if nh := got[vip4].nextHop; nh != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("%s next hop %s, want 198.51.100.2", vip4, nh)
	}
	if c := got[vip4].communities; len(c) != 1 || c[0] != 65001<<16|100 {
		t.Errorf("%s communities %v, want [65001:100]", vip4, c)
	}
	if got[vip4].med != 20 || got[vip4].asPath != "{AsPath: 65001}" {
		t.Errorf("%s MED %d AS path %q, want 20 and 65001", vip4, got[vip4].med, got[vip4].asPath)
	}
	if _, ok := got[vip6]; !ok {
		t.Errorf("%s not in the router's RIB: %v", vip6, got)
	}
	waitFor(t, "the router's route to reach udr", func() bool { return s.Peers()[0].UpdatesReceived > 0 })
	if rib := ribRoutes(t, s.srv); len(rib) != 2 {
		t.Errorf("udr's RIB: %v, want only its own two routes (the router's refused)", rib)
	}
	if a, w := s.Counts(); a != 2 || w != 0 {
		t.Errorf("counts %d announced %d withdrawn, want 2 and 0", a, w)
	}

	if err := s.Withdraw(vip4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, vip4.String()+" withdrawn from the router", func() bool {
		rib := ribRoutes(t, r)
		_, has4 := rib[vip4]
		_, has6 := rib[vip6]
		return !has4 && has6
	})

	if got := s.Announced(); len(got) != 1 || got[0] != vip6 {
		t.Errorf("Announced() = %v, want [%s]", got, vip6)
	}

	s.Close() // the session ends: the router drops every route of udr
	waitFor(t, "the router to drop the routes of a closed speaker", func() bool { return len(ribRoutes(t, r)) == 1 })
	if err := s.Announce(vip4); err == nil {
		t.Error("Announce after Close: no error")
	}
}

func TestStartRefusesPassiveWithoutListener(t *testing.T) {
	_, err := Start(Config{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.2"),
		Peers: []Peer{{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000, Passive: true}}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || err.Error() != "bgp: a passive peer needs listen_port" {
		t.Fatalf("Start: %v, want the passive peer refused", err)
	}
}
