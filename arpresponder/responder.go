package arpresponder

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Ethernet framing (IEEE 802.3, 802.1Q).
const (
	ethAddrLen    = 6
	ethHdrLen     = 14
	vlanTagLen    = 4
	etherTypeVLAN = 0x8100
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	// minPayloadLen is the minimum Ethernet payload: 64-byte minimum frame
	// less 14 bytes of header and 4 of FCS. Replies are padded to it after
	// the tag, so a tagged reply stays valid when a switch strips the tag.
	minPayloadLen = 46
)

// MaxReplyLen is the largest frame HandleARP or HandleNDP builds: a tagged
// Neighbor Advertisement (14 + 4 + 40 + 32 bytes). A dst with this capacity
// makes both handlers allocation-free.
const MaxReplyLen = ethHdrLen + vlanTagLen + naReplyLen

var (
	broadcastMAC = [ethAddrLen]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// allNodesMAC is ff02::1 mapped to Ethernet (RFC 2464 7: 33:33 and the
	// low 32 bits of the group).
	allNodesMAC = [ethAddrLen]byte{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

// VLAN describes a frame's 802.1Q tag. Replies keep the tag of the frame they
// answer.
type VLAN struct {
	Present bool
	TCI     uint16 // priority (3 bits), drop eligible (1), VLAN ID (12)
}

// A Responder answers ARP and Neighbor Solicitations for a fixed set of VIPs
// with one MAC address. It is immutable after New and safe for concurrent
// use.
type Responder struct {
	mac  [ethAddrLen]byte
	v4   map[[4]byte]struct{}
	v6   map[[16]byte]struct{}
	vips []netip.Addr // sorted, unique
}

// New returns a Responder for vips that answers with vipMAC. IPv4-mapped IPv6
// addresses count as IPv4 and zones are dropped. Addresses nobody can ask for
// (invalid, unspecified, multicast) are ignored; validating the configuration
// is the caller's job.
func New(vips []netip.Addr, vipMAC [6]byte) *Responder {
	r := &Responder{
		mac: vipMAC,
		v4:  make(map[[4]byte]struct{}),
		v6:  make(map[[16]byte]struct{}),
	}
	for _, a := range vips {
		a, ok := normalizeVIP(a)
		if !ok {
			continue
		}
		if a.Is4() {
			r.v4[a.As4()] = struct{}{}
		} else {
			r.v6[a.As16()] = struct{}{}
		}
		r.vips = append(r.vips, a)
	}
	slices.SortFunc(r.vips, netip.Addr.Compare)
	r.vips = slices.Compact(r.vips)
	return r
}

// normalizeVIP returns a as the Responder keys it (IPv4-mapped addresses as
// IPv4, no zone) and whether it can be a VIP at all.
func normalizeVIP(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap().WithZone("")
	return a, a.IsValid() && !a.IsUnspecified() && !a.IsMulticast()
}

// VIPMAC returns the MAC address the Responder answers with.
func (r *Responder) VIPMAC() [6]byte { return r.mac }

// VIPs returns the VIPs the Responder answers for, sorted and without
// duplicates, for the announcement loop. The caller may modify the slice.
func (r *Responder) VIPs() []netip.Addr { return slices.Clone(r.vips) }

func (r *Responder) isVIP4(a [4]byte) bool {
	_, ok := r.v4[a]
	return ok
}

func (r *Responder) isVIP6(a [16]byte) bool {
	_, ok := r.v6[a]
	return ok
}

// frame returns dst resized to n zeroed bytes, allocating only if dst is too
// small. Zeroing covers padding and reserved fields left over from the
// buffer's previous frame.
func frame(dst []byte, n int) []byte {
	if cap(dst) < n {
		return make([]byte, n)
	}
	b := dst[:n]
	clear(b)
	return b
}

// ethernetLen is the length of the Ethernet header putEthernet writes.
func ethernetLen(vlan VLAN) int {
	if vlan.Present {
		return ethHdrLen + vlanTagLen
	}
	return ethHdrLen
}

// putEthernet writes an Ethernet header, with an 802.1Q tag if vlan.Present,
// at the start of b and returns its length.
func putEthernet(b []byte, dst, src [ethAddrLen]byte, vlan VLAN, etherType uint16) int {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	n := 12
	if vlan.Present {
		binary.BigEndian.PutUint16(b[n:], etherTypeVLAN)
		binary.BigEndian.PutUint16(b[n+2:], vlan.TCI)
		n += vlanTagLen
	}
	binary.BigEndian.PutUint16(b[n:], etherType)
	return n + 2
}

// isUnicastMAC reports whether m can be the address of one host: not a group
// address (I/G bit) and not all zeros.
func isUnicastMAC(m [ethAddrLen]byte) bool {
	return m[0]&0x01 == 0 && m != [ethAddrLen]byte{}
}
