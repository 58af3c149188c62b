package health

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/udr-lb/udr/service"
)

// Kind is the kind of a check.
type Kind string

// Kinds of checks (keepalived TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK,
// DNS_CHECK, MISC_CHECK).
const (
	KindTCP   Kind = "tcp"   // the TCP handshake completes
	KindHTTP  Kind = "http"  // GET Path answers Status (and Digest)
	KindHTTPS Kind = "https" // as KindHTTP, over TLS without certificate verification
	KindUDP   Kind = "udp"   // Payload gets any reply
	KindDNS   Kind = "dns"   // a query for DNSName gets a response with its ID
	KindMisc  Kind = "misc"  // Script exits 0 (misc.go)
)

// IsHTTP reports whether k is KindHTTP or KindHTTPS, which take Path,
// Host, Status and Digest.
func (k Kind) IsHTTP() bool { return k == KindHTTP || k == KindHTTPS }

// ModeDR is CheckConfig.Mode for a check sent to the VIP at the real
// server's MAC. Only KindTCP supports it.
const ModeDR = "dr"

// What an unhealthy server gets (CheckConfig.OnFailure).
const (
	OnFailureQuiesce = "quiesce" // weight 0: no new connections, existing ones continue
	OnFailureRemove  = "remove"  // deleted from the service, as ipvsadm -d
)

// CheckConfig describes the check of one real server: the one definition
// of a health check's settings, which udr.yaml's health_check gives
// (config decodes it) and the checker runs. Zero values mean the defaults
// below.
type CheckConfig struct {
	Kind     Kind          // default KindTCP
	Port     uint16        // 0: the real server's port (in dr mode: the service's)
	Interval time.Duration // between the starts of two checks; default 2 s
	Timeout  time.Duration // of one check; default 1 s, at most Interval; misc: default Interval, any
	Rise     int           // consecutive successes that bring a server up; default 2
	Fall     int           // consecutive failures that take it down; default 3

	// RetryInterval, when not 0, is the wait after a failed check of a
	// server that is still up (its run of failures is shorter than Fall):
	// the next check starts RetryInterval after the failure ended, not
	// Interval after the failed check started. keepalived's
	// delay_before_retry; its retry N is Fall N+1 (the first failure,
	// then N retries, each after delay_before_retry), with Rise 1.
	RetryInterval time.Duration

	// Source, when valid, is the director's address the check comes from
	// (keepalived's bindto); invalid: the kernel's choice. Not for
	// KindMisc nor ModeDR.
	Source netip.Addr

	Path   string // http, https: request path, default "/"
	Host   string // http, https: Host header (and TLS server name), default the address checked
	Status int    // http, https: the status that means healthy, default 200
	// Statuses, when not empty, are the statuses that mean healthy, in
	// place of Status (keepalived's status_code list and ranges).
	Statuses StatusSet
	// Digest, when not "", is the MD5 of the body that means healthy, 32
	// lower-case hex digits (keepalived's url { digest }); Status must
	// match too. A body longer than MaxDigestBody fails the check.
	Digest string

	DNSName string // dns: the name queried, required
	DNSType uint16 // dns: the query type, default 1 (A)

	Payload string // udp: the datagram sent, default empty

	// Script (misc, required) is the program and its arguments, split at
	// blanks, with '…' and "…" quoting and \ escapes (keepalived's
	// misc_path). It runs with Timeout, in its own process group, killed
	// with that group at the timeout (a failure).
	Script string
	// MiscDynamic (misc): exit 0 passes with the configured weight, 1
	// fails, 2..255 passes and sets the weight to the code minus 2
	// (keepalived's misc_dynamic). Without it every code but 0 fails.
	MiscDynamic bool

	// Mode "" checks the real server's own address; ModeDR (kind tcp
	// only) sends the check to the VIP through the real server's MAC, as
	// forwarded traffic goes, so that it also fails when the VIP is
	// missing from the server's lo.
	Mode string

	// InitialDown starts the server down, so that it takes Rise successes
	// before it gets traffic (keepalived's alpha mode). By default a
	// server starts up, as keepalived does without alpha: a server that
	// was just configured gets traffic at once and leaves after Fall
	// failures, and restarting udr does not take every server out of
	// service until its first checks pass.
	InitialDown bool

	// OnFailure is what an unhealthy server gets: OnFailureQuiesce (the
	// default) or OnFailureRemove. The checker only reports; the director
	// acts on it.
	OnFailure string
}

