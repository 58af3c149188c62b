package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/udr-lb/udr/bgp"
	"github.com/udr-lb/udr/service"
)

// bgpDoc is the bgp mapping of udr.yaml as written:
//
//	bgp:
//	  asn: 65001                 # udr's AS (required), 1..4294967295
//	  router_id: 192.0.2.2       # IPv4 (required)
//	  listen_port: 0             # TCP port for passive peers; 0 = no listener (udr connects)
//	  next_hop: ""               # IPv4 routes' next hop; "" = the session's own address
//	  next_hop6: ""              # IPv6 routes' next hop; "" = the session's own address
//	  communities: []            # "AS:VALUE", no-export, no-advertise or no-export-subconfed
//	  med: absent                # MULTI_EXIT_DISC, 0..4294967295
//	  min_healthy: 1             # available real servers each service of a VIP needs
//	  drain: 2s                  # forwarding goes on this long after SIGTERM withdrew the routes, 0s..1m
//	  peers:                     # at least one
//	    - address: 192.0.2.1     # required
//	      asn: 65000             # required
//	      port: 179
//	      hold_time: 90s         # 3s..65535s, whole seconds
//	      keepalive: 30s         # default hold_time/3; less than hold_time
//	      connect_retry: 5s      # 1s..1h
//	      passive: false         # wait for the peer to connect (needs listen_port)
//	      password: ""           # TCP MD5 signature (RFC 2385), at most 80 bytes
type bgpDoc struct {
	ASN         ast.Node  `yaml:"asn"`
	RouterID    ast.Node  `yaml:"router_id"`
	ListenPort  ast.Node  `yaml:"listen_port"`
	NextHop     ast.Node  `yaml:"next_hop"`
	NextHop6    ast.Node  `yaml:"next_hop6"`
	Communities ast.Node  `yaml:"communities"`
	MED         ast.Node  `yaml:"med"`
	MinHealthy  ast.Node  `yaml:"min_healthy"`
	Drain       ast.Node  `yaml:"drain"`
	Peers       []peerDoc `yaml:"peers"`
}

type peerDoc struct {
	Address      ast.Node `yaml:"address"`
	ASN          ast.Node `yaml:"asn"`
	Port         ast.Node `yaml:"port"`
	HoldTime     ast.Node `yaml:"hold_time"`
	Keepalive    ast.Node `yaml:"keepalive"`
	ConnectRetry ast.Node `yaml:"connect_retry"`
	Passive      ast.Node `yaml:"passive"`
	Password     ast.Node `yaml:"password"`
}

// maxASN is the largest 4-octet AS number (RFC 6793).
const maxASN = 1<<32 - 1

// maxMD5Key is the longest TCP MD5 key Linux takes (TCP_MD5SIG_MAXKEYLEN).
const maxMD5Key = 80

