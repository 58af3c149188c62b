package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/bgp"
)

func TestLoadConfigBGP(t *testing.T) {
	const file = `interface: eth0
services:
  - {address: 203.0.113.10, port: 80, scheduler: mh, servers: [{address: 192.0.2.11}]}
bgp:
  asn: 65001
  router_id: 192.0.2.2
  next_hop: 192.0.2.2
  next_hop6: "2001:db8::2"
  communities: ["65001:100", no-export]
  med: 10
  min_healthy: 2
  drain: 5s
  listen_port: 179
  peers:
    - {address: 192.0.2.1, asn: 65000, hold_time: 3s, keepalive: 1s}
    - {address: "2001:db8::1", asn: 4200000000, port: 1179, passive: true, password: secret, connect_retry: 2s}
`
	fc, _, warnings, err := parseConfig([]byte(file), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings for an mh service: %q", warnings)
	}
	med := uint32(10)
	want := &bgp.Config{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.2"), ListenPort: 179,
		NextHop: netip.MustParseAddr("192.0.2.2"), NextHop6: netip.MustParseAddr("2001:db8::2"),
		Communities: []uint32{65001<<16 | 100, 0xFFFFFF01}, MED: &med, MinHealthy: 2, Drain: 5 * time.Second,
		Peers: []bgp.Peer{
			{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000, Port: 179, HoldTime: 3 * time.Second, Keepalive: time.Second, ConnectRetry: bgp.DefaultConnectRetry},
			{Address: netip.MustParseAddr("2001:db8::1"), ASN: 4200000000, Port: 1179, HoldTime: bgp.DefaultHoldTime, ConnectRetry: 2 * time.Second, Passive: true, Password: "secret"},
		},
	}
	if diff := cmp.Diff(want, fc.BGP, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("bgp (-want +got):\n%s", diff)
	}
}