// Defaults, as HAProxy's (inter 2s, rise 2, fall 3), with keepalived's
// HTTP expectation of status 200.
const (
	DefaultKind      = KindTCP
	DefaultInterval  = 2 * time.Second
	DefaultTimeout   = time.Second
	DefaultRise      = 2
	DefaultFall      = 3
	DefaultPath      = "/"
	DefaultStatus    = 200
	DefaultDNSType   = 1 // A
	DefaultOnFailure = OnFailureQuiesce
)

// withDefaults returns c with its zero fields set to the defaults.
func (c CheckConfig) withDefaults() CheckConfig {
	if c.Kind == "" {
		c.Kind = DefaultKind
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	switch {
	case c.Timeout != 0:
	case c.Kind == KindMisc:
		c.Timeout = c.Interval // keepalived's misc_timeout default: delay_loop
	default:
		c.Timeout = min(DefaultTimeout, c.Interval)
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Kind.IsHTTP() {
		if c.Path == "" {
			c.Path = DefaultPath
		}
		if c.Status == 0 && c.Statuses.Empty() {
			c.Status = DefaultStatus
		}
	}
	if c.Kind == KindDNS && c.DNSType == 0 {
		c.DNSType = DefaultDNSType
	}
	if c.OnFailure == "" {
		c.OnFailure = DefaultOnFailure
	}
	return c
}

// Target is one real server of one service and its check.
type Target struct {
	Service service.Key
	Server  netip.AddrPort
	Check   CheckConfig
}

// key identifies a target across Set calls: its check may change.
type key struct {
	svc    service.Key
	server netip.AddrPort
}

func (t Target) key() key { return key{t.Service, t.Server} }

// addr returns where the check goes: the real server, or in dr mode the
// VIP, at the check's port if it has one.
func (t Target) addr() netip.AddrPort {
	a := t.Server
	if t.Check.Mode == ModeDR {
		a = netip.AddrPortFrom(t.Service.Addr, t.Service.Port)
	}
	if t.Check.Port != 0 {
		a = netip.AddrPortFrom(a.Addr(), t.Check.Port)
	}
	return a
}

// String names the target in reports: "TCP 192.0.2.100:80 -> 192.0.2.11:80".
func (t Target) String() string {
	return fmt.Sprintf("%s %s -> %s", t.Service.Proto, netip.AddrPortFrom(t.Service.Addr, t.Service.Port), t.Server)
}

// validate checks a target whose check has its defaults, and names every
// problem.
func (t Target) validate() error {
	c := t.Check
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("check of %s: "+format, append([]any{t}, args...)...))
	}
	switch c.Kind {
	case KindTCP, KindHTTP, KindHTTPS, KindUDP, KindDNS, KindMisc:
	default:
		bad("kind %q: unknown, want one of tcp, http, https, udp, dns, misc", c.Kind)
	}
	if !t.Server.Addr().IsValid() {
		bad("no real server address")
	}
	if c.Kind != KindMisc && t.addr().Port() == 0 {
		bad("port 0: the service has no port, set the check's port")
	}
	if c.RetryInterval < 0 {
		bad("retry_interval %v: want 0 (none) or more", c.RetryInterval)
	}
	if c.Source.IsValid() {
		switch {
		case c.Kind == KindMisc || c.Mode == ModeDR:
			bad("source %s: not for kind misc nor mode dr", c.Source)
		case c.Source.Is4() != t.Server.Addr().Is4():
			bad("source %s: not of the real server's address family", c.Source)
		}
	}
	if c.Kind == KindMisc {
		if _, err := SplitScript(c.Script); err != nil {
			bad("%v", err)
		}
	}
	if c.Digest != "" {
		if !c.Kind.IsHTTP() {
			bad("digest: only http and https checks take one, not %s", c.Kind)
		} else if err := CheckDigest(c.Digest); err != nil {
			bad("%v", err)
		}
	}
	switch {
	case c.Interval < 0 || c.Timeout < 0:
		bad("timeout %v, interval %v: want both above 0", c.Timeout, c.Interval)
	case c.Kind != KindMisc && c.Timeout > c.Interval:
		// A misc check may outlast its interval: Run starts no check of
		// a target before the last one has ended.
		bad("timeout %v, interval %v: want 0 < timeout <= interval", c.Timeout, c.Interval)
	}
	if c.Rise < 1 || c.Fall < 1 {
		bad("rise %d, fall %d: want at least 1", c.Rise, c.Fall)
	}
	if c.Kind.IsHTTP() && c.Statuses.Empty() && (c.Status < 100 || c.Status > 599) {
		bad("status %d: want 100..599", c.Status)
	}
	if c.Kind.IsHTTP() {
		if err := CheckHTTPPath(c.Path); err != nil {
			bad("%v", err)
		}
		if err := CheckHTTPHost(c.Host); err != nil {
			bad("%v", err)
		}
	}
	if c.Kind == KindDNS {
		if err := CheckDNSName(c.DNSName); err != nil {
			bad("%v", err)
		}
	}
	switch c.Mode {
	case "":
	case ModeDR:
		if c.Kind != KindTCP {
			bad("mode %q: only tcp checks support it, not %s", c.Mode, c.Kind)
		}
	default:
		bad("mode %q: unknown, want \"\" or %q", c.Mode, ModeDR)
	}
	switch c.OnFailure {
	case OnFailureQuiesce, OnFailureRemove:
	default:
		bad("on_failure %q: unknown, want %s or %s", c.OnFailure, OnFailureQuiesce, OnFailureRemove)
	}
	return errors.Join(errs...)
}

