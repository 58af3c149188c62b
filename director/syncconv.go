//go:build linux

package director

import (
	"net/netip"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/ipvssync"
)

// toWire is a connection the workers queued, as a sync record: the kernel
// sends a DR connection's flags (IP_VS_CONN_F_DROUTE, NOOUTPUT, INACTIVE
// when it does not count as active, TEMPLATE), its state number (a
// template's NONE or ASSURED, 0 for UDP) and its timeout.
func toWire(r *forwarder.SyncRecord) ipvssync.Conn {
	client, vip := r.Key.Addrs()
	flags := uint32(ipvssync.FlagDRoute | ipvssync.FlagNoOutput)
	if r.Key.Template {
		flags |= ipvssync.FlagTemplate
	} else if r.Flags&conntrack.FlagActive == 0 {
		flags |= ipvssync.FlagInactive
	}
	return ipvssync.Conn{Protocol: r.Key.Proto, Flags: flags, State: r.State.KernelState(), Client: client, VIP: vip,
		Dest: netip.AddrPortFrom(r.Dest.Real.Addr().Unmap(), r.Dest.Real.Port()), Timeout: r.Timeout}
}

const (
	protoTCP = 6
	protoUDP = 17
)

// fromWire is a received record as a connection to insert. Its real
// server is named by the service's address and port and its own; the
// workers bind it as the kernel's ip_vs_find_dest does (the VIP's port,
// else the FTP service for FTP data ports, else the VIP's port-0
// service). It returns a drop reason instead when udr cannot keep the
// connection.
func fromWire(c *ipvssync.Conn) (forwarder.SyncRecord, string) {
	template := c.Flags&ipvssync.FlagTemplate != 0
	switch {
	case c.Fwmark != 0:
		return forwarder.SyncRecord{}, dropFwmark
	case c.Flags&ipvssync.FlagNoCPort != 0 && !template:
		return forwarder.SyncRecord{}, dropNoCPort
	case c.Protocol != protoTCP && c.Protocol != protoUDP:
		return forwarder.SyncRecord{}, dropSkipped
	}
	vip := netip.AddrPortFrom(c.VIP.Addr().Unmap(), c.VIP.Port())
	client := netip.AddrPortFrom(c.Client.Addr().Unmap(), c.Client.Port())
	real := netip.AddrPortFrom(c.Dest.Addr().Unmap(), c.Dest.Port())
	state, err := conntrack.StateFromKernel(c.State, c.Protocol, template)
	if err != nil {
		return forwarder.SyncRecord{}, dropSkipped // the decoder skips these already
	}
	k := conntrack.NewKey(c.Protocol, client, vip)
	k.Template = template
	r := forwarder.SyncRecord{Key: k, Dest: dest.Key{Proto: c.Protocol, VIP: vip, Real: real}, State: state, Timeout: c.Timeout}
	if !template && c.Flags&ipvssync.FlagInactive == 0 {
		r.Flags |= conntrack.FlagActive
	}
	if template {
		r.Flags |= conntrack.FlagTemplate
	}
	return r, ""
}
