package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/health"
)

// healthDoc is a health_check mapping as written.
type healthDoc struct {
	Kind        ast.Node `yaml:"kind"`
	Port        ast.Node `yaml:"port"`
	Path        ast.Node `yaml:"path"`
	Host        ast.Node `yaml:"host"`
	Status      ast.Node `yaml:"status"`
	DNSName     ast.Node `yaml:"dns_name"`
	DNSType     ast.Node `yaml:"dns_type"`
	Payload     ast.Node `yaml:"payload"`
	Interval    ast.Node `yaml:"interval"`
	Timeout     ast.Node `yaml:"timeout"`
	Rise        ast.Node `yaml:"rise"`
	Fall        ast.Node `yaml:"fall"`
	InitialDown ast.Node `yaml:"initial_down"`
	Mode        ast.Node `yaml:"mode"`
	OnFailure   ast.Node `yaml:"on_failure"`
	Digest      ast.Node `yaml:"digest"`
	Script      ast.Node `yaml:"script"`
	MiscDynamic ast.Node `yaml:"misc_dynamic"`
	Retry       ast.Node `yaml:"retry_interval"`
	Source      ast.Node `yaml:"source"`
}

// Fields of a health check, in the order of healthKeys.
const (
	hcKind = iota
	hcPort
	hcPath
	hcHost
	hcStatus
	hcDNSName
	hcDNSType
	hcPayload
	hcInterval
	hcTimeout
	hcRise
	hcFall
	hcInitialDown
	hcMode
	hcOnFailure
	hcDigest
	hcScript
	hcMiscDynamic
	hcRetryInterval
	hcSource
	numHealthFields
)

var healthKeys = [numHealthFields]string{
	"kind", "port", "path", "host", "status", "dns_name", "dns_type", "payload",
	"interval", "timeout", "rise", "fall", "initial_down", "mode", "on_failure",
	"digest", "script", "misc_dynamic", "retry_interval", "source",
}

// healthSrc is a health check as the nodes of its fields, each with the
// path of the health_check mapping it was written in.
type healthSrc struct {
	owner string // the health_check that applies: the server's, else the service's
	nodes [numHealthFields]ast.Node
	at    [numHealthFields]string
}

func (h *healthDoc) nodes() [numHealthFields]ast.Node {
	return [...]ast.Node{h.Kind, h.Port, h.Path, h.Host, h.Status, h.DNSName, h.DNSType, h.Payload,
		h.Interval, h.Timeout, h.Rise, h.Fall, h.InitialDown, h.Mode, h.OnFailure,
		h.Digest, h.Script, h.MiscDynamic, h.Retry, h.Source}
}

// mergeHealth returns the health check of a server: the service's (svc,
// written at svcPath) with every field that the server's (srv) gives
// replaced. A server check naming another kind inherits nothing. Both may
// be nil; the result is nil when both are.
func mergeHealth(svc *healthDoc, svcPath string, srv *healthDoc, srvPath string) *healthSrc {
	if svc == nil && srv == nil {
		return nil
	}
	h := &healthSrc{}
	if svc != nil {
		h.owner, h.nodes = svcPath, svc.nodes()
		for i := range h.at {
			h.at[i] = svcPath
		}
	}
	if srv == nil {
		return h
	}
	s := srv.nodes()
	if !absent(s[hcKind]) && kindOf(s[hcKind]) != kindOf(h.nodes[hcKind]) {
		h.nodes = [numHealthFields]ast.Node{}
		for i := range h.at {
			h.at[i] = srvPath
		}
	}
	h.owner = srvPath
	for i, n := range s {
		if !absent(n) {
			h.nodes[i], h.at[i] = n, srvPath
		}
	}
	return h
}

// kindOf returns the kind a node names as written, "tcp" when absent.
func kindOf(n ast.Node) string {
	if s, ok := n.(*ast.StringNode); ok {
		return s.Value
	}
	if absent(n) {
		return string(health.DefaultKind)
	}
	return n.GetToken().Value
}

// healthFields says which fields each kind takes besides the common ones
// (interval, timeout, rise, fall, retry_interval, initial_down, mode,
// on_failure, and but for misc port and source).
var healthFields = map[string][]int{
	"tcp":   nil,
	"udp":   {hcPayload},
	"http":  {hcPath, hcHost, hcStatus, hcDigest},
	"https": {hcPath, hcHost, hcStatus, hcDigest},
	"dns":   {hcDNSName, hcDNSType},
	"misc":  {hcScript, hcMiscDynamic},
	"none":  {},
}

// kindOnly are the fields that only some kinds take.
var kindOnly = map[int]bool{
	hcPath: true, hcHost: true, hcStatus: true, hcDNSName: true, hcDNSType: true, hcPayload: true,
	hcDigest: true, hcScript: true, hcMiscDynamic: true,
}

