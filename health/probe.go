package health

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// probeTarget runs one check of t; ctx carries its timeout.
func (c *Checker) probeTarget(ctx context.Context, t Target) error {
	addr := t.addr()
	switch {
	case t.Check.Mode == ModeDR:
		return c.dr.probe(ctx, t.Server.Addr(), addr)
	case t.Check.Kind == KindTCP:
		conn, err := c.dialFrom(ctx, t.Check.Source, "tcp", addr.String())
		if err != nil {
			return err
		}
		return conn.Close()
	case t.Check.Kind.IsHTTP():
		return c.probeHTTP(ctx, t)
	case t.Check.Kind == KindMisc:
		return c.runMisc(ctx, t)
	case t.Check.Kind == KindUDP:
		return c.exchangeUDP(ctx, t.Check.Source, addr.String(), []byte(t.Check.Payload), func([]byte) error { return nil })
	case t.Check.Kind == KindDNS:
		return c.probeDNS(ctx, t)
	}
	return fmt.Errorf("check kind %q: unknown", t.Check.Kind)
}

// dialFrom connects from the checker's namespace, from source when it is
// valid (a check's Source). A source the director does not have fails the
// check: bind's EADDRNOTAVAIL is the configuration's fault, not a
// shortage of local ports, so it is not a LocalError.
func (c *Checker) dialFrom(ctx context.Context, source netip.Addr, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := c.ns.Do(func() error {
		var d net.Dialer
		if source.IsValid() {
			if network == "udp" {
				d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
			} else {
				d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
			}
		}
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		var se *os.SyscallError
		if err != nil && source.IsValid() && errors.As(err, &se) && se.Syscall == "bind" {
			err = fmt.Errorf("%s %s from source %s: bind: %s", network, addr, source, se.Err.Error())
		}
		return err
	})
	if err != nil && conn != nil {
		conn.Close() // dialled, but the thread could not leave the namespace
		conn = nil
	}
	return conn, err
}

// maxBody bounds how much of an HTTP answer is read when the check has no
// digest; the rest is dropped with the connection.
const maxBody = 64 << 10

// MaxDigestBody bounds the body of an http check with a digest: a longer
// one fails the check (keepalived digests the whole body; udr bounds what
// a check may read).
const MaxDigestBody = 1 << 20

// probeHTTP sends GET Path with the Host header and expects Status (or
// one of Statuses), and
// the body's MD5 to be Digest when there is one. Redirects are not
// followed: a 301 is a status like any other. Kind https speaks TLS
// without verifying the certificate, as keepalived's SSL_GET, with Host's
// name (without its port) as the server name (SNI) when it is given.
func (c *Checker) probeHTTP(ctx context.Context, t Target) error {
	scheme := "http"
	if t.Check.Kind == KindHTTPS {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: t.addr().String(), Path: t.Check.Path}
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
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dialFrom(ctx, t.Check.Source, network, addr)
		},
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	if t.Check.Kind == KindHTTPS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, ServerName: serverName(t.Check.Host)}
	}
	client := http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if t.Check.Digest == "" {
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
			return fmt.Errorf("GET %s: read body: %w", u.String(), err)
		}
	}
	switch st := t.Check.Statuses; {
	case !st.Empty() && !st.Has(resp.StatusCode):
		return fmt.Errorf("GET %s: status %d, want %s", u.String(), resp.StatusCode, st)
	case st.Empty() && resp.StatusCode != t.Check.Status:
		return fmt.Errorf("GET %s: status %d, want %d", u.String(), resp.StatusCode, t.Check.Status)
	}
	if t.Check.Digest == "" {
		return nil
	}
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, MaxDigestBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("GET %s: read body: %w", u.String(), err)
	case n > MaxDigestBody:
		return fmt.Errorf("GET %s: body longer than %d bytes, too long to digest", u.String(), MaxDigestBody)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != t.Check.Digest {
		return fmt.Errorf("GET %s: body digest %s, want %s", u.String(), got, t.Check.Digest)
	}
	return nil
}

// serverName returns the TLS server name of an https check's Host: its
// host without the port; "" (none) when Host is empty or an address,
// which SNI does not carry (RFC 6066 section 3).
func serverName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return host
}

// exchangeUDP sends payload to addr and passes the first reply to accept;
// replies that accept refuses are skipped until ctx's deadline (Run's
// checks always have one). An ICMP port
// unreachable ends the check as "connection refused".
func (c *Checker) exchangeUDP(ctx context.Context, source netip.Addr, addr string, payload []byte, accept func([]byte) error) error {
	conn, err := c.dialFrom(ctx, source, "udp", addr)
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
	return c.exchangeUDP(ctx, t.Check.Source, t.addr().String(), q, func(resp []byte) error { return checkResponse(resp, id) })
}