func TestLoadConfigBGPDefaults(t *testing.T) {
	fc, _, _, err := parseConfig([]byte("interface: eth0\nbgp: {asn: 65001, router_id: 192.0.2.2, peers: [{address: 192.0.2.1, asn: 65000}]}\n"), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	b := fc.BGP
	if b.MinHealthy != 1 || b.Drain != 2*time.Second || b.ListenPort != 0 || b.MED != nil || b.NextHop.IsValid() || b.NextHop6.IsValid() {
		t.Errorf("defaults: %+v", b)
	}
	if p := b.Peers[0]; p.Port != 179 || p.HoldTime != 90*time.Second || p.Keepalive != 0 || p.ConnectRetry != 5*time.Second || p.Passive {
		t.Errorf("peer defaults: %+v", p)
	}
	fc, _, _, err = parseConfig([]byte("interface: eth0\n"), "udr.yaml", ".")
	if err != nil || fc.BGP != nil {
		t.Errorf("no bgp key: %v, %+v; want no BGP", err, fc.BGP)
	}
}

func TestLoadConfigBGPInvalid(t *testing.T) {
	const base = "interface: eth0\nbgp:\n"
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown key", "  asn: 65001\n  router_id: 192.0.2.2\n  peers: [{address: 192.0.2.1, asn: 65000}]\n  holdtime: 3s\n",
			"udr.yaml:6: bgp.holdtime: unknown field"},
		{"unknown peer key", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, multihop: 2}\n",
			"udr.yaml:6: bgp.peers[0].multihop: unknown field"},
		{"everything missing", "  med: 1\n",
			"udr.yaml:2: bgp.asn: required\nudr.yaml:2: bgp.router_id: required\nudr.yaml:2: bgp.peers: at least one peer is required"},
		{"asn 0", "  asn: 0\n  router_id: 192.0.2.2\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:3: bgp.asn: 0 out of range 1..4294967295"},
		{"asn too big", "  asn: 4294967296\n  router_id: 192.0.2.2\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:3: bgp.asn: 4294967296 out of range 1..4294967295"},
		{"router_id v6", "  asn: 65001\n  router_id: \"2001:db8::2\"\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:4: bgp.router_id: 2001:db8::2 is not an IPv4 address: a BGP router ID is 4 bytes"},
		{"router_id bad", "  asn: 65001\n  router_id: 192.0.2.256\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			`udr.yaml:4: bgp.router_id: "192.0.2.256" is not an IP address`},
		{"peer without asn", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - address: 192.0.2.1\n",
			"udr.yaml:6: bgp.peers[0].asn: required"},
		{"peer without address", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - asn: 65000\n",
			"udr.yaml:6: bgp.peers[0].address: required"},
		{"duplicate peer", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000}\n    - {address: 192.0.2.1, asn: 65002}\n",
			"udr.yaml:7: bgp.peers[1].address: 192.0.2.1 already given by bgp.peers[0]"},
		{"hold time too short", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, hold_time: 2s}\n",
			"udr.yaml:6: bgp.peers[0].hold_time: 2s out of range 3s..65535s"},
		{"hold time fraction", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, hold_time: 3500ms}\n",
			"udr.yaml:6: bgp.peers[0].hold_time: 3500ms is not a whole number of seconds"},
		{"keepalive not below hold", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, hold_time: 3s, keepalive: 3s}\n",
			"udr.yaml:6: bgp.peers[0].keepalive: 3s is not less than hold_time 3s"},
		{"passive without listener", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, passive: true}\n",
			"udr.yaml:6: bgp.peers[0].passive: a passive peer connects to udr: set bgp.listen_port (179)"},
		{"port 0", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, port: 0}\n",
			"udr.yaml:6: bgp.peers[0].port: 0 out of range 1..65535"},
		{"long password", "  asn: 65001\n  router_id: 192.0.2.2\n  peers:\n    - {address: 192.0.2.1, asn: 65000, password: " + strings.Repeat("x", 81) + "}\n",
			"udr.yaml:6: bgp.peers[0].password: 81 bytes, at most 80 (TCP MD5 keys)"},
		{"next_hop v6", "  asn: 65001\n  router_id: 192.0.2.2\n  next_hop: \"2001:db8::2\"\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:5: bgp.next_hop: 2001:db8::2 is not an IPv4 address (next_hop6 takes IPv6)"},
		{"next_hop6 v4", "  asn: 65001\n  router_id: 192.0.2.2\n  next_hop6: 192.0.2.2\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:5: bgp.next_hop6: 192.0.2.2 is not an IPv6 address (next_hop takes IPv4)"},
		{"next_hop unspecified", "  asn: 65001\n  router_id: 192.0.2.2\n  next_hop: 0.0.0.0\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:5: bgp.next_hop: 0.0.0.0 cannot be a next hop"},
		{"community", "  asn: 65001\n  router_id: 192.0.2.2\n  communities: [\"65536:1\"]\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			`udr.yaml:5: bgp.communities[0]: "65536:1" is not a community: want AS:VALUE (each 0..65535), no-export, no-advertise or no-export-subconfed`},
		{"min_healthy 0", "  asn: 65001\n  router_id: 192.0.2.2\n  min_healthy: 0\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:5: bgp.min_healthy: 0 out of range 1..65535"},
		{"drain too long", "  asn: 65001\n  router_id: 192.0.2.2\n  drain: 2m\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:5: bgp.drain: 2m out of range 0s..1m"},
		{"med negative", "  asn: 65001\n  router_id: 192.0.2.2\n  med: -1\n  peers: [{address: 192.0.2.1, asn: 65000}]\n",
			"udr.yaml:5: bgp.med: -1 out of range 0..4294967295"},
		{"IPv6 VIP to an IPv4 peer", "  asn: 65001\n  router_id: 192.0.2.2\n  peers: [{address: 192.0.2.1, asn: 65000}]\nservices:\n  - {address: \"2001:db8::10\", port: 80}\n",
			"udr.yaml:2: bgp.next_hop6: required: the IPv6 VIPs (2001:db8::10) are announced to IPv4 peers (192.0.2.1), whose sessions have no IPv6 address to put as next hop"},
		{"IPv4 VIP to an IPv6 peer", "  asn: 65001\n  router_id: 192.0.2.2\n  peers: [{address: \"2001:db8::1\", asn: 65000}]\nservices:\n  - {address: 203.0.113.10, port: 80}\n",
			"udr.yaml:2: bgp.next_hop: required: the IPv4 VIPs (203.0.113.10) are announced to IPv6 peers (2001:db8::1), whose sessions have no IPv4 address to put as next hop"},
		{"peers not a list", "  asn: 65001\n  router_id: 192.0.2.2\n  peers: {address: 192.0.2.1}\n",
			"udr.yaml:5: bgp.peers: want a list, got mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := parseConfig([]byte(base+tt.yaml), "udr.yaml", ".")
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseConfig: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

// TestBGPWarnings checks that a service announced by BGP whose scheduler
// keeps state of its own is warned about, and that sh, mh and dh are not.
func TestBGPWarnings(t *testing.T) {
	const file = `interface: eth0
services:
  - {address: 203.0.113.10, port: 80, scheduler: mh, servers: [{address: 192.0.2.11}]}
  - {address: 203.0.113.10, port: 443, scheduler: wlc, servers: [{address: 192.0.2.11}]}
  - {address: 203.0.113.11, port: 53, protocol: udp, scheduler: sh, servers: [{address: 192.0.2.11}]}
  - {address: 203.0.113.12, port: 80, scheduler: dh, servers: [{address: 192.0.2.11}]}
  - {address: 203.0.113.13, port: 80, scheduler: rr, servers: [{address: 192.0.2.11}]}
`
	_, _, warnings, err := parseConfig([]byte(file+"bgp: {asn: 65001, router_id: 192.0.2.2, peers: [{address: 192.0.2.1, asn: 65000}]}\n"), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"udr.yaml: bgp: service tcp 203.0.113.10:443 uses wlc, whose picks depend on this director's own state: a flow that a route change moves to another director loses its connection there; with BGP use mh (or sh), which every director computes alike from the same rules, or run connection sync (sync: {master: true, backup: true})",
		"udr.yaml: bgp: service tcp 203.0.113.13:80 uses rr, whose picks depend on this director's own state: a flow that a route change moves to another director loses its connection there; with BGP use mh (or sh), which every director computes alike from the same rules, or run connection sync (sync: {master: true, backup: true})",
	}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if _, _, warnings, _ := parseConfig([]byte(file), "udr.yaml", "."); len(warnings) != 0 {
		t.Errorf("warnings without bgp: %q", warnings)
	}
	const bgpSection = "bgp: {asn: 65001, router_id: 192.0.2.2, peers: [{address: 192.0.2.1, asn: 65000}]}\n"
	if _, _, warnings, err := parseConfig([]byte(file+bgpSection+"sync: {master: true, backup: true}\n"), "udr.yaml", "."); err != nil || len(warnings) != 0 {
		t.Errorf("warnings with sync master and backup: %q, %v", warnings, err)
	}
	if _, _, warnings, _ := parseConfig([]byte(file+bgpSection+"sync: {master: true}\n"), "udr.yaml", "."); len(warnings) != 2 {
		t.Errorf("warnings with a sync master alone: %q, want 2", warnings)
	}
}
