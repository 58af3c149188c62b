package admin

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/udr-lb/udr/service"
)

// DefaultLookupTimeout bounds each host name lookup of SystemResolver:
// a listing with an unreachable DNS server should print numbers, not hang
// as gethostbyaddr can.
const DefaultLookupTimeout = time.Second

// SystemResolver is the Resolver Run uses when Options has none. Host names
// come from the system resolver (net.DefaultResolver.LookupAddr: /etc/hosts,
// then DNS), as gethostbyaddr finds them; port names from a services(5)
// file, the first entry for the port and protocol winning, as getservbyport
// reads /etc/services. A SystemResolver is safe for concurrent use.
type SystemResolver struct {
	Timeout      time.Duration // per host lookup; 0 means DefaultLookupTimeout
	ServicesFile string        // "" means /etc/services

	once     sync.Once
	services map[portKey]string
}

// HostName returns the first name LookupAddr finds for a, without the
// trailing dot.
func (r *SystemResolver) HostName(a netip.Addr) (string, bool) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, a.String())
	if err != nil || len(names) == 0 {
		return "", false
	}
	name := strings.TrimSuffix(names[0], ".")
	return name, name != ""
}

// ServiceName returns the services file's name of port for proto.
func (r *SystemResolver) ServiceName(port uint16, proto service.Proto) (string, bool) {
	r.once.Do(func() {
		path := r.ServicesFile
		if path == "" {
			path = "/etc/services"
		}
		f, err := os.Open(path)
		if err != nil {
			return // every port stays a number
		}
		defer f.Close()
		r.services = parseServices(f)
	})
	name, ok := r.services[portKey{port, proto}]
	return name, ok
}

// parseServices reads a services(5) file: "name port/protocol [aliases]",
// '#' starting a comment. Only tcp and udp entries are kept.
func parseServices(rd io.Reader) map[portKey]string {
	m := make(map[portKey]string)
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		num, protoName, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			continue
		}
		var proto service.Proto
		switch protoName {
		case "tcp":
			proto = service.TCP
		case "udp":
			proto = service.UDP
		default:
			continue
		}
		k := portKey{uint16(port), proto}
		if _, dup := m[k]; !dup {
			m[k] = f[0]
		}
	}
	return m
}
