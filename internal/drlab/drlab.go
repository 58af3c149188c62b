//go:build linux

// Package drlab builds the LVS-DR walkthrough in network namespaces: a
// client, a director and real servers on one Ethernet segment (optionally a
// routed client behind a router), real servers prepared as `udr realserver
// setup` does and serving HTTP with their own name. `udr demo` and the
// end-to-end tests share it. Every address is an RFC 5737 / RFC 3849
// documentation address.
package drlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
)

// The walkthrough's addresses.
var (
	VIP      = netip.MustParseAddr("192.0.2.100")
	VIP6     = netip.MustParseAddr("2001:db8::100")
	Director = netip.MustParsePrefix("192.0.2.2/24")
	Client   = netip.MustParsePrefix("192.0.2.50/24")
	Router   = netip.MustParsePrefix("192.0.2.1/24")
	// The routed client's network, behind Router.
	RoutedClient = netip.MustParsePrefix("198.51.100.10/24")
	RouterOuter  = netip.MustParsePrefix("198.51.100.1/24")
)

// RealServerAddr returns rs<i>'s addresses (i from 1): 192.0.2.1<i> and
// 2001:db8::1<i>.
func RealServerAddr(i int) (netip.Prefix, netip.Prefix) {
	return netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 10+i)),
		netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", 10+i))
}

// Options shape a Lab.
type Options struct {
	RealServers int  // number of real servers, rs1..rsN (default 2)
	IPv6        bool // give every host an address in 2001:db8::/64 too
	Routed      bool // add a router and a client behind it
	// Ports the real servers serve HTTP on (default 80).
	Ports []int
}

// Lab is a running walkthrough topology.
type Lab struct {
	*netlab.Lab
	Client, Director, Router, Routed *netlab.Host
	RS                               []*netlab.Host

	mu      sync.Mutex
	servers map[serverKey]*http.Server // the HTTP servers running
}

// serverKey names one real server's HTTP server: rs<rs> on port.
type serverKey struct{ rs, port int }

