package admin

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/udr-lb/udr/sched"
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
// On error c is unchanged. Commands that do not change the table (-L, -S,
// -R, -h, -v, the sync daemon) are an error.
func Apply(c *service.Config, cmd *Command) error {
	switch cmd.Op {
	case OpAddService, OpEditService:
		return applyService(c, cmd)
	case OpDeleteService:
		i := serviceIndex(c, cmd.Service.Key)
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
		c.Services = append(c.Services[:i:i], c.Services[i+1:]...)
	case OpClear:
		c.Services = nil
	case OpZero:
		if cmd.Options.Has(OptService) && c.Service(cmd.Service.Key) == nil {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
	case OpAddServer, OpEditServer, OpDeleteServer:
		return applyDest(c, cmd)
	case OpSet:
		if t := cmd.Timeouts.TCP; t != 0 {
			c.Timeouts.TCP = t
		}
		if t := cmd.Timeouts.TCPFin; t != 0 {
			c.Timeouts.TCPFin = t
		}
		if t := cmd.Timeouts.UDP; t != 0 {
			c.Timeouts.UDP = t
		}
	default:
		return fmt.Errorf("apply %s: the command does not change the virtual server table", cmd.Op.Flag())
	}
	return nil
}

func serviceIndex(c *service.Config, k service.Key) int {
	for i, s := range c.Services {
		if s.Key == k {
			return i
		}
	}
	return -1
}

func applyService(c *service.Config, cmd *Command) error {
	u := &cmd.Service
	svc := c.Service(u.Key)
	switch {
	case cmd.Op == OpAddService && svc != nil:
		return kernelErr(cmd.Op, syscall.EEXIST)
	case cmd.Op == OpEditService && svc == nil:
		return kernelErr(cmd.Op, syscall.ESRCH)
	case !sched.Valid(u.Scheduler):
		return kernelErr(cmd.Op, syscall.ENOENT)
	case cmd.PE != "":
		// udr has no persistence engine modules (the kernel has sip).
		return kernelErr(cmd.Op, syscall.ENOENT)
	case u.Addr.Is6() && (u.Netmask < 1 || u.Netmask > 128):
		return kernelErr(cmd.Op, syscall.EINVAL)
	}
	n := service.Service{
		Key:        u.Key,
		Scheduler:  u.Scheduler,
		Flags:      u.Flags,
		Persistent: u.Persistent,
		Netmask:    u.Netmask,
		OnePacket:  u.OnePacket,
	}
	if n.Persistent {
		n.Timeout = u.Timeout
	} else {
		n.Netmask = u.Addr.BitLen()
	}
	if svc == nil {
		c.Services = append(c.Services, &n)
		return nil
	}
	n.Dests = svc.Dests
	*svc = n
	return nil
}

func applyDest(c *service.Config, cmd *Command) error {
	svc := c.Service(cmd.Service.Key)
	if svc == nil {
		return kernelErr(cmd.Op, syscall.ESRCH)
	}
	u := cmd.Dest
	if cmd.Op != OpDeleteServer && u.LThreshold > u.UThreshold {
		// ip_vs_add_dest, ip_vs_edit_dest: "lower threshold is higher
		// than upper threshold"; an unset -x is 0, so -y alone fails too.
		return kernelErr(cmd.Op, syscall.ERANGE)
	}
	i := -1
	for j, d := range svc.Dests {
		if d.Addr == u.Addr && d.Port == u.Port {
			i = j
			break
		}
	}
	switch cmd.Op {
	case OpAddServer:
		if i >= 0 {
			return kernelErr(cmd.Op, syscall.EEXIST)
		}
		if !Unicast(u.Addr) {
			return kernelErr(cmd.Op, syscall.EINVAL)
		}
		u.LastWeight = u.Weight
		svc.Dests = append([]service.Dest{u}, svc.Dests...)
	case OpEditServer:
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ENOENT)
		}
		d := &svc.Dests[i]
		if u.Weight != 0 {
			d.LastWeight = u.Weight
		}
		d.Weight, d.UThreshold, d.LThreshold = u.Weight, u.UThreshold, u.LThreshold
	case OpDeleteServer:
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ENOENT)
		}
		svc.Dests = append(svc.Dests[:i:i], svc.Dests[i+1:]...)
	}
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