// bgp converts the bgp mapping; nil when it is absent.
func (d *configDecoder) bgp(doc *bgpDoc) *bgp.Config {
	if doc == nil {
		return nil
	}
	c := &bgp.Config{}
	asn, ok := d.integer("bgp.asn", doc.ASN, 1, maxASN, 0)
	if ok && absent(doc.ASN) {
		d.errorf("bgp.asn", "required")
	}
	c.ASN = uint32(asn)
	if absent(doc.RouterID) {
		d.errorf("bgp.router_id", "required")
	} else if a, ok := d.addr("bgp.router_id", doc.RouterID); ok {
		if !a.Is4() {
			d.errorf("bgp.router_id", "%s is not an IPv4 address: a BGP router ID is 4 bytes", a)
		}
		c.RouterID = a
	}
	port, _ := d.integer("bgp.listen_port", doc.ListenPort, 0, 65535, 0)
	c.ListenPort = int(port)
	c.NextHop = d.optionalAddr("bgp.next_hop", doc.NextHop, true)
	c.NextHop6 = d.optionalAddr("bgp.next_hop6", doc.NextHop6, false)
	list, _ := d.stringList("bgp.communities", doc.Communities)
	for i, s := range list {
		v, err := parseCommunity(s)
		if err != nil {
			d.errorf(fmt.Sprintf("bgp.communities[%d]", i), "%v", err)
			continue
		}
		c.Communities = append(c.Communities, v)
	}
	if !absent(doc.MED) {
		med, ok := d.integer("bgp.med", doc.MED, 0, maxASN, 0)
		if ok {
			m := uint32(med)
			c.MED = &m
		}
	}
	minHealthy, _ := d.integer("bgp.min_healthy", doc.MinHealthy, 1, 65535, bgp.DefaultMinHealthy)
	c.MinHealthy = int(minHealthy)
	c.Drain, _ = d.duration("bgp.drain", doc.Drain, 0, bgp.MaxDrain, bgp.DefaultDrain, false)
	if len(doc.Peers) == 0 {
		d.errorf("bgp.peers", "at least one peer is required")
	}
	seen := make(map[netip.Addr]int)
	for i := range doc.Peers {
		p, ok := d.peer(fmt.Sprintf("bgp.peers[%d]", i), &doc.Peers[i])
		if !ok {
			continue
		}
		if j, dup := seen[p.Address]; dup {
			d.errorf(fmt.Sprintf("bgp.peers[%d].address", i), "%s already given by bgp.peers[%d]", p.Address, j)
			continue
		}
		seen[p.Address] = i
		if p.Passive && c.ListenPort == 0 {
			d.errorf(fmt.Sprintf("bgp.peers[%d].passive", i), "a passive peer connects to udr: set bgp.listen_port (179)")
		}
		c.Peers = append(c.Peers, p)
	}
	return c
}

// peer converts one peer of bgp.peers.
func (d *configDecoder) peer(path string, doc *peerDoc) (bgp.Peer, bool) {
	var p bgp.Peer
	addr, ok := d.addr(path+".address", doc.Address)
	p.Address = addr
	asn, good := d.integer(path+".asn", doc.ASN, 1, maxASN, 0)
	if good && absent(doc.ASN) {
		d.errorf(path+".asn", "required")
		good = false
	}
	ok = ok && good
	p.ASN = uint32(asn)
	port, _ := d.integer(path+".port", doc.Port, 1, 65535, bgp.DefaultPort)
	p.Port = uint16(port)
	p.HoldTime, _ = d.duration(path+".hold_time", doc.HoldTime, 3*time.Second, 65535*time.Second, bgp.DefaultHoldTime, true)
	keep, good := d.duration(path+".keepalive", doc.Keepalive, time.Second, 65535*time.Second, 0, true)
	if good && keep != 0 && keep >= p.HoldTime {
		d.errorf(path+".keepalive", "%s is not less than hold_time %s", shortDuration(keep), shortDuration(p.HoldTime))
	}
	p.Keepalive = keep
	p.ConnectRetry, _ = d.duration(path+".connect_retry", doc.ConnectRetry, time.Second, time.Hour, bgp.DefaultConnectRetry, true)
	p.Passive, _ = d.boolean(path+".passive", doc.Passive)
	p.Password, good = d.str(path+".password", doc.Password, "")
	if good && len(p.Password) > maxMD5Key {
		d.errorf(path+".password", "%d bytes, at most %d (TCP MD5 keys)", len(p.Password), maxMD5Key)
	}
	return p, ok
}

// optionalAddr returns the address at path, of the family asked, or the
// zero Addr when it is absent or "".
func (d *configDecoder) optionalAddr(path string, n ast.Node, v4 bool) netip.Addr {
	s, ok := d.str(path, n, "")
	if !ok || s == "" {
		return netip.Addr{}
	}
	a, ok := d.addr(path, n)
	if !ok {
		return netip.Addr{}
	}
	switch {
	case v4 && !a.Is4():
		d.errorf(path, "%s is not an IPv4 address (next_hop6 takes IPv6)", a)
	case !v4 && !a.Is6():
		d.errorf(path, "%s is not an IPv6 address (next_hop takes IPv4)", a)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		d.errorf(path, "%s cannot be a next hop", a)
	default:
		return a
	}
	return netip.Addr{}
}

