package admin

import (
	"net/netip"

	"github.com/udr-lb/udr/service"
)

// Apply changes c as the kernel changes its table for cmd (ip_vs_ctl.c
// ip_vs_genl_set_cmd and the functions it calls), with the kernel's checks
// in the kernel's order and its errors as *KernelError. A scheduler exists
// when udr's sched package has it (sched.Valid).
//
// Semantics kept from the kernel:
//   - -A appends the service; -E replaces its scheduler, flags,
//     persistence and netmask wholesale and keeps its real servers.
//   - -a puts the new real server at the head of the list (list_add);
//     -e replaces weight and thresholds; LastWeight takes the new weight on
//     -a, and on -e unless it is 0.
//   - -D, -C and -d remove; --set changes the timeouts that are not 0.
//   - -Z changes nothing, but needs the service it names.
//
// One normalisation: a service that is not persistent keeps the default
// netmask, because the kernel never uses (and ipvsadm never shows) the mask
// of such a service.
//
// On error c is unchanged. Apply copies the table; to apply many commands,
// use an Editor or ApplyAll. Commands that do not change the table (-L, -S,
// -R, -h, -v, the sync daemon) are an error.
func Apply(c *service.Config, cmd *Command) error {
	e := NewEditor(c)
	if err := e.Apply(cmd); err != nil {
		return err
	}
	*c = *e.Config()
	return nil
}

// Unicast is the address check of ip_vs_new_dest: for IPv4,
// inet_addr_type must be unicast (not 0.0.0.0/8, 255.255.255.255 or
// multicast; broadcast addresses of local subnets depend on the host and are
// not checked); for IPv6, ipv6_addr_type must be unicast and not link-local
// (which rules out ::, multicast and IPv4-mapped addresses).
func Unicast(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return b[0] != 0 && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return !a.IsUnspecified() && !a.IsMulticast() && !a.IsLinkLocalUnicast() && !a.Is4In6()
}
