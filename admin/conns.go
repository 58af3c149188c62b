package admin

import (
	"net/netip"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// Conns lists a connection table as ipvsadm -L -c shows it: connections
// and persistence templates in table order (like the kernel's hash order,
// not sorted), with the seconds left at now on the table's clock. The
// caller owns ct: it must not change during the call.
func Conns(ct *conntrack.Table, reg *dest.Registry, now uint32) []Conn {
	list := make([]Conn, 0, ct.Len())
	ct.Range(func(k conntrack.Key, e conntrack.Entry) bool {
		client, vip := k.Addrs()
		dk := reg.Key(e.Dest)
		rs := dk.Real
		port := rs.Port()
		if k.VPort != dk.VIP.Port() {
			// The entry's port is not its service's: a port-0 service,
			// or FTP data through the port-21 service, forwards to the
			// packet's port, and a template with virtual port 0 (port-0
			// or FTP service) has destination port 0
			// (ip_vs_sched_persist).
			port = k.VPort
		}
		list = append(list, Conn{
			Proto:    service.Proto(k.Proto),
			Expires:  e.Expires(now),
			State:    e.State.String(),
			Client:   client,
			Virtual:  vip,
			Dest:     netip.AddrPortFrom(rs.Addr(), port),
			Template: k.Template,
		})
		return true
	})
	return list
}
