package health

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// probeTarget runs one check of t; ctx carries its timeout.
func (c *Checker) probeTarget(ctx context.Context, t Target) error {
	addr := t.addr()
	switch {
	case t.Check.Mode == ModeDR:
		return c.dr.probe(ctx, t.Server.Addr(), addr)
	case t.Check.Kind == KindTCP:
		conn, err := c.dial(ctx, "tcp", addr.String())
		if err != nil {
			return err
		}
		return conn.Close()
	case t.Check.Kind == KindHTTP:
		return c.probeHTTP(ctx, t)
	case t.Check.Kind == KindUDP:
		return c.exchangeUDP(ctx, addr.String(), []byte(t.Check.Payload), func([]byte) error { return nil })
	case t.Check.Kind == KindDNS:
		return c.probeDNS(ctx, t)
	}
	return fmt.Errorf("check kind %q: unknown", t.Check.Kind)
}

// dial connects from the checker's namespace.
func (c *Checker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := c.ns.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && conn != nil {
		conn.Close() // dialled, but the thread could not leave the namespace
		conn = nil
	}
	return conn, err
}

// maxBody bounds how much of an HTTP answer is read; the rest is dropped
// with the connection.
const maxBody = 64 << 10

// probeHTTP sends GET Path with the Host header and expects Status.
// Redirects are not followed: a 301 is a status like any other.
func (c *Checker) probeHTTP(ctx context.Context, t Target) error {
	u := url.URL{Scheme: "http", Host: t.addr().String(), Path: t.Check.Path}
	if p, err := url.ParseRequestURI(t.Check.Path); err == nil {
		u.Path, u.RawQuery = p.Path, p.RawQuery // a path may carry a query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	if t.Check.Host != "" {
		req.Host = t.Check.Host
	}
	req.Header.Set("User-Agent", "udr-health-check")
	client := http.Client{
		Transport: &http.Transport{
			DialContext:       c.dial,
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
		return fmt.Errorf("GET %s: read body: %w", u.String(), err)
	}
	if resp.StatusCode != t.Check.Status {
		return fmt.Errorf("GET %s: status %d, want %d", u.String(), resp.StatusCode, t.Check.Status)
	}
	return nil
}

// exchangeUDP sends payload to addr and passes the first reply to accept;
// replies that accept refuses are skipped until ctx's deadline (Run's
// checks always have one). An ICMP port
// unreachable ends the check as "connection refused".
func (c *Checker) exchangeUDP(ctx context.Context, addr string, payload []byte, accept func([]byte) error) error {
	conn, err := c.dial(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(payload); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	var last error
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if last != nil {
				return fmt.Errorf("udp %s: no acceptable reply: %w (last reply: %v)", addr, err, last)
			}
			return err
		}
		if last = accept(buf[:n]); last == nil {
			return nil
		}
	}
}

// probeDNS sends a query for DNSName and waits for a response with the
// same ID (any RCODE: the check asks whether the server answers, not what
// its zone holds).
func (c *Checker) probeDNS(ctx context.Context, t Target) error {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("dns check: query id: %w", err)
	}
	id := binary.BigEndian.Uint16(b[:])
	q, err := buildQuery(id, t.Check.DNSName, t.Check.DNSType)
	if err != nil {
		return fmt.Errorf("dns check: %w", err)
	}
	return c.exchangeUDP(ctx, t.addr().String(), q, func(resp []byte) error { return checkResponse(resp, id) })
}
