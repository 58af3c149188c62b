package keepalived

import (
	"net/netip"
	"strings"
	"time"

	"github.com/udr-lb/udr/health"
)

type check struct {
	kind        string
	port        int // 0: the real server's
	path, host  string
	statuses    health.StatusSet
	dnsName     string
	dnsType     string
	digest      string
	script      string
	miscDynamic bool
	source      string
	retryEvery  time.Duration // retry_interval; 0: none written
	interval    time.Duration
	timeout     time.Duration
	fall        int
	initialDown bool
	onFailure   string
}

// params are the checker settings that a virtual_server gives its
// real_servers, and a real_server its checker.
type params struct {
	delayLoop, delayBeforeRetry, connectTimeout time.Duration
	connectTimeoutSt, delayBeforeRetrySt        *Stmt
	retry                                       int // -1: the checker's default
	inhibit                                     bool
	alpha                                       bool
	virtualhost                                 string
}

// checker converts a checker block.
func (t *translator) checker(st *Stmt, p params) *check {
	kw := st.Keyword()
	c := &check{}
	switch kw {
	case "TCP_CHECK":
		c.kind = "tcp"
	case "HTTP_GET":
		c.kind = "http"
	case "DNS_CHECK":
		c.kind = "dns"
		c.port = defaultDNSPort
		c.dnsName, c.dnsType = defaultDNSName, defaultDNSType
	case "SSL_GET":
		c.kind = "https"
	case "MISC_CHECK":
		c.kind = "misc"
	default:
		t.errorf(st, "%s: not supported by udr (its checks are TCP_CHECK, HTTP_GET, SSL_GET, DNS_CHECK and MISC_CHECK)", kw)
		return nil
	}
	if !st.HasBlock && len(st.Args()) > 0 {
		t.errorf(st, "%s: want %s { ... }", kw, kw)
		return nil
	}
	var urls []*Stmt
	var miscTimeout time.Duration
	var miscTimeoutSt *Stmt
	web := c.kind == "http" || c.kind == "https"
	for _, k := range st.Block {
		if t.commonParam(k, &p) {
			continue
		}
		switch k2 := k.Keyword(); {
		case c.kind == "misc" && k2 == "misc_path":
			if v, ok := t.one(k); ok {
				if _, err := health.SplitScript(v); err != nil {
					t.errorf(k, "misc_path: %v", err)
				}
				c.script = v
			}
		case c.kind == "misc" && k2 == "misc_timeout":
			// keepalived: misc_timeout 0 is the default, delay_loop.
			if d, ok := t.timer(k, 0); ok && d > 0 {
				miscTimeout, miscTimeoutSt = d, k
			}
		case c.kind == "misc" && k2 == "misc_dynamic":
			c.miscDynamic = t.flag(k)
		case c.kind == "misc" && k2 == "user":
			t.errorf(k, "user: not supported by udr (its misc checks run as udr runs)")
		case c.kind == "misc" && (k2 == "connect_port" || k2 == "bindto" || k2 == "connect_timeout"):
			t.errorf(k, "%s: not for MISC_CHECK", k2)
		case k2 == "bindto":
			if v, ok := t.one(k); ok {
				a, err := netip.ParseAddr(v)
				if err != nil || a.Zone() != "" {
					t.errorf(k, "bindto: %q is not an IP address", v)
				} else {
					c.source = a.String()
				}
			}
		case k2 == "connect_port":
			if n, ok := t.uint(k, 65535); ok {
				if n == 0 {
					t.errorf(k, "connect_port 0: want 1..65535")
				}
				c.port = int(n)
			}
		case k2 == "connect_ip" || k2 == "bind_port" || k2 == "bind_if" || k2 == "fwmark":
			t.errorf(k, "%s: not supported by udr (its checks connect to the real server's address, from an address of the director's chosen by bindto or the kernel)", k2)
		case k2 == "log_all_failures":
			t.warnf(k, "log_all_failures: ignored, udr logs every change of state")
		case web && k2 == "url":
			urls = append(urls, k)
		case web && (k2 == "http_protocol" || k2 == "fast_recovery" || k2 == "enable_sni" || k2 == "tls_compliant"):
			t.warnf(k, "%s: ignored by udr's HTTP check (it sends SNI whenever virtualhost is a name)", k2)
		case c.kind == "dns" && k2 == "type":
			if v, ok := t.one(k); ok {
				c.dnsType = strings.ToUpper(v)
				switch c.dnsType {
				case "A", "AAAA", "NS", "SOA", "MX", "TXT", "CNAME", "PTR", "SRV":
				default:
					t.errorf(k, "type %s: want A, AAAA, NS, SOA, MX, TXT, CNAME, PTR or SRV", v)
				}
			}
		case c.kind == "dns" && k2 == "name":
			if v, ok := t.one(k); ok {
				if err := health.CheckDNSName(v); err != nil {
					t.errorf(k, "name: %v", err)
				}
				c.dnsName = v
			}
		default:
			t.errorf(k, "%s: unknown keyword in %s", k2, kw)
		}
	}
	if web {
		c.path, c.host = "/", p.virtualhost
		switch len(urls) {
		case 0:
			t.errorf(st, "%s: no url block", kw)
		default:
			for _, u := range urls[1:] {
				t.errorf(u, "url: udr's HTTP check fetches one URL, the first is at %s", urls[0].At())
			}
			t.url(urls[0], c)
		}
		if c.host != "" {
			if err := health.CheckHTTPHost(c.host); err != nil {
				t.errorf(st, "virtualhost: %v", err)
			}
		}
	}
	c.interval = defaultDelayLoop
	if p.delayLoop > 0 {
		c.interval = p.delayLoop
	}
	switch {
	case c.kind == "misc" && miscTimeoutSt != nil:
		// A misc check may outlast delay_loop, in keepalived as in udr:
		// the next run starts when the program has been reaped.
		c.timeout = miscTimeout
	case c.kind == "misc":
		c.timeout = c.interval // keepalived's default: delay_loop
	case p.connectTimeout > 0:
		c.timeout = p.connectTimeout
		if c.timeout >= c.interval {
			at := p.connectTimeoutSt
			t.errorf(at, "connect_timeout %v: udr needs it shorter than delay_loop %v", c.timeout, c.interval)
		}
	default:
		c.timeout = min(defaultConnectTimeout, c.interval/2)
	}
	if c.kind == "misc" && c.script == "" {
		t.errorf(st, "MISC_CHECK: no misc_path")
	}
	retry := defaultRetry
	if c.kind == "misc" {
		retry = defaultMiscRetry
	}
	if p.retry >= 0 {
		retry = p.retry
	}
	c.fall = retry + 1
	if retry > 0 {
		// Retries come delay_before_retry after a failure (keepalived's
		// default 1 s), not a whole delay_loop.
		c.retryEvery = defaultDelayRetry
		if p.delayBeforeRetrySt != nil {
			c.retryEvery = p.delayBeforeRetry
			if c.retryEvery < minRetryInterval {
				t.warnf(p.delayBeforeRetrySt, "delay_before_retry %v: udr retries %v after a failure at the soonest", c.retryEvery, minRetryInterval)
				c.retryEvery = minRetryInterval
			}
		}
		if c.retryEvery >= c.interval {
			c.retryEvery = 0 // the interval itself
		}
	}
	c.initialDown = p.alpha
	c.onFailure = "remove"
	if p.inhibit {
		c.onFailure = "quiesce"
	}
	return c
}

