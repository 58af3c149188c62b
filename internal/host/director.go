//go:build linux

package host

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// An Interface describes the director's network interface, as the
// forwarder needs it.
type Interface struct {
	Name  string
	Index int
	MAC   [6]byte // source address of every forwarded frame
	MTU   int     // bytes of IP packet, without the Ethernet header
}

// InterfaceInfo returns the index, MAC and MTU of the Ethernet interface
// name.
func InterfaceInfo(name string) (Interface, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return Interface{}, fmt.Errorf("interface %q: %w", name, err)
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return Interface{}, fmt.Errorf("interface %q: hardware address %q is not an Ethernet address", name, attrs.HardwareAddr)
	}
	ifi := Interface{Name: attrs.Name, Index: attrs.Index, MTU: attrs.MTU}
	copy(ifi.MAC[:], attrs.HardwareAddr)
	return ifi, nil
}

// LocalAddrs returns every address configured on every interface of this
// host (its network namespace), loopback included, v4 addresses unmapped.
func LocalAddrs() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list local addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// LocalVIPs returns the members of vips that are configured on this host.
// Unlike classic LVS, udr's director must not own its VIPs: the kernel
// would answer ARP for them with the interface's MAC and reset the TCP
// connections udr forwards. A caller refuses to start when the result is
// not empty.
func LocalVIPs(vips []netip.Addr) ([]netip.Addr, error) {
	local, err := LocalAddrs()
	if err != nil {
		return nil, err
	}
	have := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		have[a] = true
	}
	var out []netip.Addr
	for _, v := range vips {
		if have[v.Unmap()] {
			out = append(out, v)
		}
	}
	return out, nil
}

// ForwardingEnabled reports the kernel's IPv4 and IPv6 forwarding switches
// for ifname (net.ipv4.conf.<ifname>.forwarding and
// net.ipv6.conf.<ifname>.forwarding); ifname "all" gives the global ones.
// With forwarding on, the kernel would route the VIP traffic it sees as
// well, if the frames were addressed to its own MAC.
func ForwardingEnabled(ifname string) (v4, v6 bool, err error) {
	s4, err := readSysctl(sysctlConfPath("ipv4", ifname, "forwarding"))
	if err != nil {
		return false, false, fmt.Errorf("ipv4 forwarding of %q: %w", ifname, err)
	}
	s6, err := readSysctl(sysctlConfPath("ipv6", ifname, "forwarding"))
	if err != nil {
		return false, false, fmt.Errorf("ipv6 forwarding of %q: %w", ifname, err)
	}
	return s4 != "0", s6 != "0", nil
}
