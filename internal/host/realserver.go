//go:build linux

package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A CheckItem is one requirement of a real server, as CheckRealServer
// reports it.
type CheckItem struct {
	// Name says what is required and, when it is not met, what was found,
	// e.g. "net.ipv4.conf.all.arp_ignore = 1 (found 0)".
	Name string
	// OK reports whether the requirement is met.
	OK bool
	// Fix is the shell command that meets the requirement, e.g.
	// "sysctl -w net.ipv4.conf.all.arp_ignore=1".
	Fix string
}

// arpSysctls silence ARP for addresses on lo (LVS-HOWTO "The ARP problem";
// ip-sysctl.rst): arp_ignore=1 answers only for addresses of the interface
// the request came in on; arp_announce=2 never uses a VIP as the source of
// the real server's own requests. The kernel applies the larger of "all"
// and the interface's value, so "all" covers every interface; "lo" is set
// as the LVS documentation does.
var arpSysctls = []struct{ key, want string }{
	{"net.ipv4.conf.all.arp_ignore", "1"},
	{"net.ipv4.conf.all.arp_announce", "2"},
	{"net.ipv4.conf.lo.arp_ignore", "1"},
	{"net.ipv4.conf.lo.arp_announce", "2"},
}

// SetupRealServer prepares this host to receive LVS-DR traffic for vips:
// lo up, ARP silenced (only when a VIP is IPv4: IPv6 neighbour discovery
// never answers for an address on lo from another interface), then each VIP
// on lo as a /32 or /128 (the sysctls come first, so the host never answers
// ARP for a VIP). It is idempotent.
func SetupRealServer(vips []netip.Addr) error {
	vips, err := cleanVIPs(vips)
	if err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	if hasIPv4(vips) {
		for _, s := range arpSysctls {
			if err := writeSysctl(sysctlPath(s.key), s.want); err != nil {
				return fmt.Errorf("set %s=%s: %w", s.key, s.want, err)
			}
		}
	}
	for _, vip := range vips {
		// No duplicate address detection: the VIP is meant to be
		// shared, and a tentative address could not answer at once.
		err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: hostNet(vip), Flags: unix.IFA_F_NODAD})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to lo: %w", hostPrefix(vip), err)
		}
	}
	return nil
}

// CheckRealServer reports, in the order SetupRealServer meets them, each
// requirement for vips: lo up, the ARP sysctls (when a VIP is IPv4), each
// VIP on lo. An item that cannot be read is reported not OK, with the
// reason in its Name.
func CheckRealServer(vips []netip.Addr) []CheckItem {
	vips, err := cleanVIPs(vips)
	if err != nil {
		return []CheckItem{{Name: err.Error()}}
	}
	var items []CheckItem
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return append(items, CheckItem{Name: fmt.Sprintf("lo exists (%v)", err)})
	}
	up := lo.Attrs().Flags&net.FlagUp != 0
	items = append(items, CheckItem{Name: "lo is up", OK: up, Fix: "ip link set dev lo up"})
	if hasIPv4(vips) {
		for _, s := range arpSysctls {
			got, err := readSysctl(sysctlPath(s.key))
			item := CheckItem{Name: s.key + " = " + s.want, OK: err == nil && got == s.want, Fix: "sysctl -w " + s.key + "=" + s.want}
			switch {
			case err != nil:
				item.Name += fmt.Sprintf(" (%v)", err)
			case !item.OK:
				item.Name += fmt.Sprintf(" (found %s)", got)
			}
			items = append(items, item)
		}
	}
	have, err := linkAddrs(lo)
	for _, vip := range vips {
		p := hostPrefix(vip)
		item := CheckItem{Name: p.String() + " on lo", OK: err == nil && have[vip], Fix: addrCommand("add", p)}
		if err != nil {
			item.Name += fmt.Sprintf(" (%v)", err)
		}
		items = append(items, item)
	}
	return items
}

// TeardownRealServer removes vips from lo (absent ones are skipped). When
// lo then holds no address outside the loopback ranges, it also resets the
// ARP sysctls to the kernel's defaults (0): no VIP is left to hide.
func TeardownRealServer(vips []netip.Addr) error {
	vips, err := cleanVIPs(vips)
	if err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	for _, vip := range vips {
		err := netlink.AddrDel(lo, &netlink.Addr{IPNet: hostNet(vip)})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete %s from lo: %w", hostPrefix(vip), err)
		}
	}
	have, err := linkAddrs(lo)
	if err != nil {
		return err
	}
	for a := range have {
		if !a.IsLoopback() {
			return nil // other VIPs remain: keep ARP silenced
		}
	}
	for _, s := range arpSysctls {
		if err := writeSysctl(sysctlPath(s.key), "0"); err != nil {
			return fmt.Errorf("reset %s: %w", s.key, err)
		}
	}
	return nil
}

// cleanVIPs unmaps v4-mapped addresses and rejects addresses that cannot
// be a VIP.
func cleanVIPs(vips []netip.Addr) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(vips))
	for _, v := range vips {
		v = v.Unmap()
		if !v.IsValid() || v.IsUnspecified() || v.IsLoopback() || v.IsMulticast() || v.IsLinkLocalUnicast() || v.Zone() != "" {
			return nil, fmt.Errorf("vip %q: want a global unicast address", v)
		}
		out = append(out, v)
	}
	return out, nil
}

func hasIPv4(vips []netip.Addr) bool {
	for _, v := range vips {
		if v.Is4() {
			return true
		}
	}
	return false
}

// hostPrefix is vip/32 or vip/128.
func hostPrefix(vip netip.Addr) netip.Prefix {
	return netip.PrefixFrom(vip, vip.BitLen())
}

func hostNet(vip netip.Addr) *net.IPNet {
	return &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(vip.BitLen(), vip.BitLen())}
}

// addrCommand is the iproute2 command that adds or deletes p on lo.
func addrCommand(verb string, p netip.Prefix) string {
	if p.Addr().Is6() {
		return fmt.Sprintf("ip -6 addr %s %s dev lo", verb, p)
	}
	return fmt.Sprintf("ip addr %s %s dev lo", verb, p)
}

// linkAddrs returns the set of addresses on link.
func linkAddrs(link netlink.Link) (map[netip.Addr]bool, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	have := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			have[ip.Unmap()] = true
		}
	}
	return have, nil
}
