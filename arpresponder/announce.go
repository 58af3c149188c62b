package arpresponder

import (
	"fmt"
	"net"
	"net/netip"
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
// reply instead.
func GratuitousARP(vlan VLAN, vipMAC net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	mac, err := announceMAC(vipMAC)
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s: %w", vip, err)
	}
	vip = vip.Unmap()
	if !vip.Is4() || vip.IsUnspecified() || vip.IsMulticast() {
		return nil, fmt.Errorf("gratuitous arp for %s: not a unicast IPv4 address", vip)
	}
	return putARP(nil, broadcastMAC, vlan, &ARP{Op: OpRequest, SenderMAC: mac, SenderIP: vip.As4(), TargetIP: vip.As4()}), nil
}

// UnsolicitedNA returns an Ethernet frame announcing that vip is at vipMAC:
// an unsolicited Neighbor Advertisement (RFC 4861 7.2.6) from vip to the
// all-nodes address ff02::1 (Ethernet 33:33:00:00:00:01) with hop limit 255,
// Solicited and Router clear, Override set so that neighbours replace the
// link-layer address they cache, and a Target Link-Layer Address option
// holding vipMAC, tagged with vlan if vlan.Present.
func UnsolicitedNA(vlan VLAN, vipMAC net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	mac, err := announceMAC(vipMAC)
	if err != nil {
		return nil, fmt.Errorf("unsolicited na for %s: %w", vip, err)
	}
	vip = vip.WithZone("")
	if !vip.Is6() || vip.Is4In6() || vip.IsUnspecified() || vip.IsMulticast() {
		return nil, fmt.Errorf("unsolicited na for %s: not a unicast IPv6 address", vip)
	}
	return putND(nil, allNodesMAC, mac, vlan, &ndMessage{
		typ: typeNA, flags: naFlagOverride, src: vip.As16(), dst: allNodes, target: vip.As16(),
		opt: optTargetLLA, lla: mac,
	}), nil
}

// Probe returns an Ethernet frame from mac that asks who has addr, without
// needing an address of the asker's: for IPv4 an ARP Probe (RFC 5227
// 2.1.1: a broadcast request with sender IP 0.0.0.0 and target MAC zero,
// which leaves the target's ARP cache alone), for IPv6 a Neighbor
// Solicitation from the unspecified address to addr's solicited-node group
// (RFC 4861 7.2.2), with no Source Link-Layer Address option, as RFC 4861
// 4.3 requires from ::. Linux answers both: the ARP probe with a reply to
// mac, the solicitation with an advertisement to all nodes. The frame is
// tagged with vlan if vlan.Present.
func Probe(vlan VLAN, mac [6]byte, addr netip.Addr) ([]byte, error) {
	if !isUnicastMAC(mac) {
		return nil, fmt.Errorf("probe for %s: mac %s: not a unicast address", addr, net.HardwareAddr(mac[:]))
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() {
		return nil, fmt.Errorf("probe for %s: not a unicast address", addr)
	}
	if addr.Is4() {
		return putARP(nil, broadcastMAC, vlan, &ARP{Op: OpRequest, SenderMAC: mac, TargetIP: addr.As4()}), nil
	}
	target := addr.As16()
	group := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: target[13], 14: target[14], 15: target[15]}
	groupMAC := [ethAddrLen]byte{0x33, 0x33, group[12], group[13], group[14], group[15]} // RFC 2464 7
	return putND(nil, groupMAC, mac, vlan, &ndMessage{typ: typeNS, dst: group, target: target}), nil
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
