package admin

import (
	"net/netip"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// Conns lists a connection table as ipvsadm -L -c shows it: connections
// and persistence templates in table order (like the kernel's hash order,
// not sorted), with the whole seconds left at now (in ticks of the table's
// clock). The
// caller owns ct: it must not change during the call.
func Conns(ct *conntrack.Table, reg *dest.Registry, now uint32) []Conn {
	list := make([]Conn, 0, ct.Len())
	ct.Range(func(k conntrack.Key, e conntrack.Entry) bool {
		list = append(list, connOf(k, e, ct.SecondsLeft(e, now), reg))
		return true
	})
	return list
}

// AppendConns appends to list the entries a listing copied in steps
// (forwarder.Worker.ListConns), as Conns lists them.
func AppendConns(list []Conn, entries []conntrack.Listed, reg *dest.Registry) []Conn {
	for i := range entries {
		l := &entries[i]
		list = append(list, connOf(l.Key(), l.Entry(), l.Expires(), reg))
	}
	return list
}

func connOf(k conntrack.Key, e conntrack.Entry, expires uint32, reg *dest.Registry) Conn {
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
	return Conn{
		Proto:    service.Proto(k.Proto),
		Expires:  expires,
		State:    e.State.String(),
		Client:   client,
		Virtual:  vip,
		Dest:     netip.AddrPortFrom(rs.Addr(), port),
		Template: k.Template,
	}
}
