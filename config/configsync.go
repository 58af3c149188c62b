package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/udr-lb/udr/admin"
)

// The defaults of udr.yaml's sync block: the kernel's sync daemon
// defaults, those of ipvsadm --start-daemon (admin).
var DefaultSyncGroup = admin.DefaultSyncGroup

const (
	DefaultSyncPort = admin.DefaultSyncPort
	DefaultSyncTTL  = admin.DefaultSyncTTL
	// MaxSyncMaxLen is the longest sync message: a UDP datagram's
	// payload over IPv4 (ipvsadm's bound for --sync-maxlen).
	MaxSyncMaxLen = 65535 - 20 - 8
	// MaxSyncPeers bounds the unicast peers of the sync block.
	MaxSyncPeers = 64
)

// Sync is udr.yaml's sync block: the IPVS connection sync daemons
// (ipvsadm --start-daemon) that udr run starts, with their options, shared
// by the master and the backup.
//
//	sync:
//	  master: false          # send this director's connections (--start-daemon master)
//	  backup: false          # receive the peers' connections (--start-daemon backup)
//	  interface: ""          # the multicast interface; "" = the director's interface
//	  syncid: 0              # 0..255; a backup with syncid 0 takes every syncid
//	  maxlen: 0              # message length, 1..65507; 0 = the kernel's default (1472)
//	  group: 224.0.0.81      # multicast group, IPv4 or IPv6; none: the peers only
//	  port: 8848             # UDP port of the group and of the backup's socket
//	  ttl: 1                 # multicast TTL (hop limit), 1..255
//	  peers: []              # unicast peers, addr or addr:port (port: the sync port),
//	                         # sent to beside the group: udr's own addition
type Sync struct {
	Master, Backup bool
	Interface      string
	SyncID         int
	MaxLen         int
	Group          netip.Addr // invalid for none: unicast to the peers only
	Port           int
	TTL            int
	Peers          []netip.AddrPort
}

// Enabled reports whether the block starts a daemon.
func (s Sync) Enabled() bool { return s.Master || s.Backup }

// Equal reports whether s and o are the same configuration.
func (s Sync) Equal(o Sync) bool {
	if len(s.Peers) != len(o.Peers) {
		return false
	}
	for i := range s.Peers {
		if s.Peers[i] != o.Peers[i] {
			return false
		}
	}
	s.Peers, o.Peers = nil, nil
	return s.Master == o.Master && s.Backup == o.Backup && s.Interface == o.Interface && s.SyncID == o.SyncID &&
		s.MaxLen == o.MaxLen && s.Group == o.Group && s.Port == o.Port && s.TTL == o.TTL
}

// DefaultSync is the sync block's defaults: no daemon.
func DefaultSync() Sync {
	return Sync{Group: DefaultSyncGroup, Port: DefaultSyncPort, TTL: DefaultSyncTTL}
}

type syncDoc struct {
	Master    ast.Node `yaml:"master"`
	Backup    ast.Node `yaml:"backup"`
	Interface ast.Node `yaml:"interface"`
	SyncID    ast.Node `yaml:"syncid"`
	MaxLen    ast.Node `yaml:"maxlen"`
	Group     ast.Node `yaml:"group"`
	Port      ast.Node `yaml:"port"`
	TTL       ast.Node `yaml:"ttl"`
	Peers     ast.Node `yaml:"peers"`
}

// sync converts the sync block; every problem is reported with its field
// path (sync.peers[1], ...).
func (d *configDecoder) sync(doc *syncDoc) Sync {
	s := DefaultSync()
	if doc == nil {
		return s
	}
	s.Master, _ = d.boolean("sync.master", doc.Master)
	s.Backup, _ = d.boolean("sync.backup", doc.Backup)
	var ok bool
	s.Interface, ok = d.str("sync.interface", doc.Interface, "")
	if ok && s.Interface != "" {
		if err := CheckInterfaceName(s.Interface); err != nil {
			d.errorf("sync.interface", "%v", err)
		}
	}
	id, _ := d.integer("sync.syncid", doc.SyncID, 0, 255, 0)
	s.SyncID = int(id)
	maxLen, _ := d.integer("sync.maxlen", doc.MaxLen, 0, MaxSyncMaxLen, 0)
	s.MaxLen = int(maxLen)
	if sn, ok := doc.Group.(*ast.StringNode); ok && sn.Value == "none" {
		s.Group = netip.Addr{}
	} else if !absent(doc.Group) {
		if g, ok := d.addr("sync.group", doc.Group); ok {
			if err := CheckSyncGroup(g); err != nil {
				d.errorf("sync.group", "%v", err)
			} else {
				s.Group = g
			}
		}
	}
	port, _ := d.integer("sync.port", doc.Port, 1, 65535, DefaultSyncPort)
	s.Port = int(port)
	ttl, _ := d.integer("sync.ttl", doc.TTL, 1, 255, DefaultSyncTTL)
	s.TTL = int(ttl)
	peers, _ := d.stringList("sync.peers", doc.Peers)
	if !s.Group.IsValid() && len(peers) == 0 {
		d.errorf("sync.group", "none needs peers: with neither a group nor peers, nothing is sent or received")
	}
	if len(peers) > MaxSyncPeers {
		d.errorf("sync.peers", "%d peers, at most %d", len(peers), MaxSyncPeers)
		peers = nil
	}
	for i, p := range peers {
		path := fmt.Sprintf("sync.peers[%d]", i)
		ap, err := ParseSyncPeer(p, uint16(s.Port))
		if err != nil {
			d.errorf(path, "%v", err)
			continue
		}
		if j := indexPeer(s.Peers, ap); j >= 0 {
			d.errorf(path, "%s given twice", ap)
			continue
		}
		s.Peers = append(s.Peers, ap)
	}
	return s
}

func indexPeer(list []netip.AddrPort, ap netip.AddrPort) int {
	for i, p := range list {
		if p == ap {
			return i
		}
	}
	return -1
}

// CheckSyncGroup checks a sync daemon's multicast group (sync.group,
// --sync-group): an IPv4 or IPv6 multicast address, as the kernel wants.
func CheckSyncGroup(g netip.Addr) error {
	if !g.Unmap().IsMulticast() {
		return fmt.Errorf("%s is not a multicast address", g)
	}
	return nil
}

// ParseSyncPeer reads a unicast sync peer (sync.peers, --sync-peers):
// ADDR, ADDR:PORT or [ADDR]:PORT, an address a datagram can be sent to
// (not unspecified, multicast or broadcast). Without a port it takes
// port.
func ParseSyncPeer(s string, port uint16) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, aerr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if aerr != nil || a.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("%q is not an address or address:port", s)
		}
		ap = netip.AddrPortFrom(a, port)
	}
	a := ap.Addr().Unmap()
	switch {
	case ap.Addr().Zone() != "":
		return netip.AddrPort{}, fmt.Errorf("%q: a zone is not supported", s)
	case ap.Port() == 0:
		return netip.AddrPort{}, fmt.Errorf("%q: port 0", s)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.AddrPort{}, fmt.Errorf("%s is not a unicast address", a)
	}
	return netip.AddrPortFrom(a, ap.Port()), nil
}

// CheckInterfaceName checks an interface name as Linux takes it: 1..15
// bytes, no '/' or white space, not "." or "..".
func CheckInterfaceName(s string) error {
	if s == "" || len(s) > maxIfName || strings.ContainsAny(s, "/ \t\n:") || s == "." || s == ".." {
		return fmt.Errorf("%q is not an interface name", s)
	}
	return nil
}