// health converts and checks a health check, filling in health's defaults
// (health.DefaultInterval, ...): Path and Status for http and https only,
// DNSType for dns only. server is the real server's address (invalid for
// the VIP for a service's own check), whose family source must have. It returns nil
// for none (kind "none", or no health_check at all), and ok false after a
// problem.
func (d *configDecoder) health(h *healthSrc, server netip.Addr) (hc *health.CheckConfig, ok bool) {
	if h == nil {
		return nil, true
	}
	path := func(i int) string { return h.at[i] + "." + healthKeys[i] }
	n := &h.nodes
	kind, ok := d.oneOf(path(hcKind), n[hcKind], string(health.DefaultKind), "tcp", "http", "https", "udp", "dns", "misc", "none")
	if !ok {
		return nil, false
	}
	own := map[int]bool{hcKind: true}
	for _, i := range healthFields[kind] {
		own[i] = true
	}
	for i := range n {
		switch {
		case absent(n[i]) || own[i]:
		case kind == "none":
			d.errorf(path(i), "not used by kind none")
			ok = false
		case kindOnly[i], kind == "misc" && (i == hcPort || i == hcSource):
			d.errorf(path(i), "not used by kind %s", kind)
			ok = false
		}
	}
	if kind == "none" {
		return nil, ok
	}

	c := health.CheckConfig{Kind: health.Kind(kind)}
	good := func(v bool) { ok = ok && v }
	var port, status, rise, fall int64
	var v bool
	port, v = d.integer(path(hcPort), n[hcPort], 0, 65535, 0)
	good(v)
	c.Port = uint16(port)
	if kind == "http" || kind == "https" {
		c.Digest, v = d.str(path(hcDigest), n[hcDigest], "")
		good(v)
		if v && c.Digest != "" {
			c.Digest = strings.ToLower(c.Digest)
			if err := health.CheckDigest(c.Digest); err != nil {
				d.errorf(path(hcDigest), "%v", err)
				ok = false
			}
		}
		c.Path, v = d.str(path(hcPath), n[hcPath], health.DefaultPath)
		good(v)
		if v {
			if err := health.CheckHTTPPath(c.Path); err != nil {
				d.errorf(path(hcPath), "%v", err)
				ok = false
			}
		}
		c.Host, v = d.str(path(hcHost), n[hcHost], "")
		good(v)
		if v {
			if err := health.CheckHTTPHost(c.Host); err != nil {
				d.errorf(path(hcHost), "%v", err)
				ok = false
			}
		}
		switch n[hcStatus].(type) {
		case *ast.StringNode, *ast.SequenceNode:
			c.Statuses, v = d.statuses(path(hcStatus), n[hcStatus])
			good(v)
		default:
			status, v = d.integer(path(hcStatus), n[hcStatus], 100, 599, health.DefaultStatus)
			good(v)
			c.Status = int(status)
		}
	}
	if kind == "dns" {
		c.DNSName, v = d.str(path(hcDNSName), n[hcDNSName], "")
		good(v)
		switch {
		case !v:
		case c.DNSName == "":
			d.errorf(h.owner+".dns_name", "required for kind dns")
			ok = false
		default:
			if err := health.CheckDNSName(c.DNSName); err != nil {
				d.errorf(path(hcDNSName), "%v", err)
				ok = false
			}
		}
		c.DNSType, v = d.dnsType(path(hcDNSType), n[hcDNSType], health.DefaultDNSType)
		good(v)
	}
	if kind == "udp" {
		c.Payload, v = d.str(path(hcPayload), n[hcPayload], "")
		good(v)
	}
	if kind == "misc" {
		c.Script, v = d.str(path(hcScript), n[hcScript], "")
		good(v)
		switch {
		case !v:
		case absent(n[hcScript]):
			d.errorf(h.owner+".script", "required for kind misc")
			ok = false
		default:
			if _, err := health.SplitScript(c.Script); err != nil {
				d.errorf(path(hcScript), "%v", err)
				ok = false
			}
		}
		c.MiscDynamic, v = d.boolean(path(hcMiscDynamic), n[hcMiscDynamic])
		good(v)
	}
	if !absent(n[hcSource]) {
		c.Source, v = d.addr(path(hcSource), n[hcSource])
		good(v)
		switch {
		case !v:
		case server.IsValid() && c.Source.Is4() != server.Is4():
			d.errorf(path(hcSource), "%s is %s, %s is not", c.Source, familyName(c.Source), server)
			ok = false
		case !admin.Unicast(c.Source):
			d.errorf(path(hcSource), "%s is not a unicast address", c.Source)
			ok = false
		}
	}
	var iv, tv bool
	c.Interval, iv = d.duration(path(hcInterval), n[hcInterval], 100*time.Millisecond, time.Hour, health.DefaultInterval, false)
	c.Timeout, tv = d.duration(path(hcTimeout), n[hcTimeout], time.Millisecond, time.Hour, health.DefaultTimeout, false)
	good(iv && tv)
	if kind == "misc" && absent(n[hcTimeout]) {
		c.Timeout = c.Interval // keepalived's misc_timeout default: delay_loop
	}
	// A misc check may outlast its interval (keepalived's misc_timeout
	// may): the next one starts when it has been reaped.
	if iv && tv && kind != "misc" && c.Timeout >= c.Interval {
		at := path(hcTimeout)
		if absent(n[hcTimeout]) {
			at = path(hcInterval)
		}
		d.errorf(at, "timeout %v must be shorter than interval %v", c.Timeout, c.Interval)
		ok = false
	}
	c.RetryInterval, v = d.duration(path(hcRetryInterval), n[hcRetryInterval], 0, time.Hour, 0, false)
	good(v)
	if v && c.RetryInterval > 0 && c.RetryInterval < 100*time.Millisecond {
		d.errorf(path(hcRetryInterval), "%v: want 0s (the interval) or 100ms..1h", c.RetryInterval)
		ok = false
	}
	rise, v = d.integer(path(hcRise), n[hcRise], 1, 1000, health.DefaultRise)
	good(v)
	fall, v = d.integer(path(hcFall), n[hcFall], 1, 1000, health.DefaultFall)
	good(v)
	c.Rise, c.Fall = int(rise), int(fall)
	c.InitialDown, v = d.boolean(path(hcInitialDown), n[hcInitialDown])
	good(v)
	c.Mode, v = d.oneOf(path(hcMode), n[hcMode], "", "", health.ModeDR)
	good(v)
	if c.Mode == health.ModeDR && kind != "tcp" {
		// The checker sends only TCP handshakes through a real server's MAC.
		d.errorf(path(hcMode), "dr is for kind tcp only, not %s", kind)
		ok = false
	}
	if c.Mode == health.ModeDR && c.Source.IsValid() {
		d.errorf(path(hcSource), "not with mode dr, whose probes come from the director's interface address")
		ok = false
	}
	c.OnFailure, v = d.oneOf(path(hcOnFailure), n[hcOnFailure], health.DefaultOnFailure, health.OnFailureQuiesce, health.OnFailureRemove)
	good(v)
	if !ok {
		return nil, false
	}
	return &c, true
}