// url reads an HTTP_GET's url block.
func (t *translator) url(st *Stmt, c *check) {
	if !st.HasBlock {
		t.errorf(st, "url: want url { path ... }")
		return
	}
	defer func() {
		if c.statuses.Empty() {
			// keepalived's url_check: without status_code, any 2xx.
			c.statuses.Add(200, 299)
		}
	}()
	for _, k := range st.Block {
		switch kw := k.Keyword(); kw {
		case "path":
			if v, ok := t.one(k); ok {
				if err := health.CheckHTTPPath(v); err != nil {
					t.errorf(k, "path: %v", err)
				}
				c.path = v
			}
		case "status_code":
			// keepalived's status_code_handler: statuses and ranges
			// LOW-HIGH within 100..599, added to those of any earlier
			// status_code of the url.
			if k.HasBlock {
				t.errorf(k, "status_code: takes no block")
				continue
			}
			if len(k.Args()) == 0 {
				t.warnf(k, "status_code: no status: ignored, as keepalived does")
			}
			for _, w := range k.Args() {
				lo, hi, err := health.ParseStatusRange(w)
				if err == nil {
					err = c.statuses.Add(lo, hi)
				}
				if err != nil {
					t.errorf(k, "status_code %s: want a status 100..599 or a range such as 200-299", w)
				}
			}
		case "virtualhost":
			if v, ok := t.one(k); ok {
				c.host = v
			}
		case "digest":
			if v, ok := t.one(k); ok {
				v = strings.ToLower(v)
				if err := health.CheckDigest(v); err != nil {
					t.errorf(k, "digest: %v", err)
				}
				c.digest = v
			}
		case "regex", "regex_no_match", "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset", "no_regex_match":
			t.errorf(k, "%s: not supported by udr (its HTTP check compares the status and the digest only)", kw)
		default:
			t.errorf(k, "%s: unknown keyword in url", kw)
		}
	}
}
