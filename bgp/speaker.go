package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Speaker is a BGP speaker that originates host routes: GoBGP's server,
// with udr's peers, its import policy and the routes it announced.
// Its methods are safe for concurrent use.
type Speaker struct {
	cfg Config
	srv *server.BgpServer
	log *slog.Logger

	mu     sync.Mutex
	routes map[netip.Prefix]uuid.UUID // announced, with GoBGP's handle
	closed bool

	// states are each peer's last session state, for the log.
	statesMu sync.Mutex
	states   map[netip.Addr]gobgp.FSMState

	announced, withdrawn atomic.Uint64
	stopWatch            context.CancelFunc
}

// Start starts GoBGP with cfg's global settings and peers. It returns
// when the server runs; the sessions come up in the background (Peers
// shows them). log receives udr's lines about peers and routes; GoBGP's
// own lines go to it at WARN and above.
func Start(cfg Config, log *slog.Logger) (_ *Speaker, err error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("bgp: router_id %s: want an IPv4 address", cfg.RouterID)
	}
	if cfg.ListenPort == 0 && slices.ContainsFunc(cfg.Peers, func(p Peer) bool { return p.Passive }) {
		return nil, errors.New("bgp: a passive peer needs listen_port")
	}
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelWarn)
	glog := slog.New(minLevel{log.Handler(), lvl}).With("component", "gobgp")
	s := &Speaker{
		cfg:    cfg,
		srv:    server.NewBgpServer(server.LoggerOption(glog, lvl)),
		log:    log,
		routes: make(map[netip.Prefix]uuid.UUID),
		states: make(map[netip.Addr]gobgp.FSMState),
	}
	go s.srv.Serve()
	defer func() {
		if err != nil {
			s.srv.Stop()
		}
	}()
	port := int32(cfg.ListenPort)
	if port == 0 {
		port = -1 // GoBGP: no listener
	}
	ctx := context.Background()
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        cfg.ASN,
		RouterId:   cfg.RouterID.String(),
		ListenPort: port,
	}}); err != nil {
		return nil, fmt.Errorf("bgp: start: %w", err)
	}
	if err := s.refuseImports(ctx); err != nil {
		return nil, fmt.Errorf("bgp: import policy: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	if err := s.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.peerEvent}, server.WatchPeer()); err != nil {
		cancel()
		return nil, fmt.Errorf("bgp: watch peers: %w", err)
	}
	for _, p := range cfg.Peers {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
			cancel()
			return nil, fmt.Errorf("bgp: peer %s: %w", p.Address, err)
		}
	}
	return s, nil
}

// refuseImports installs a global import policy that rejects every route
// learnt from a peer: udr originates routes and uses none. (A default
// action of reject would refuse udr's own routes too: GoBGP applies the
// global import policy to locally originated paths.)
func (s *Speaker) refuseImports(ctx context.Context) error {
	if len(s.cfg.Peers) == 0 {
		return nil
	}
	var peers []string
	for _, p := range s.cfg.Peers {
		peers = append(peers, HostPrefix(p.Address).String())
	}
	if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: "udr-peers", List: peers,
	}}); err != nil {
		return err
	}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: "udr-refuse-learnt",
		Statements: []*api.Statement{{
			Name:       "udr-refuse-learnt-routes",
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "udr-peers"}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		}},
	}}); err != nil {
		return err
	}
	return s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: "udr-refuse-learnt"}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}})
}

// apiPeer is p as GoBGP takes it: both unicast families, udr's timers.
func apiPeer(p Peer) *api.Peer {
	hold := p.HoldTime
	if hold == 0 {
		hold = DefaultHoldTime
	}
	keep := p.Keepalive
	if keep == 0 {
		keep = hold / 3
	}
	retry := p.ConnectRetry
	if retry == 0 {
		retry = DefaultConnectRetry
	}
	port := uint32(p.Port)
	if port == 0 {
		port = DefaultPort
	}
	family := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}
	}
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, AuthPassword: p.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(hold / time.Second),
			KeepaliveInterval: uint64(keep / time.Second),
			ConnectRetry:      uint64(retry / time.Second),
			// Send a change at once: a withdrawal must not wait for the
			// 30 s eBGP advertisement interval.
			MinimumAdvertisementInterval: 0,
		}},
		Transport: &api.Transport{RemotePort: port, PassiveMode: p.Passive},
		AfiSafis:  []*api.AfiSafi{family(api.Family_AFI_IP), family(api.Family_AFI_IP6)},
	}
}

// HostPrefix returns the host route of addr: addr/32 or addr/128.
func HostPrefix(addr netip.Addr) netip.Prefix {
	return netip.PrefixFrom(addr, addr.BitLen())
}

// path builds the route to p with the configured attributes.
func (s *Speaker) path(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := gobgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []gobgp.PathAttributeInterface{
		gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		gobgp.NewPathAttributeAsPath(nil), // GoBGP prepends the ASN for eBGP peers
	}
	family := gobgp.RF_IPv4_UC
	if p.Addr().Is4() {
		nh := s.cfg.NextHop
		if !nh.IsValid() {
			nh = netip.IPv4Unspecified() // GoBGP puts the session's local address
		}
		a, err := gobgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	} else {
		family = gobgp.RF_IPv6_UC
		nh := s.cfg.NextHop6
		if !nh.IsValid() {
			nh = netip.IPv6Unspecified()
		}
		a, err := gobgp.NewPathAttributeMpReachNLRI(family, []gobgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if s.cfg.MED != nil {
		attrs = append(attrs, gobgp.NewPathAttributeMultiExitDisc(*s.cfg.MED))
	}
	if len(s.cfg.Communities) > 0 {
		attrs = append(attrs, gobgp.NewPathAttributeCommunities(s.cfg.Communities))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs}, nil
}

// Announce originates the route to p, which every peer then receives. A
// prefix announced already is left alone.
func (s *Speaker) Announce(p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp: speaker closed")
	}
	if _, ok := s.routes[p]; ok {
		return nil
	}
	path, err := s.path(p)
	if err != nil {
		return fmt.Errorf("bgp: announce %s: %w", p, err)
	}
	resp, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
	if err != nil {
		return fmt.Errorf("bgp: announce %s: %w", p, err)
	}
	s.routes[p] = resp[0].UUID
	s.announced.Add(1)
	return nil
}

// Withdraw takes the route to p back. A prefix not announced is left
// alone.
func (s *Speaker) Withdraw(p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.routes[p]
	if !ok || s.closed {
		return nil
	}
	if err := s.srv.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", p, err)
	}
	delete(s.routes, p)
	s.withdrawn.Add(1)
	return nil
}

// Announced returns the prefixes announced, sorted.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Prefix, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// Counts returns how many announcements and withdrawals the speaker made.
func (s *Speaker) Counts() (announced, withdrawn uint64) {
	return s.announced.Load(), s.withdrawn.Load()
}

// Close stops GoBGP: its sessions end with a Cease NOTIFICATION, and the
// peers drop every route they had from udr.
func (s *Speaker) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.stopWatch()
	s.srv.Stop()
}

// minLevel passes on the records of level lvl and above: GoBGP logs every
// session event at INFO, which udr's own lines (peerEvent) say shorter.
type minLevel struct {
	slog.Handler
	lvl slog.Leveler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.lvl.Level() && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.lvl}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.lvl}
}
