package arpresponder

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

func TestGratuitousARP(t *testing.T) {
	for _, vlan := range []VLAN{{}, tagged} {
		frame, err := GratuitousARP(vlan, mac(vipMAC), vip4)
		if err != nil {
			t.Fatalf("GratuitousARP: %v", err)
		}
		eth := ethernetLen(vlan)
		if len(frame) != eth+46 {
			t.Errorf("vlan %+v: frame length = %d, want %d", vlan, len(frame), eth+46)
		}
		d := decode(t, frame)
		if got, want := d.eth.DstMAC.String(), "ff:ff:ff:ff:ff:ff"; got != want {
			t.Errorf("vlan %+v: Ethernet destination = %s, want %s", vlan, got, want)
		}
		if got, want := d.eth.SrcMAC.String(), mac(vipMAC).String(); got != want {
			t.Errorf("vlan %+v: Ethernet source = %s, want %s", vlan, got, want)
		}
		if got := d.vlanTag(); got != vlan {
			t.Errorf("vlan %+v: tag = %+v", vlan, got)
		}
		if d.arp == nil {
			t.Fatalf("vlan %+v: no ARP layer in % x", vlan, frame)
		}

		// RFC 5227 3: request, sender = target IP = the VIP, target MAC 0.
		checkARPRequest(t, frame[eth:], mac(vipMAC), vip4, vip4)
		if !bytes.Equal(frame[eth+arpLen:], make([]byte, 46-arpLen)) {
			t.Errorf("vlan %+v: padding not zero: % x", vlan, frame[eth+arpLen:])
		}

		// The receiving side: another responder for the VIP sees a
		// conflict, udr itself sees its own frame.
		if _, why := New([]netip.Addr{vip4}, otherMAC).HandleARP(nil, vlan, vipMAC, frame[eth:]); why != ReasonConflict {
			t.Errorf("vlan %+v: another responder's reason = %v, want %v", vlan, why, ReasonConflict)
		}
		if _, why := testResponder().HandleARP(nil, vlan, vipMAC, frame[eth:]); why != ReasonLooped {
			t.Errorf("vlan %+v: own responder's reason = %v, want %v", vlan, why, ReasonLooped)
		}
	}
}

func TestUnsolicitedNA(t *testing.T) {
	for _, vlan := range []VLAN{{}, tagged} {
		frame, err := UnsolicitedNA(vlan, mac(vipMAC), vip6)
		if err != nil {
			t.Fatalf("UnsolicitedNA: %v", err)
		}
		// RFC 4861 7.2.6: to all-nodes, Solicited clear, Override set,
		// target link-layer address option.
		checkNA(t, frame, naView{
			Len:    ethernetLen(vlan) + 40 + 32,
			EthDst: "33:33:00:00:00:01", EthSrc: mac(vipMAC).String(),
			VLAN: vlan, EtherType: layers.EthernetTypeIPv6,
			Version: 6, PayloadLen: 32, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255,
			Src: vip6, Dst: allNodes6,
			TypeCode:      layers.CreateICMPv6TypeCode(typeNA, 0),
			ChecksumValid: true,
			Override:      true,
			Target:        vip6,
			Options:       []string{"TargetAddress " + mac(vipMAC).String()},
		})

		eth := ethernetLen(vlan)
		if _, why := New([]netip.Addr{vip6}, otherMAC).HandleNDP(nil, vlan, vipMAC, frame[eth:]); why != ReasonConflict {
			t.Errorf("vlan %+v: another responder's reason = %v, want %v", vlan, why, ReasonConflict)
		}
		if _, why := testResponder().HandleNDP(nil, vlan, vipMAC, frame[eth:]); why != ReasonLooped {
			t.Errorf("vlan %+v: own responder's reason = %v, want %v", vlan, why, ReasonLooped)
		}
	}
}

func TestAnnouncementErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func(VLAN, net.HardwareAddr, netip.Addr) ([]byte, error)
		mac  net.HardwareAddr
		vip  netip.Addr
		want string
	}{
		{"ARP short MAC", GratuitousARP, net.HardwareAddr{2, 0, 0}, vip4,
			`gratuitous arp for 192.0.2.10: mac "02:00:00": want a 6-byte Ethernet address`},
		{"ARP multicast MAC", GratuitousARP, mac(groupMAC), vip4,
			"gratuitous arp for 192.0.2.10: mac 01:00:5e:00:00:01: not a unicast address"},
		{"ARP IPv6 VIP", GratuitousARP, mac(vipMAC), vip6,
			"gratuitous arp for 2001:db8::10: not a unicast IPv4 address"},
		{"ARP unspecified VIP", GratuitousARP, mac(vipMAC), zero4,
			"gratuitous arp for 0.0.0.0: not a unicast IPv4 address"},
		{"ARP no VIP", GratuitousARP, mac(vipMAC), netip.Addr{},
			"gratuitous arp for invalid IP: not a unicast IPv4 address"},
		{"NA zero MAC", UnsolicitedNA, make(net.HardwareAddr, 6), vip6,
			"unsolicited na for 2001:db8::10: mac 00:00:00:00:00:00: not a unicast address"},
		{"NA IPv4 VIP", UnsolicitedNA, mac(vipMAC), vip4,
			"unsolicited na for 192.0.2.10: not a unicast IPv6 address"},
		{"NA IPv4-mapped VIP", UnsolicitedNA, mac(vipMAC), netip.AddrFrom16(vip4.As16()),
			"unsolicited na for ::ffff:192.0.2.10: not a unicast IPv6 address"},
		{"NA multicast VIP", UnsolicitedNA, mac(vipMAC), allNodes6,
			"unsolicited na for ff02::1: not a unicast IPv6 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := tt.fn(VLAN{}, tt.mac, tt.vip)
			if err == nil {
				t.Fatalf("got frame % x, want error %q", frame, tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("error = %q, want %q", err, tt.want)
			}
		})
	}
}

