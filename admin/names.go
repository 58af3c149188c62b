package admin

import (
	"net/netip"
	"strconv"

	"github.com/udr-lb/udr/service"
)

// Resolver names addresses and ports for listings without -n, as ipvsadm's
// addr_to_host (gethostbyaddr) and port_to_service (getservbyport) do. A
// false result makes the listing print the number, as ipvsadm does.
type Resolver interface {
	// HostName returns the host name of addr.
	HostName(addr netip.Addr) (string, bool)
	// ServiceName returns the service name of port for proto.
	ServiceName(port uint16, proto service.Proto) (string, bool)
}

// Widths of ipvsadm.c: addrport_to_anyname writes into 60 bytes
// (snprintf keeps 59 characters); print_service_entry cuts IPv4 service
// names ("TCP  addr:port") at 33 characters and real server names at 28.
const (
	maxAnyName     = 59
	maxServiceName = 33
	maxDestName    = 28
)

// namer is addrport_to_anyname for one command: numeric with -n, else
// through the resolver, each address and port asked once.
type namer struct {
	numeric bool
	r       Resolver
	hosts   map[netip.Addr]string
	ports   map[portKey]string
}

type portKey struct {
	port  uint16
	proto service.Proto
}

func newNamer(numeric bool, r Resolver) *namer {
	return &namer{numeric: numeric || r == nil, r: r}
}

// addrPort returns "addr:port" or "[addr]:port", with names unless -n.
func (n *namer) addrPort(a netip.Addr, port uint16, proto service.Proto) string {
	if n.numeric {
		return cut(service.FormatAddrPort(a, port), maxAnyName)
	}
	b := make([]byte, 0, 64)
	if !a.Is4() {
		b = append(b, '[')
	}
	b = append(b, n.host(a)...)
	if !a.Is4() {
		b = append(b, ']')
	}
	b = append(b, ':')
	b = append(b, n.port(port, proto)...)
	return cut(string(b), maxAnyName)
}

func (n *namer) host(a netip.Addr) string {
	if name, ok := n.hosts[a]; ok {
		return name
	}
	name, ok := n.r.HostName(a)
	if !ok || name == "" {
		name = service.FormatAddr(a)
	}
	if n.hosts == nil {
		n.hosts = make(map[netip.Addr]string)
	}
	n.hosts[a] = name
	return name
}

func (n *namer) port(port uint16, proto service.Proto) string {
	k := portKey{port, proto}
	if name, ok := n.ports[k]; ok {
		return name
	}
	name, ok := n.r.ServiceName(port, proto)
	if !ok || name == "" {
		name = strconv.Itoa(int(port))
	}
	if n.ports == nil {
		n.ports = make(map[portKey]string)
	}
	n.ports[k] = name
	return name
}

// serviceName is the first column of a service line: "%-4s %s" of the
// protocol and address, cut to 33 characters for IPv4.
func (n *namer) serviceName(s *service.Service) string {
	name := padRight(s.Proto.String(), 4) + " " + n.addrPort(s.Addr, s.Port, s.Proto)
	if s.Addr.Is4() {
		name = cut(name, maxServiceName)
	}
	return name
}

// destName is a real server's column: cut to 28 characters for IPv4.
func (n *namer) destName(s *service.Service, d service.Dest) string {
	name := n.addrPort(d.Addr, d.Port, s.Proto)
	if d.Addr.Is4() {
		name = cut(name, maxDestName)
	}
	return name
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func padRight(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}