// CheckHTTPPath checks the path of an http check: it starts with "/" and
// holds no control character (a CR or LF would end the request line) and
// no space; a query ("/healthz?full=1") is allowed.
func CheckHTTPPath(p string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("path %q does not start with /", p)
	}
	if i := strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
		return fmt.Errorf("path %q has %s at byte %d: want a URL path", p, charName(p[i]), i)
	}
	return nil
}

// CheckHTTPHost checks the Host header of an http check: empty (the real
// server's address), or a host[:port] of at most 255 bytes without a
// control character or a space.
func CheckHTTPHost(h string) error {
	if len(h) > 255 {
		return fmt.Errorf("host of %d bytes: want at most 255", len(h))
	}
	if i := strings.IndexFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
		return fmt.Errorf("host %q has %s at byte %d: want a host name or address", h, charName(h[i]), i)
	}
	return nil
}

// CheckDigest checks the digest of an http check: an MD5 in 32 lower-case
// hex digits, as md5sum prints it.
func CheckDigest(d string) error {
	if len(d) != 32 || strings.IndexFunc(d, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) >= 0 {
		return fmt.Errorf("digest %q: want an MD5 of 32 lower-case hex digits", d)
	}
	return nil
}

// CheckDNSName checks the name of a dns check: labels of 1..63 bytes, at
// most 255 bytes in wire form (RFC 1035 section 2.3.4).
func CheckDNSName(name string) error {
	if _, err := appendName(nil, name); err != nil {
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		return fmt.Errorf("dns name %q: %v", name, err)
	}
	return nil
}

// charName names a byte of a check's text for messages.
func charName(c byte) string {
	switch c {
	case '\r':
		return "a carriage return (CR)"
	case '\n':
		return "a line feed (LF)"
	case '\t':
		return "a tab"
	case ' ':
		return "a space"
	}
	return fmt.Sprintf("the control character %#02x", c)
}