// TestAnnouncementIPv4Mapped checks that a VIP given in IPv4-mapped form is
// announced as IPv4, as New treats it.
func TestAnnouncementIPv4Mapped(t *testing.T) {
	want, err := GratuitousARP(VLAN{}, mac(vipMAC), vip4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := GratuitousARP(VLAN{}, mac(vipMAC), netip.AddrFrom16(vip4.As16()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("IPv4-mapped announcement\n% x\nwant\n% x", got, want)
	}
}

// TestProbe checks both neighbour probes field by field, decoded with
// mdlayher/arp and gopacket, and that a responder for the probed address
// answers each.
func TestProbe(t *testing.T) {
	for _, vlan := range []VLAN{{}, tagged} {
		eth := ethernetLen(vlan)
		frame, err := Probe(vlan, clientMAC, vip4)
		if err != nil {
			t.Fatalf("Probe(%s): %v", vip4, err)
		}
		d := decode(t, frame)
		if len(frame) != eth+minPayloadLen || d.eth.DstMAC.String() != "ff:ff:ff:ff:ff:ff" ||
			d.eth.SrcMAC.String() != mac(clientMAC).String() || d.vlanTag() != vlan {
			t.Errorf("vlan %+v: ARP probe framing: % x", vlan, frame)
		}
		// RFC 5227 2.1.1: request, sender IP 0.0.0.0, target MAC zero.
		checkARPRequest(t, frame[eth:], mac(clientMAC), zero4, vip4)
		if _, why := testResponder().HandleARP(nil, vlan, clientMAC, frame[eth:]); why != ReasonNone {
			t.Errorf("vlan %+v: responder's reason for the ARP probe = %v, want %v", vlan, why, ReasonNone)
		}

		frame, err = Probe(vlan, clientMAC, vip6)
		if err != nil {
			t.Fatalf("Probe(%s): %v", vip6, err)
		}
		d = decode(t, frame)
		if d.ip6 == nil || d.icmp == nil {
			t.Fatalf("vlan %+v: not ICMPv6: % x", vlan, frame)
		}
		if err := d.icmp.SetNetworkLayerForChecksum(d.ip6); err != nil {
			t.Fatal(err)
		}
		if err, cs := d.icmp.VerifyChecksum(); err != nil || !cs.Valid {
			t.Errorf("vlan %+v: neighbor solicitation checksum: %v, %+v", vlan, err, cs)
		}
		group := solicitedNode(vip6)
		g := group.As16()
		if len(frame) != eth+ipv6HdrLen+ndOptions || d.eth.DstMAC.String() != mac([6]byte{0x33, 0x33, g[12], g[13], g[14], g[15]}).String() ||
			d.eth.SrcMAC.String() != mac(clientMAC).String() || d.vlanTag() != vlan ||
			addr(t, d.ip6.SrcIP) != zero6 || addr(t, d.ip6.DstIP) != group || d.ip6.HopLimit != ndHopLimit {
			t.Errorf("vlan %+v: neighbor solicitation framing: % x", vlan, frame)
		}
		// RFC 4861 4.3: no Source Link-Layer Address option from ::.
		m, err := ndp.ParseMessage(frame[eth+ipv6HdrLen:])
		if err != nil {
			t.Fatalf("ndp.ParseMessage: %v", err)
		}
		if ns, ok := m.(*ndp.NeighborSolicitation); !ok || ns.TargetAddress != vip6 || len(ns.Options) != 0 {
			t.Errorf("vlan %+v: message = %#v, want a solicitation for %s without options", vlan, m, vip6)
		}
		if _, why := testResponder().HandleNDP(nil, vlan, clientMAC, frame[eth:]); why != ReasonNone {
			t.Errorf("vlan %+v: responder's reason for the solicitation = %v, want %v", vlan, why, ReasonNone)
		}
	}
}

func TestProbeErrors(t *testing.T) {
	for _, tt := range []struct {
		mac  [6]byte
		addr netip.Addr
		want string
	}{
		{groupMAC, vip4, "probe for 192.0.2.10: mac 01:00:5e:00:00:01: not a unicast address"},
		{clientMAC, zero6, "probe for ::: not a unicast address"},
		{clientMAC, allNodes6, "probe for ff02::1: not a unicast address"},
		{clientMAC, netip.Addr{}, "probe for invalid IP: not a unicast address"},
	} {
		if frame, err := Probe(VLAN{}, tt.mac, tt.addr); err == nil || err.Error() != tt.want {
			t.Errorf("Probe(%v, %v) = % x, %v; want error %q", mac(tt.mac), tt.addr, frame, err, tt.want)
		}
	}
}

// checkARPRequest decodes b with mdlayher/arp and compares it with an
// Ethernet/IPv4 request from sha and spa for tpa with a zero target MAC.
func checkARPRequest(t *testing.T, b []byte, sha net.HardwareAddr, spa, tpa netip.Addr) {
	t.Helper()
	var p arp.Packet
	if err := p.UnmarshalBinary(b); err != nil {
		t.Fatalf("arp.Packet.UnmarshalBinary: %v", err)
	}
	want := arp.Packet{
		HardwareType: 1, ProtocolType: uint16(layers.EthernetTypeIPv4),
		HardwareAddrLength: 6, IPLength: 4,
		Operation:          arp.OperationRequest,
		SenderHardwareAddr: sha, SenderIP: spa,
		TargetHardwareAddr: make(net.HardwareAddr, 6), TargetIP: tpa,
	}
	if diff := cmp.Diff(want, p, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("ARP request (-want +got):\n%s", diff)
	}
}
