package arpresponder

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Test addresses: RFC 5737 and RFC 3849 documentation ranges, locally
// administered MACs.
var (
	vipMAC    = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0f, 0x01}
	clientMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0c, 0x01}
	otherMAC  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0e, 0x01}
	groupMAC  = [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}

	vip4      = netip.MustParseAddr("192.0.2.10")
	vip4b     = netip.MustParseAddr("192.0.2.11")
	client4   = netip.MustParseAddr("192.0.2.1")
	notVIP4   = netip.MustParseAddr("198.51.100.7")
	zero4     = netip.IPv4Unspecified()
	vip6      = netip.MustParseAddr("2001:db8::10")
	client6   = netip.MustParseAddr("2001:db8::1")
	notVIP6   = netip.MustParseAddr("2001:db8::99")
	zero6     = netip.IPv6Unspecified()
	allNodes6 = netip.MustParseAddr("ff02::1")
)

func testResponder() *Responder {
	return New([]netip.Addr{vip4, vip4b, vip6}, vipMAC)
}

// solicitedNode returns the solicited-node multicast address of a (RFC 4291
// 2.7.1).
func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// arpPacket is an ARP packet as the tests build it.
type arpPacket struct {
	htype, ptype uint16
	hlen, plen   uint8
	op           uint16
	sha          [6]byte
	spa          netip.Addr
	tha          [6]byte
	tpa          netip.Addr
}

// request returns a who-has tpa from the client.
func request(tpa netip.Addr) arpPacket {
	return arpPacket{
		htype: uint16(layers.LinkTypeEthernet), ptype: uint16(layers.EthernetTypeIPv4),
		hlen: 6, plen: 4, op: layers.ARPRequest,
		sha: clientMAC, spa: client4, tpa: tpa,
	}
}

// bytes serializes p with gopacket. Address fields take the lengths hlen and
// plen say, so that mismatched lengths can be built.
func (p arpPacket) bytes(t testing.TB) []byte {
	t.Helper()
	fit := func(b []byte, n uint8) []byte {
		out := make([]byte, n)
		copy(out, b)
		return out
	}
	spa, tpa := p.spa.AsSlice(), p.tpa.AsSlice()
	a := &layers.ARP{
		AddrType: layers.LinkType(p.htype), Protocol: layers.EthernetType(p.ptype),
		HwAddressSize: p.hlen, ProtAddressSize: p.plen, Operation: p.op,
		SourceHwAddress: fit(p.sha[:], p.hlen), SourceProtAddress: fit(spa, p.plen),
		DstHwAddress: fit(p.tha[:], p.hlen), DstProtAddress: fit(tpa, p.plen),
	}
	return serialize(t, gopacket.SerializeOptions{}, a)
}

// ndpPacket is an IPv6 packet carrying an ICMPv6 message whose body the test
// writes byte by byte; gopacket computes lengths and the checksum.
type ndpPacket struct {
	src, dst   netip.Addr
	hopLimit   uint8
	nextHeader layers.IPProtocol
	icmpType   uint8
	icmpCode   uint8
	body       []byte // after type, code and checksum
}

// ns returns a Neighbor Solicitation for target from client6 to target's
// solicited-node address with the client's source link-layer address.
func ns(target netip.Addr) ndpPacket {
	return ndpPacket{
		src: client6, dst: solicitedNode(target), hopLimit: 255,
		nextHeader: layers.IPProtocolICMPv6, icmpType: typeNS,
		body: ndBody(0, target, option(optSourceLLA, 1, clientMAC[:])),
	}
}

// na returns an unsolicited Neighbor Advertisement for target to ff02::1
// with Override set and the given target link-layer address option.
func na(target netip.Addr, opts ...byte) ndpPacket {
	return ndpPacket{
		src: client6, dst: allNodes6, hopLimit: 255,
		nextHeader: layers.IPProtocolICMPv6, icmpType: typeNA,
		body: ndBody(naFlagOverride, target, opts),
	}
}

// ndBody returns an NS or NA body: flags, 3 reserved bytes, target, options.
func ndBody(flags byte, target netip.Addr, opts []byte) []byte {
	b := append([]byte{flags, 0, 0, 0}, target.AsSlice()...)
	return append(b, opts...)
}

// option returns an NDP option with the given length field (8-byte units):
// type, length, then data, zero-padded or cut to units*8 bytes (2 bytes for
// units 0).
func option(typ, units byte, data []byte) []byte {
	b := make([]byte, max(int(units)*8, 2+len(data)))
	b[0], b[1] = typ, units
	copy(b[2:], data)
	return b[:max(int(units)*8, 2)]
}

func (p ndpPacket) bytes(t testing.TB) []byte {
	t.Helper()
	ip := &layers.IPv6{
		Version: 6, NextHeader: p.nextHeader, HopLimit: p.hopLimit,
		SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice(),
	}
	if p.nextHeader != layers.IPProtocolICMPv6 {
		return serialize(t, gopacket.SerializeOptions{FixLengths: true}, ip, gopacket.Payload(p.body))
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(p.icmpType, p.icmpCode)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	return serialize(t, opts, ip, icmp, gopacket.Payload(p.body))
}

func serialize(t testing.TB, opts gopacket.SerializeOptions, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// decoded is a frame decoded by gopacket with the layers the tests inspect.
type decoded struct {
	eth  *layers.Ethernet
	vlan *layers.Dot1Q
	arp  *layers.ARP
	ip6  *layers.IPv6
	icmp *layers.ICMPv6
	na   *layers.ICMPv6NeighborAdvertisement
}

func decode(t testing.TB, frame []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode the frame: %v\n% x", el.Error(), frame)
	}
	var d decoded
	d.eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	d.vlan, _ = p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	d.arp, _ = p.Layer(layers.LayerTypeARP).(*layers.ARP)
	d.ip6, _ = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	d.icmp, _ = p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	d.na, _ = p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if d.eth == nil {
		t.Fatalf("no Ethernet layer in % x", frame)
	}
	return d
}

// vlanTag returns the 802.1Q tag of d as a VLAN.
func (d decoded) vlanTag() VLAN {
	if d.vlan == nil {
		return VLAN{}
	}
	tci := uint16(d.vlan.Priority)<<13 | d.vlan.VLANIdentifier
	if d.vlan.DropEligible {
		tci |= 1 << 12
	}
	return VLAN{Present: true, TCI: tci}
}

func mac(m [6]byte) net.HardwareAddr { return net.HardwareAddr(m[:]) }

func addr(t testing.TB, b []byte) netip.Addr {
	t.Helper()
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		t.Fatalf("bad address % x", b)
	}
	return a
}