// dnsTypes are the record types that dns_type takes by name (RFC 1035
// section 3.2.2; AAAA RFC 3596, SRV RFC 2782), in the order errors list them.
var dnsTypes = [...]struct {
	name string
	typ  uint16
}{
	{"A", 1}, {"AAAA", 28}, {"NS", 2}, {"SOA", 6}, {"MX", 15},
	{"TXT", 16}, {"CNAME", 5}, {"PTR", 12}, {"SRV", 33},
}

// dnsType returns the record type at path, a name of dnsTypes (in any
// case) or a number 1..65535, or def when it is absent.
func (d *configDecoder) dnsType(path string, n ast.Node, def uint16) (uint16, bool) {
	const want = "A, AAAA, NS, SOA, MX, TXT, CNAME, PTR, SRV or a number 1..65535"
	switch n := n.(type) {
	case *ast.IntegerNode:
		v, ok := d.integer(path, n, 1, 65535, int64(def))
		return uint16(v), ok
	case *ast.StringNode:
		for _, t := range dnsTypes {
			if strings.EqualFold(n.Value, t.name) {
				return t.typ, true
			}
		}
		d.errorf(path, "%q unknown, want %s", n.Value, want)
		return def, false
	}
	if absent(n) {
		return def, true
	}
	d.errorf(path, "want %s, got %s", want, got(n))
	return def, false
}

// statuses returns the statuses at path: a string of statuses and ranges
// separated by blanks ("200-299 304", keepalived's status_code), or a
// list of statuses and such strings ([200, "301-302"]).
func (d *configDecoder) statuses(path string, n ast.Node) (health.StatusSet, bool) {
	var set health.StatusSet
	ok := true
	add := func(at, text string) {
		words := strings.Fields(text)
		if len(words) == 0 {
			d.errorf(at, "empty: want statuses such as 200 or 200-299")
			ok = false
		}
		for _, w := range words {
			lo, hi, err := health.ParseStatusRange(w)
			if err == nil {
				err = set.Add(lo, hi)
			}
			if err != nil {
				d.errorf(at, "%v", err)
				ok = false
			}
		}
	}
	switch n := n.(type) {
	case *ast.StringNode:
		add(path, n.Value)
	case *ast.SequenceNode:
		if len(n.Values) == 0 {
			d.errorf(path, "empty list: want statuses such as 200 or 200-299")
			return set, false
		}
		for i, item := range n.Values {
			at := fmt.Sprintf("%s[%d]", path, i)
			switch item := item.(type) {
			case *ast.IntegerNode, *ast.StringNode:
				add(at, item.GetToken().Value)
			default:
				d.errorf(at, "want a status or a range such as 200-299, got %s", got(item))
				ok = false
			}
		}
	}
	return set, ok
}
