// Package bgp announces udr's VIPs to routers by BGP, through GoBGP
// (github.com/osrg/gobgp/v4) embedded as a library: no gRPC listener, no
// gobgpd, and no TCP listener on port 179 unless a peer is passive
// (Config.ListenPort). A Speaker originates one host route per VIP (/32
// or /128) with Announce and takes it back with Withdraw; the routers
// spread flows over every director that announces a VIP (ECMP). Routes
// learnt from the peers are refused (a default import policy of reject):
// udr originates routes and uses none.
//
// Which VIPs to announce is the director's decision (director/bgp.go);
// this package only speaks BGP. Its sessions are opened in the network
// namespace of the process, from GoBGP's own goroutines.
package bgp
