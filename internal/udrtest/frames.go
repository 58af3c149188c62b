// Package udrtest builds frames for udr's tests and benchmarks with
// gopacket, so that what the hot path parses by hand is checked against an
// independent encoder.
package udrtest

import (
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Lab addresses (RFC 5737, RFC 3849) and MACs used across udr's tests.
var (
	DirectorMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	ClientMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x50}
	RS1MAC      = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	RS2MAC      = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x12}

	VIP    = netip.MustParseAddr("192.0.2.100")
	VIP6   = netip.MustParseAddr("2001:db8::100")
	RS1    = netip.MustParseAddr("192.0.2.11")
	RS2    = netip.MustParseAddr("192.0.2.12")
	Client = netip.MustParseAddr("192.0.2.50")
)

// TCP flag sets for TCP frames.
const (
	SYN = 1 << iota
	ACK
	FIN
	RST
	PSH
)

// Eth describes the Ethernet header of a frame.
type Eth struct {
	Src, Dst net.HardwareAddr
	VLAN     uint16 // 0: untagged
}

func ethLayers(e Eth, typ layers.EthernetType) []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: e.Src, DstMAC: e.Dst, EthernetType: typ}
	if e.VLAN == 0 {
		return []gopacket.SerializableLayer{eth}
	}
	eth.EthernetType = layers.EthernetTypeDot1Q
	return []gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: e.VLAN, Type: typ}}
}

// TCP returns a TCP segment from src to dst with the given flags and payload.
func TCP(e Eth, src, dst netip.AddrPort, flags int, payload []byte) []byte {
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: 1000, Ack: 2000, Window: 65535,
		SYN: flags&SYN != 0, ACK: flags&ACK != 0, FIN: flags&FIN != 0, RST: flags&RST != 0, PSH: flags&PSH != 0,
	}
	return transport(e, src.Addr(), dst.Addr(), layers.IPProtocolTCP, tcp, payload)
}

// UDP returns a UDP datagram from src to dst.
func UDP(e Eth, src, dst netip.AddrPort, payload []byte) []byte {
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	return transport(e, src.Addr(), dst.Addr(), layers.IPProtocolUDP, udp, payload)
}

type l4 interface {
	gopacket.SerializableLayer
	SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
}

func transport(e Eth, src, dst netip.Addr, proto layers.IPProtocol, t l4, payload []byte) []byte {
	var ip gopacket.SerializableLayer
	typ := layers.EthernetTypeIPv4
	if src.Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Id: 1, Flags: layers.IPv4DontFragment}
		t.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	} else {
		typ = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		t.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	}
	ls := append(ethLayers(e, typ), ip, t, gopacket.Payload(payload))
	return Serialize(ls...)
}

// ARPRequest returns a who-has for target from sender.
func ARPRequest(e Eth, sender netip.Addr, target netip.Addr) []byte {
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: e.Src, SourceProtAddress: sender.AsSlice(),
		DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: target.AsSlice(),
	}
	return Serialize(append(ethLayers(e, layers.EthernetTypeARP), arp)...)
}

// ARPReply returns sender's reply (is-at e.Src) to target.
func ARPReply(e Eth, sender netip.Addr, target netip.Addr) []byte {
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPReply,
		SourceHwAddress: e.Src, SourceProtAddress: sender.AsSlice(),
		DstHwAddress: e.Dst, DstProtAddress: target.AsSlice(),
	}
	return Serialize(append(ethLayers(e, layers.EthernetTypeARP), arp)...)
}

// Serialize encodes layers with computed lengths and checksums.
func Serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}
