package arpresponder

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// GratuitousARP returns an Ethernet frame announcing that vip is at vipMAC:
// an RFC 5227 section 3 ARP Announcement, broadcast, with operation request,
// sender and target IP both vip, sender MAC vipMAC and target MAC zero, tagged
// with vlan if vlan.Present and padded to the Ethernet minimum.
//
// Request rather than reply: RFC 5227 section 3 ("Why are ARP Announcements
// performed using ARP Request packets and not ARP Reply packets?") weighs
// both and recommends Request, and it is what the Linux kernel itself sends
// when an address comes up (inetdev_send_gratuitous_arp in
// net/ipv4/devinet.c: arp_send(ARPOP_REQUEST, ETH_P_ARP, ifa_local, dev,
// ifa_local, NULL, dev_addr, NULL), i.e. broadcast with a zero target MAC). arping -U sends the same
// request but with the broadcast address as target MAC; arping -A sends a
// reply instead. The frame is built with mdlayher/arp.
func GratuitousARP(vlan VLAN, vipMAC net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	mac, err := announceMAC(vipMAC)
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s: %w", vip, err)
	}
	vip = vip.Unmap()
	if !vip.Is4() || vip.IsUnspecified() || vip.IsMulticast() {
		return nil, fmt.Errorf("gratuitous arp for %s: not a unicast IPv4 address", vip)
	}
	p, err := arp.NewPacket(arp.OperationRequest, vipMAC, vip, make(net.HardwareAddr, ethAddrLen), vip)
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s: %w", vip, err)
	}
	body, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s: %w", vip, err)
	}
	eth := ethernetLen(vlan)
	b := make([]byte, eth+max(len(body), minPayloadLen))
	putEthernet(b, broadcastMAC, mac, vlan, etherTypeARP)
	copy(b[eth:], body)
	return b, nil
}

// UnsolicitedNA returns an Ethernet frame announcing that vip is at vipMAC:
// an unsolicited Neighbor Advertisement (RFC 4861 7.2.6) from vip to the
// all-nodes address ff02::1 (Ethernet 33:33:00:00:00:01) with hop limit 255,
// Solicited and Router clear, Override set so that neighbours replace the
// link-layer address they cache, and a Target Link-Layer Address option
// holding vipMAC, tagged with vlan if vlan.Present. The ICMPv6 message is
// built and checksummed with mdlayher/ndp.
func UnsolicitedNA(vlan VLAN, vipMAC net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	mac, err := announceMAC(vipMAC)
	if err != nil {
		return nil, fmt.Errorf("unsolicited na for %s: %w", vip, err)
	}
	vip = vip.WithZone("")
	if !vip.Is6() || vip.Is4In6() || vip.IsUnspecified() || vip.IsMulticast() {
		return nil, fmt.Errorf("unsolicited na for %s: not a unicast IPv6 address", vip)
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: vip,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: vipMAC},
		},
	}
	group := netip.AddrFrom16(allNodes)
	msg, err := ndp.MarshalMessageChecksum(na, vip, group)
	if err != nil {
		return nil, fmt.Errorf("unsolicited na for %s: %w", vip, err)
	}
	eth := ethernetLen(vlan)
	b := make([]byte, eth+ipv6HdrLen+len(msg))
	putEthernet(b, allNodesMAC, mac, vlan, etherTypeIPv6)
	ip := b[eth:]
	ip[0] = 6 << 4
	ip[ipv6PayloadLen] = byte(len(msg) >> 8)
	ip[ipv6PayloadLen+1] = byte(len(msg))
	ip[ipv6NextHeader] = protoICMPv6
	ip[ipv6HopLimit] = ndHopLimit
	src := vip.As16()
	copy(ip[ipv6Src:], src[:])
	copy(ip[ipv6Dst:], allNodes[:])
	copy(ip[ipv6HdrLen:], msg)
	return b, nil
}

// announceMAC checks that m can be the source of an announcement.
func announceMAC(m net.HardwareAddr) ([ethAddrLen]byte, error) {
	var a [ethAddrLen]byte
	if len(m) != ethAddrLen {
		return a, fmt.Errorf("mac %q: want a 6-byte Ethernet address", m)
	}
	copy(a[:], m)
	if !isUnicastMAC(a) {
		return a, fmt.Errorf("mac %s: not a unicast address", m)
	}
	return a, nil
}
