package bgp

import (
	"net/netip"
	"time"
)

// Defaults of a bgp section of udr.yaml.
const (
	DefaultHoldTime     = 90 * time.Second // RFC 4271 section 10
	DefaultConnectRetry = 5 * time.Second  // RFC 4271 suggests 120 s; a restarted director should not wait that long
	DefaultPort         = 179
	DefaultMinHealthy   = 1
	DefaultDrain        = 2 * time.Second
	MaxDrain            = time.Minute
)

// Config is a bgp section: who udr is, whom it peers with, and what its
// routes carry.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // IPv4, as BGP router IDs are
	// ListenPort is the TCP port udr accepts sessions on: 0 for none
	// (udr connects to every peer itself), which is allowed only when no
	// peer is passive.
	ListenPort int
	Peers      []Peer
	// NextHop and NextHop6 are the next hops of the IPv4 and IPv6 routes;
	// an invalid address means the address of the session the route is
	// sent on (next-hop-self).
	NextHop, NextHop6 netip.Addr
	Communities       []uint32 // RFC 1997 communities, AS<<16 | value
	MED               *uint32  // MULTI_EXIT_DISC, nil for none
	// MinHealthy is how many available real servers (weight above 0, not
	// down by its health check) each service of a VIP needs for the VIP
	// to be announced.
	MinHealthy int
	// Drain is how long a stopping udr goes on forwarding after it
	// withdrew its routes, so that the routers move the flows first.
	Drain time.Duration
}

// Peer is one BGP neighbour.
type Peer struct {
	Address      netip.Addr
	ASN          uint32
	Port         uint16 // the peer's port; 0 = 179
	HoldTime     time.Duration
	Keepalive    time.Duration // 0 = HoldTime / 3
	ConnectRetry time.Duration // 0 = DefaultConnectRetry
	Passive      bool          // wait for the peer to connect (needs ListenPort)
	Password     string        // TCP MD5 signature (RFC 2385), "" for none
}