// bgpNextHops checks that every VIP of cfg has a next hop its peers can
// use: a route of the other family than a session's address carries the
// session's own address only when next_hop (IPv4 VIPs) or next_hop6 (IPv6
// VIPs) gives none, which is not an address of the route's family.
func (d *configDecoder) bgpNextHops(c *bgp.Config, cfg *service.Config) {
	if c == nil || cfg == nil {
		return
	}
	var v4, v6 []string // VIPs, once each
	seen := make(map[netip.Addr]bool)
	for _, s := range service.SortedServices(cfg) {
		if seen[s.Addr] {
			continue
		}
		seen[s.Addr] = true
		if s.Addr.Is4() {
			v4 = append(v4, s.Addr.String())
		} else {
			v6 = append(v6, s.Addr.String())
		}
	}
	var peers4, peers6 []string
	for _, p := range c.Peers {
		if p.Address.Is4() {
			peers4 = append(peers4, p.Address.String())
		} else {
			peers6 = append(peers6, p.Address.String())
		}
	}
	if len(v6) > 0 && len(peers4) > 0 && !c.NextHop6.IsValid() {
		d.errorf("bgp.next_hop6", "required: the IPv6 VIPs (%s) are announced to IPv4 peers (%s), whose sessions have no IPv6 address to put as next hop", strings.Join(v6, ", "), strings.Join(peers4, ", "))
	}
	if len(v4) > 0 && len(peers6) > 0 && !c.NextHop.IsValid() {
		d.errorf("bgp.next_hop", "required: the IPv4 VIPs (%s) are announced to IPv6 peers (%s), whose sessions have no IPv4 address to put as next hop", strings.Join(v4, ", "), strings.Join(peers6, ", "))
	}
}

// wellKnownCommunities are RFC 1997's.
var wellKnownCommunities = map[string]uint32{
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
}

// parseCommunity parses "AS:VALUE" (each 0..65535) or a well-known name.
func parseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[s]; ok {
		return v, nil
	}
	as, val, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(as, 10, 16)
	v, err2 := strconv.ParseUint(val, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a community: want AS:VALUE (each 0..65535), no-export, no-advertise or no-export-subconfed", s)
	}
	return uint32(a)<<16 | uint32(v), nil
}

// statelessSchedulers pick a real server from the packet and the rules
// alone: every director with the same rules picks the same one.
var statelessSchedulers = map[string]bool{"sh": true, "mh": true, "dh": true}

// BGPWarnings returns a warning for each service of cfg, announced by BGP
// (bgpCfg not nil), whose scheduler's picks depend on this director's own
// state (connection counts, positions, caches, randomness): after a route
// change moves a flow to another director, that director, which has no
// entry for it, drops its packets (or, with sloppy_tcp, picks again, maybe
// another server). sh, mh and dh pick from the packet and the rules. With
// both sync daemons (master and backup) the other directors have the
// entries: no warning.
func BGPWarnings(name string, bgpCfg *bgp.Config, sync Sync, cfg *service.Config) []string {
	if bgpCfg == nil || cfg == nil || sync.Master && sync.Backup {
		return nil
	}
	var out []string
	for _, s := range service.SortedServices(cfg) {
		if statelessSchedulers[s.Scheduler] {
			continue
		}
		out = append(out, fmt.Sprintf("%s: bgp: service %s %s uses %s, whose picks depend on this director's own state: a flow that a route change moves to another director loses its connection there; with BGP use mh (or sh), which every director computes alike from the same rules, or run connection sync (sync: {master: true, backup: true})",
			name, strings.ToLower(s.Proto.String()), service.FormatAddrPort(s.Addr, s.Port), s.Scheduler))
	}
	return out
}