// New builds the topology. The caller must Close it (also on failure:
// New closes what it built when it fails).
func New(name string, o Options) (l *Lab, err error) {
	if o.RealServers == 0 {
		o.RealServers = 2
	}
	if len(o.Ports) == 0 {
		o.Ports = []int{80}
	}
	nl, err := netlab.New(name)
	if err != nil {
		return nil, err
	}
	l = &Lab{Lab: nl, servers: make(map[serverKey]*http.Server)}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	add := func(name string, addrs ...netip.Prefix) (*netlab.Host, error) {
		h, err := nl.AddHost(name)
		if err != nil {
			return nil, err
		}
		return h, nl.Connect(h, "eth0", addrs...)
	}
	v6 := func(i int) []netip.Prefix {
		if !o.IPv6 {
			return nil
		}
		return []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("2001:db8::%d/64", i))}
	}
	if l.Client, err = add("client", append([]netip.Prefix{Client}, v6(0x50)...)...); err != nil {
		return l, err
	}
	if l.Director, err = add("director", append([]netip.Prefix{Director}, v6(2)...)...); err != nil {
		return l, err
	}
	vips := []netip.Addr{VIP}
	if o.IPv6 {
		vips = append(vips, VIP6)
	}
	for i := 1; i <= o.RealServers; i++ {
		a4, a6 := RealServerAddr(i)
		addrs := []netip.Prefix{a4}
		if o.IPv6 {
			addrs = append(addrs, a6)
		}
		rs, err := add(fmt.Sprintf("rs%d", i), addrs...)
		if err != nil {
			return l, err
		}
		l.RS = append(l.RS, rs)
		if err := rs.Run(func() error { return host.SetupRealServer(vips) }); err != nil {
			return l, fmt.Errorf("rs%d: %w", i, err)
		}
		for _, port := range o.Ports {
			if err := l.StartHTTP(i, port); err != nil {
				return l, err
			}
		}
	}
	if o.Routed {
		if err := l.addRouter(); err != nil {
			return l, err
		}
	}
	if o.IPv6 {
		// Link-local addresses and DAD finish asynchronously; a test
		// that sends before they do sees unanswered solicitations.
		for _, h := range append([]*netlab.Host{l.Client, l.Director}, l.RS...) {
			if err := h.WaitIPv6(10 * time.Second); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// addRouter puts a router on the segment and a client behind it, and
// routes the real servers' replies to that client through the router.
func (l *Lab) addRouter() error {
	var err error
	if l.Router, err = l.AddHost("router"); err != nil {
		return err
	}
	if err := l.Connect(l.Router, "eth0", Router); err != nil {
		return err
	}
	if l.Routed, err = l.AddHost("routed"); err != nil {
		return err
	}
	if err := l.Pair(l.Routed, "eth0", l.Router, "eth1"); err != nil {
		return err
	}
	if err := l.Routed.AddAddrs("eth0", RoutedClient); err != nil {
		return err
	}
	if err := l.Router.AddAddrs("eth1", RouterOuter); err != nil {
		return err
	}
	if err := l.Router.Run(func() error { return writeProc("/proc/sys/net/ipv4/ip_forward", "1") }); err != nil {
		return err
	}
	if err := l.Routed.Command("ip", "route", "add", "default", "via", RouterOuter.Addr().String()).Run(); err != nil {
		return fmt.Errorf("routed client default route: %w", err)
	}
	for _, rs := range l.RS {
		if err := rs.Command("ip", "route", "add", RoutedClient.Masked().String(), "via", Router.Addr().String()).Run(); err != nil {
			return fmt.Errorf("real server route to the routed client: %w", err)
		}
	}
	return nil
}

// StartHTTP runs rs<rs>'s HTTP server on [::]:port (rs from 1): it
// answers every request with the server's name. New starts one on each of
// Options.Ports; StartHTTP starts one again after StopHTTP.
func (l *Lab) StartHTTP(rs, port int) error {
	if rs < 1 || rs > len(l.RS) {
		return fmt.Errorf("start HTTP on rs%d: the lab has rs1..rs%d", rs, len(l.RS))
	}
	name := fmt.Sprintf("rs%d", rs)
	k := serverKey{rs, port}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.servers[k] != nil {
		return fmt.Errorf("start HTTP on %s:%d: already serving", name, port)
	}
	var ln net.Listener
	err := l.RS[rs-1].Run(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: listen on :%d: %w", name, port, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				// A long-lived response: the connection stays open.
				time.Sleep(2 * time.Second)
			}
			io.WriteString(w, name+"\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	l.servers[k] = srv
	go srv.Serve(ln)
	return nil
}

// StopHTTP stops rs<rs>'s HTTP server on port: its listener and its
// connections are closed, so that a new connection to the port is refused
// (the real server's kernel answers the SYN with a RST).
func (l *Lab) StopHTTP(rs, port int) error {
	k := serverKey{rs, port}
	l.mu.Lock()
	srv := l.servers[k]
	delete(l.servers, k)
	l.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("stop HTTP on rs%d:%d: not serving", rs, port)
	}
	return srv.Close()
}

// Close stops the HTTP servers and removes every namespace.
func (l *Lab) Close() error {
	l.mu.Lock()
	for k, s := range l.servers {
		s.Close()
		delete(l.servers, k)
	}
	l.mu.Unlock()
	return l.Lab.Close()
}

// HTTPClient returns a client whose connections are made from h's
// namespace, one new TCP connection per request.
func HTTPClient(h *netlab.Host, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := h.Run(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
	}
}

// Get fetches url with c and returns the body without its trailing newline.
func Get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// IsRefused reports whether err is a refused TCP connection (a RST in
// answer to the SYN).
func IsRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func writeProc(path, value string) error { return os.WriteFile(path, []byte(value), 0o644) }
