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
		rs := reg.Key(e.Dest).Real
		port := rs.Port()
		if port == 0 {
			// A port-0 service forwards to the packet's port.
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
