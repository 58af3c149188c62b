package admin

import (
	"fmt"
	"net/netip"
)

// The addresses udr refuses although the kernel takes them: one check per
// idea, used by every path that makes a service or a real server (the
// ipvsadm command line and rules files through the parser, udr.yaml
// through package config).

// CheckVIP returns why udr cannot serve a virtual service at a, or nil. A
// VIP is an address of the director's link that udr answers ARP or NDP
// for and that clients send to: not the unspecified address (0.0.0.0,
// ::), the limited broadcast address, a multicast address (224.0.0.0/4,
// ff00::/8), a loopback address (127.0.0.0/8, ::1), or an IPv4-mapped
// IPv6 address.
func CheckVIP(a netip.Addr) error {
	why := ""
	switch {
	case a.IsUnspecified():
		why = "it is the unspecified address, which no client sends to"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "it is the broadcast address"
	case a.IsMulticast():
		why = "it is a multicast address; a VIP is a unicast address that udr answers ARP/NDP for"
	case a.IsLoopback():
		why = "it is a loopback address, which never reaches the interface"
	case a.Is4In6():
		why = "it is an IPv4-mapped IPv6 address; give the IPv4 address"
	default:
		return nil
	}
	return fmt.Errorf("udr cannot serve VIP %s: %s", a, why)
}

// CheckRealServer returns why udr cannot forward the traffic of VIP vip
// to a real server at rip, or nil: the real server must have an address of
// its own (it holds the VIP on lo), reachable on the director's link, so
// not the VIP itself and not a loopback address. The checks the kernel
// makes too (Unicast) are Apply's.
func CheckRealServer(vip, rip netip.Addr) error {
	switch {
	case rip == vip:
		return fmt.Errorf("real server %s is the VIP itself: a real server has an address of its own and holds the VIP on lo", rip)
	case rip.IsLoopback():
		return fmt.Errorf("real server %s is a loopback address: udr forwards to real servers on the interface's link", rip)
	}
	return nil
}
