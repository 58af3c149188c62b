package conntrack

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Key identifies a connection or a persistence template, as the kernel's
// __ip_vs_conn_in_get and ip_vs_ct_in_get match them: client address and
// port, virtual address and port, protocol, and whether it is a template.
// Addresses are 16 bytes, IPv4 in its v4-mapped form. Key holds no pointer,
// so a table of a million of them is never scanned by the garbage collector.
//
// A template key (Template true) has CPort 0 and a client address masked
// to the service's persistence netmask; see Persistence.TemplateKey. An
// invalidated template's key has VPort 65535 and a CPort of its own (see
// Table.InvalidateTemplate).
type Key struct {
	Client, VIP  [16]byte
	CPort, VPort uint16
	Proto        uint8
	Template     bool
}

// NewKey returns the key of a connection from client to vip. IPv4
// addresses are stored v4-mapped.
func NewKey(proto uint8, client, vip netip.AddrPort) Key {
	return Key{
		Client: client.Addr().As16(),
		VIP:    vip.Addr().As16(),
		CPort:  client.Port(),
		VPort:  vip.Port(),
		Proto:  proto,
	}
}

// Addrs returns the client and virtual address and port of k, IPv4
// addresses unmapped, as a listing prints them.
func (k Key) Addrs() (client, vip netip.AddrPort) {
	c := netip.AddrFrom16(k.Client).Unmap()
	v := netip.AddrFrom16(k.VIP).Unmap()
	cport := k.CPort
	if k.Invalidated() {
		cport = 0 // the kernel's invalidated template (InvalidateTemplate)
	}
	return netip.AddrPortFrom(c, cport), netip.AddrPortFrom(v, k.VPort)
}

var v4InV6Prefix = [12]byte{10: 0xff, 11: 0xff}

// is4 reports whether k is an IPv4 key: its VIP is v4-mapped.
func (k *Key) is4() bool { return [12]byte(k.VIP[:12]) == v4InV6Prefix }

// Persistence is how a persistent service (ipvsadm -p, -M) groups the
// connections of a client under one template.
type Persistence struct {
	// Timeout is the template timeout in seconds (-p).
	Timeout uint32
	// Netmask is the client granularity as a prefix length (-M), as in
	// service.Service.Netmask: of the IPv4 address for an IPv4 service
	// (32 by default), of the IPv6 address otherwise (128 by default).
	Netmask uint8
	// AllPorts is set when one template covers every port of the VIP, so
	// that its VPort is 0: for a port-0 service, for the FTP service (port
	// 21) and for the FTP data connections it takes on other ports.
	AllPorts bool
}

// TemplateKey returns the key of the template that controls connection k
// (ip_vs_sched_persist): the client address masked to the netmask, client
// port 0, the VIP, and the connection's virtual port, or 0 with AllPorts.
func (p Persistence) TemplateKey(k Key) Key {
	return templateKey(k, p.Netmask, p.AllPorts)
}

func templateKey(k Key, netmask uint8, allPorts bool) Key {
	prefix := int(netmask)
	if k.is4() {
		prefix = 96 + min(prefix, 32)
	}
	prefix = min(prefix, 128)
	tk := Key{VIP: k.VIP, VPort: k.VPort, Proto: k.Proto, Template: true}
	if allPorts {
		tk.VPort = 0
	}
	full := prefix / 8
	copy(tk.Client[:full], k.Client[:full])
	if rem := prefix % 8; rem != 0 {
		tk.Client[full] = k.Client[full] & ^byte(0xff>>rem)
	}
	return tk
}

// Hash constants: the wyhash primes.
const (
	hashK0 = 0xa0761d6478bd642f
	hashK1 = 0xe7037ed1a0b428db
	hashK2 = 0x8ebc6af09c88c6e3
	hashK3 = 0x589965cc75374cc3
	hashK4 = 0x1d8e4e27c47d124f
)

// mum is wyhash's mixing step: the folded 128-bit product.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash mixes every field of k with a per-table random seed, so that
// clients cannot aim their ports at one probe sequence. It is written out
// by hand because hash/maphash.Comparable makes its argument escape.
func (k *Key) hash(seed uint64) uint64 {
	le := binary.LittleEndian
	var tmpl uint64
	if k.Template {
		tmpl = 1
	}
	small := uint64(k.CPort) | uint64(k.VPort)<<16 | uint64(k.Proto)<<32 | tmpl<<40
	h := mum(le.Uint64(k.Client[:8])^seed^hashK0, le.Uint64(k.Client[8:])^hashK1)
	h ^= mum(le.Uint64(k.VIP[:8])^hashK2, le.Uint64(k.VIP[8:])^hashK3)
	return mum(h^small^hashK4, hashK1)
}
