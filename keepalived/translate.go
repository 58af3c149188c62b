package keepalived

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/sched"
)

// Options are what a keepalived.conf does not say.
type Options struct {
	// Interface is the director's interface (udr.yaml's interface); ""
	// writes a placeholder that udr run refuses.
	Interface string
}

// PlaceholderInterface is the interface written when Options gives none.
const PlaceholderInterface = "CHANGE-ME"

// Result is a keepalived.conf translated.
type Result struct {
	YAML string // udr.yaml
	// Notice names, in one line, the blocks skipped (global_defs,
	// vrrp_*, ...); "" when there were none.
	Notice string
	// Warnings are about what keepalived itself ignores, or what udr
	// does not do exactly as keepalived would, each "file:line: ...".
	Warnings []string
}

// Import reads the keepalived.conf at path (Parse) and translates it.
func Import(path string, opt Options) (*Result, error) {
	stmts, warnings, err := Parse(path)
	if err != nil {
		return nil, err
	}
	r, err := Translate(stmts, path, opt)
	if r != nil {
		r.Warnings = append(warnings, r.Warnings...)
	}
	return r, err
}

// Limits of the translation.
const (
	MaxServices = 4096  // services written, group ranges expanded
	MaxServers  = 65536 // real servers written, over all services
	maxTimer    = time.Hour
)

// Defaults of keepalived's checkers (keepalived.conf(5)).
const (
	defaultDelayLoop      = 60 * time.Second
	defaultConnectTimeout = 5 * time.Second
	defaultRetry          = 1
	defaultMiscRetry      = 0
	defaultDelayRetry     = time.Second
	minRetryInterval      = 100 * time.Millisecond
	defaultDNSPort        = 53
	defaultDNSName        = "."
	defaultDNSType        = "SOA"
)

// skippedBlocks are the top-level keywords of keepalived.conf that are not
// about the virtual servers: VRRP, BFD, global settings. They are skipped
// with one notice.
var skippedBlocks = map[string]bool{
	"global_defs": true, "vrrp_script": true, "vrrp_sync_group": true, "vrrp_instance": true,
	"vrrp_track_process": true, "vrrp_track_file": true, "track_file": true, "track_process": true,
	"static_ipaddress": true, "static_routes": true, "static_rules": true, "linkbeat_interfaces": true,
	"garp_group": true, "bfd_instance": true, "SSL": true, "net_namespace": true,
	"net_namespace_ipvs": true, "instance": true, "use_pid_dir": true, "namespace_with_ipsets": true,
}

type translator struct {
	opt      Options
	source   string
	errs     []error
	warnings []string
	skipped  []string
	groups   map[string]*Stmt
	out      []service
	nservers int // real servers of out
}

type service struct {
	st          *Stmt
	proto       string
	addr        netip.Addr
	port        uint16
	scheduler   string
	flags       []string
	persistence bool
	timeout     uint32
	netmask     int // -1: the default
	onePacket   bool
	servers     []server
	sorry       *sorryServer
	quorum      int64 // 0: none written (keepalived's default 1)
	hysteresis  int64
}

type sorryServer struct {
	st      *Stmt
	addr    netip.Addr
	port    uint16 // as written
	inhibit bool
}

type server struct {
	st     *Stmt
	addr   netip.Addr
	weight int
	upper  uint32
	lower  uint32
	check  *check
}

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
	delayLoopSt, connectTimeoutSt               *Stmt
	delayBeforeRetrySt                          *Stmt
	retry                                       int // -1: the checker's default
	inhibit                                     bool
	alpha                                       bool
	virtualhost                                 string
}

func (t *translator) errorf(st *Stmt, format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf("%s: "+format, append([]any{st.At()}, args...)...))
}

func (t *translator) warnf(st *Stmt, format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf("%s: "+format, append([]any{st.At()}, args...)...))
}

// Translate turns the statements of a keepalived.conf (Parse), named
// source, into udr.yaml. Every problem is reported, joined, each naming
// its file and line; on error the Result holds the warnings only.
func Translate(stmts []*Stmt, source string, opt Options) (*Result, error) {
	t := &translator{opt: opt, source: source, groups: make(map[string]*Stmt)}
	var vss []*Stmt
	for _, st := range stmts {
		kw := st.Keyword()
		switch {
		case skippedBlocks[kw] || strings.HasPrefix(kw, "vrrp_"):
			t.skipped = append(t.skipped, fmt.Sprintf("%s (%s)", kw, st.At()))
		case kw == "virtual_server_group":
			t.group(st)
		case kw == "virtual_server":
			vss = append(vss, st)
		default:
			t.errorf(st, "%s: unknown keyword", kw)
		}
	}
	for _, st := range vss {
		if len(t.out) > MaxServices || t.nservers > MaxServers {
			break
		}
		t.virtualServer(st)
	}
	if len(t.out) > MaxServices {
		t.errs = append(t.errs, fmt.Errorf("%s: more than %d services: udr reads no more", source, MaxServices))
	}
	if t.nservers > MaxServers {
		t.errs = append(t.errs, fmt.Errorf("%s: more than %d real servers over all services: udr reads no more", source, MaxServers))
	}
	r := &Result{Warnings: t.warnings}
	if len(t.skipped) > 0 {
		r.Notice = fmt.Sprintf("%s: skipped %s: udr takes only the virtual servers of a keepalived.conf (VRRP stays keepalived's: see udr run --standby)",
			source, strings.Join(t.skipped, ", "))
	}
	if len(t.errs) > 0 {
		return r, errors.Join(t.errs...)
	}
	r.YAML = t.yaml()
	return r, nil
}

// group records a virtual_server_group; its entries are read by the
// virtual servers that name it.
func (t *translator) group(st *Stmt) {
	if len(st.Args()) != 1 || !st.HasBlock {
		t.errorf(st, "virtual_server_group: want virtual_server_group NAME { ... }")
		return
	}
	name := st.Args()[0]
	if prev, ok := t.groups[name]; ok {
		t.errorf(st, "virtual_server_group %s: already defined at %s", name, prev.At())
		return
	}
	t.groups[name] = st
}

type vip struct {
	st   *Stmt
	addr netip.Addr
	port uint16
}

// groupEntries expands a group's entries: "IP PORT", "IP-LAST PORT".
func (t *translator) groupEntries(g *Stmt) []vip {
	var out []vip
	for _, e := range g.Block {
		if e.HasBlock {
			t.errorf(e, "%s: a virtual_server_group entry has no block", e.Keyword())
			continue
		}
		if e.Keyword() == "fwmark" {
			t.errorf(e, "fwmark: udr has no firewall-mark services")
			continue
		}
		if len(e.Words) != 2 {
			t.errorf(e, "%s: want IP PORT or IP-LAST PORT", strings.Join(e.Words, " "))
			continue
		}
		port, ok := t.port(e, e.Words[1])
		if !ok {
			continue
		}
		first, last, ok := t.addrRange(e, e.Words[0])
		if !ok {
			continue
		}
		for a := first; ; a = a.Next() {
			out = append(out, vip{e, a, port})
			if a == last || len(out) > MaxServices {
				break
			}
		}
	}
	if len(g.Block) == 0 {
		t.errorf(g, "virtual_server_group %s: no entries", g.Args()[0])
	}
	return out
}

// addrRange parses "IP" or keepalived's range "IP-LAST", LAST replacing
// the last byte (IPv4) or the last 16 bits, in hex (IPv6).
func (t *translator) addrRange(st *Stmt, s string) (first, last netip.Addr, ok bool) {
	a, rng, isRange := strings.Cut(s, "-")
	first, err := netip.ParseAddr(a)
	if err != nil || first.Zone() != "" {
		t.errorf(st, "%s: not an IP address", a)
		return first, first, false
	}
	if !isRange {
		return first, first, true
	}
	if first.Is4() {
		n, err := strconv.ParseUint(rng, 10, 8)
		b := first.As4()
		if err != nil || byte(n) < b[3] {
			t.errorf(st, "%s: the range's end %q is not a number %d..255", s, rng, b[3])
			return first, first, false
		}
		b[3] = byte(n)
		return first, netip.AddrFrom4(b), true
	}
	n, err := strconv.ParseUint(rng, 16, 16)
	b := first.As16()
	cur := uint64(b[14])<<8 | uint64(b[15])
	if err != nil || n < cur {
		t.errorf(st, "%s: the range's end %q is not a hex number %x..ffff", s, rng, cur)
		return first, first, false
	}
	b[14], b[15] = byte(n>>8), byte(n)
	return first, netip.AddrFrom16(b), true
}

func (t *translator) port(st *Stmt, s string) (uint16, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.errorf(st, "%s: port %q is not a number 0..65535", st.Keyword(), s)
		return 0, false
	}
	return uint16(n), true
}

// one returns the single argument of st, or reports it.
func (t *translator) one(st *Stmt) (string, bool) {
	if len(st.Args()) != 1 {
		t.errorf(st, "%s: want one value, got %d", st.Keyword(), len(st.Args()))
		return "", false
	}
	if st.HasBlock {
		t.errorf(st, "%s: takes no block", st.Keyword())
		return "", false
	}
	return st.Args()[0], true
}

// flag checks a keyword that takes no value, or an optional boolean
// (keepalived's check_true_false).
func (t *translator) flag(st *Stmt) bool {
	switch len(st.Args()) {
	case 0:
		return true
	case 1:
		switch strings.ToLower(st.Args()[0]) {
		case "true", "on", "yes":
			return true
		case "false", "off", "no":
			return false
		}
	}
	t.errorf(st, "%s: want no value, or true or false", st.Keyword())
	return false
}

// timer reads keepalived's timer: seconds, with decimals.
func (t *translator) timer(st *Stmt, min time.Duration) (time.Duration, bool) {
	s, ok := t.one(st)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxTimer.Seconds() {
		t.errorf(st, "%s: %q is not a number of seconds 0..%d", st.Keyword(), s, int(maxTimer.Seconds()))
		return 0, false
	}
	d := time.Duration(math.Round(f*1000)) * time.Millisecond
	if d < min {
		t.errorf(st, "%s %s: udr needs at least %v", st.Keyword(), s, min)
		return 0, false
	}
	return d, true
}

func (t *translator) uint(st *Stmt, max uint64) (uint64, bool) {
	s, ok := t.one(st)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		t.errorf(st, "%s: %q is not a number 0..%d", st.Keyword(), s, max)
		return 0, false
	}
	return n, true
}

// commonParam handles the checker settings that a virtual_server, a
// real_server or a checker may give; false when st is none of them.
func (t *translator) commonParam(st *Stmt, p *params) bool {
	switch st.Keyword() {
	case "delay_loop":
		if d, ok := t.timer(st, 100*time.Millisecond); ok {
			p.delayLoop, p.delayLoopSt = d, st
		}
	case "delay_before_retry":
		if d, ok := t.timer(st, 0); ok {
			p.delayBeforeRetry, p.delayBeforeRetrySt = d, st
		}
	case "retry", "nb_get_retry":
		if n, ok := t.uint(st, 999); ok {
			if n == 0 {
				// keepalived: "retry value invalid", ignored.
				t.warnf(st, "%s 0: ignored, as keepalived does", st.Keyword())
			} else {
				p.retry = int(n)
			}
		}
	case "warmup":
		if _, ok := t.timer(st, 0); ok {
			t.warnf(st, "warmup: ignored, udr starts checking at once")
		}
	case "connect_timeout":
		if d, ok := t.timer(st, time.Millisecond); ok {
			p.connectTimeout, p.connectTimeoutSt = d, st
		}
	case "inhibit_on_failure":
		p.inhibit = t.flag(st)
	case "alpha":
		p.alpha = t.flag(st)
	case "virtualhost":
		if v, ok := t.one(st); ok {
			p.virtualhost = v
		}
	case "smtp_alert":
		t.warnf(st, "smtp_alert: ignored, udr sends no mail")
	default:
		return false
	}
	return true
}

func (t *translator) virtualServer(st *Stmt) {
	args := st.Args()
	var vips []vip
	switch {
	case !st.HasBlock:
		t.errorf(st, "virtual_server: has no block")
		return
	case len(args) == 2 && args[0] == "fwmark":
		t.errorf(st, "virtual_server fwmark: udr has no firewall-mark services")
		return
	case len(args) == 2 && args[0] == "group":
		g, ok := t.groups[args[1]]
		if !ok {
			t.errorf(st, "virtual_server group %s: no virtual_server_group %s", args[1], args[1])
			return
		}
		vips = t.groupEntries(g)
	case len(args) == 2:
		a, err := netip.ParseAddr(args[0])
		if err != nil || a.Zone() != "" {
			t.errorf(st, "virtual_server: %q is not an IP address", args[0])
			return
		}
		port, ok := t.port(st, args[1])
		if !ok {
			return
		}
		vips = []vip{{st, a, port}}
	default:
		t.errorf(st, "virtual_server: want virtual_server IP PORT, or group NAME")
		return
	}

	s := service{st: st, proto: "tcp", scheduler: "wlc", netmask: -1}
	p := params{retry: -1}
	var (
		flags         []*Stmt
		granularity   *Stmt
		rss           []*Stmt
		family        string
		familySt      *Stmt
		opsSt         *Stmt
		persistenceSt *Stmt
		kindSt        *Stmt
		quorumSt      *Stmt
		hysteresisSt  *Stmt
	)
	for _, k := range st.Block {
		if t.commonParam(k, &p) {
			continue
		}
		switch kw := k.Keyword(); kw {
		case "lb_algo", "lvs_sched":
			if v, ok := t.one(k); ok {
				v = strings.ToLower(v)
				if !sched.Valid(v) {
					t.errorf(k, "%s %s: unknown scheduler, want one of %s", kw, v, strings.Join(sched.Names, ", "))
				}
				s.scheduler = v
			}
		case "lb_kind", "lvs_method":
			t.method(k)
			kindSt = k
		case "protocol":
			if v, ok := t.one(k); ok {
				switch strings.ToUpper(v) {
				case "TCP":
					s.proto = "tcp"
				case "UDP":
					s.proto = "udp"
				case "SCTP":
					t.errorf(k, "protocol SCTP: udr forwards TCP and UDP only")
				default:
					t.errorf(k, "protocol %s: unknown, want TCP or UDP", v)
				}
			}
		case "persistence_timeout":
			persistenceSt = k
			s.persistence, s.timeout = true, 360
			if len(k.Args()) > 0 {
				if n, ok := t.uint(k, math.MaxUint32); ok {
					if n == 0 {
						// keepalived: "persistence_timeout invalid", ignored.
						t.warnf(k, "persistence_timeout 0: ignored, as keepalived does")
						s.persistence = false
					} else {
						s.timeout = uint32(n)
					}
				}
			}
		case "persistence_granularity":
			granularity = k
		case "persistence_engine":
			t.errorf(k, "persistence_engine: not supported by udr (no persistence engines)")
		case "ops":
			if len(k.Args()) > 0 {
				t.errorf(k, "ops: takes no value")
			}
			s.onePacket, opsSt = true, k
		case "hashed":
			t.warnf(k, "hashed: ignored, every service is hashed")
		case "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			if len(k.Args()) > 0 {
				t.errorf(k, "%s: takes no value", kw)
			}
			flags = append(flags, k)
		case "ip_family":
			if v, ok := t.one(k); ok {
				if v != "inet" && v != "inet6" {
					t.errorf(k, "ip_family %s: want inet or inet6", v)
				}
				family, familySt = v, k
			}
		case "real_server":
			rss = append(rss, k)
		case "ha_suspend":
			t.warnf(k, "ha_suspend: ignored, udr checks its real servers whether or not it holds the VIP")
		case "omega":
			t.warnf(k, "omega: ignored, udr runs no quorum scripts")
		case "weight":
			t.warnf(k, "weight: ignored (a virtual_server's weight is for VRRP tracking)")
		case "sorry_server":
			s.sorry = t.sorryServer(k)
		case "sorry_server_inhibit":
			if len(k.Args()) > 0 {
				t.errorf(k, "sorry_server_inhibit: takes no value")
			}
			if s.sorry == nil {
				// keepalived: "Ignoring sorry_server inhibit used
				// before or without sorry_server".
				t.warnf(k, "sorry_server_inhibit: ignored before or without sorry_server, as keepalived does")
			} else {
				s.sorry.inhibit = true
			}
		case "sorry_server_lvs_method":
			t.method(k)
		case "quorum":
			if n, ok := t.uint(k, math.MaxInt32); ok {
				if n < 1 {
					// keepalived: "Quorum >= 1 ... using 1 instead".
					t.warnf(k, "quorum 0: 1 instead, as keepalived does")
					n = 1
				}
				s.quorum, quorumSt = int64(n), k
			}
		case "hysteresis":
			if n, ok := t.uint(k, math.MaxInt32); ok {
				s.hysteresis, hysteresisSt = int64(n), k
			}
		case "quorum_up", "quorum_down":
			t.errorf(k, "%s: not supported by udr (it runs no notify scripts)", kw)
		default:
			t.errorf(k, "%s: unknown keyword in virtual_server", kw)
		}
	}
	for _, k := range flags {
		f := k.Keyword()
		if (strings.HasPrefix(f, "sh-") && s.scheduler != "sh") || (strings.HasPrefix(f, "mh-") && s.scheduler != "mh") {
			// keepalived: "only applies to sh scheduler - ignoring".
			t.warnf(k, "%s: ignored, it applies to scheduler %s only, not %s", f, f[:2], s.scheduler)
			continue
		}
		s.flags = append(s.flags, f)
	}
	if opsSt != nil && s.proto != "udp" {
		t.errorf(opsSt, "ops: one-packet scheduling is for UDP services only")
	}
	if granularity != nil {
		if !s.persistence {
			s.persistence, s.timeout = true, 360 // keepalived's pgr_handler
		}
		if v, ok := t.one(granularity); ok {
			s.netmask = t.granularity(granularity, v, vips)
		}
	}
	if len(vips) == 0 {
		return
	}
	if familySt != nil {
		for _, v := range vips {
			if (family == "inet") != v.addr.Is4() {
				t.errorf(familySt, "ip_family %s: the virtual server's address %s is not", family, v.addr)
				break
			}
		}
	}
	if !s.persistence {
		for _, v := range vips {
			if v.port == 0 {
				t.errorf(v.st, "port 0 (every port) needs persistence_timeout")
				break
			}
		}
	}
	_ = persistenceSt
	var servers []server
	var rsPorts []uint16
	if kindSt == nil {
		// keepalived's default is NAT, unless every real server says DR.
		for _, r := range rss {
			if !r.HasBlock || !slices.ContainsFunc(r.Block, func(k *Stmt) bool { return k.Keyword() == "lvs_method" || k.Keyword() == "lb_kind" }) {
				t.errorf(st, "virtual_server: no lb_kind, and keepalived's default is NAT: udr forwards by direct routing only (lb_kind DR)")
				break
			}
		}
		if len(rss) == 0 {
			t.errorf(st, "virtual_server: no lb_kind, and keepalived's default is NAT: udr forwards by direct routing only (lb_kind DR)")
		}
	}
	for _, r := range rss {
		srv, port, ok := t.realServer(r, p, vips, s)
		if ok {
			servers = append(servers, srv)
			rsPorts = append(rsPorts, port)
		}
	}
	t.quorum(&s, quorumSt, hysteresisSt, servers)
	for _, v := range vips {
		if len(t.out) > MaxServices || t.nservers > MaxServers {
			return
		}
		sv := s
		sv.st, sv.addr, sv.port = v.st, v.addr, v.port
		sv.servers = nil
		if sv.sorry != nil {
			if sv.sorry.addr.Is4() != v.addr.Is4() {
				t.errorf(sv.sorry.st, "sorry_server %s: not the address family of the virtual server %s", sv.sorry.addr, v.addr)
			} else if v.port != 0 && sv.sorry.port != 0 && sv.sorry.port != v.port {
				t.warnf(sv.sorry.st, "sorry_server port %d: direct routing forwards to the service port %d", sv.sorry.port, v.port)
			}
		}
		for i, srv := range servers {
			srv := srv
			if srv.check != nil && srv.check.port == 0 && rsPorts[i] != v.port {
				c := *srv.check
				c.port = int(rsPorts[i]) // checked where keepalived checks it: the real_server's port
				srv.check = &c
			}
			if srv.check != nil && srv.check.port == 0 && v.port == 0 {
				t.errorf(srv.st, "real_server: its checker needs connect_port, or a real_server port: the service port is 0")
				continue
			}
			if srv.addr.Is4() != v.addr.Is4() {
				t.errorf(srv.st, "real_server %s: not the address family of the virtual server %s", srv.addr, v.addr)
				continue
			}
			sv.servers = append(sv.servers, srv)
			t.nservers++
		}
		t.out = append(t.out, sv)
	}
}

// quorum lowers the quorum and hysteresis of s as keepalived does once it
// has read a virtual server (check_parser.c): a quorum above the weights
// of the real servers summed is that sum (udr's quorum is at least 1), and
// a hysteresis not below the quorum is the quorum less 1.
func (t *translator) quorum(s *service, quorumSt, hysteresisSt *Stmt, servers []server) {
	var sum int64
	for _, r := range servers {
		sum += int64(r.weight)
	}
	q := s.quorum
	if q == 0 {
		q = 1 // keepalived's default
	}
	if q > sum && q > 1 {
		q = max(sum, 1)
		t.warnf(quorumSt, "quorum %d: above the weights of the real servers summed, %d: %d instead, as keepalived does", s.quorum, sum, q)
		s.quorum = q
	}
	if s.hysteresis >= q && hysteresisSt != nil {
		t.warnf(hysteresisSt, "hysteresis %d: not below the quorum %d: %d instead, as keepalived does", s.hysteresis, q, q-1)
		s.hysteresis = q - 1
	}
}

// sorryServer reads "sorry_server IP PORT".
func (t *translator) sorryServer(st *Stmt) *sorryServer {
	if len(st.Args()) != 2 || st.HasBlock {
		t.errorf(st, "sorry_server: want sorry_server IP PORT")
		return nil
	}
	a, err := netip.ParseAddr(st.Args()[0])
	if err != nil || a.Zone() != "" {
		t.errorf(st, "sorry_server: %q is not an IP address", st.Args()[0])
		return nil
	}
	port, ok := t.port(st, st.Args()[1])
	if !ok {
		return nil
	}
	return &sorryServer{st: st, addr: a, port: port}
}

// granularity converts persistence_granularity: an IPv4 netmask, or an
// IPv6 prefix length.
func (t *translator) granularity(st *Stmt, v string, vips []vip) int {
	v6 := len(vips) > 0 && vips[0].addr.Is6()
	if v6 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 128 {
			t.errorf(st, "persistence_granularity %s: want an IPv6 prefix length 1..128", v)
			return -1
		}
		return n
	}
	m, err := netip.ParseAddr(v)
	if err != nil || !m.Is4() {
		t.errorf(st, "persistence_granularity %s: want an IPv4 netmask such as 255.255.255.0", v)
		return -1
	}
	b := m.As4()
	x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for x&0x80000000 != 0 {
		n++
		x <<= 1
	}
	if x != 0 {
		t.errorf(st, "persistence_granularity %s: not a prefix netmask", v)
		return -1
	}
	return n
}

// method accepts lb_kind DR only.
func (t *translator) method(st *Stmt) {
	v, ok := t.one(st)
	if !ok {
		return
	}
	switch v {
	case "DR":
	case "NAT", "TUN":
		t.errorf(st, "%s %s: udr forwards by direct routing only", st.Keyword(), v)
	default:
		t.errorf(st, "%s %s: unknown forwarding method (udr forwards by direct routing only: DR)", st.Keyword(), v)
	}
}

// realServer converts one real_server of a virtual server; port is its
// port as written.
func (t *translator) realServer(st *Stmt, vsp params, vips []vip, s service) (r server, port uint16, ok bool) {
	before := len(t.errs)
	r.st = st
	args := st.Args()
	if len(args) != 2 {
		t.errorf(st, "real_server: want real_server IP PORT")
		return r, 0, false
	}
	var err error
	r.addr, err = netip.ParseAddr(args[0])
	if err != nil || r.addr.Zone() != "" {
		t.errorf(st, "real_server: %q is not an IP address", args[0])
	}
	port, _ = t.port(st, args[1])
	if len(vips) > 0 && vips[0].port != 0 && port != vips[0].port && port != 0 {
		t.warnf(st, "real_server port %d: direct routing forwards to the service port %d; the port is kept for the check only", port, vips[0].port)
	}
	r.weight = 1
	p := vsp
	var checkers []*Stmt
	var upperSt, lowerSt *Stmt
	for _, k := range st.Block {
		if t.commonParam(k, &p) {
			continue
		}
		switch kw := k.Keyword(); kw {
		case "weight":
			if n, ok := t.uint(k, 65535); ok {
				r.weight = int(n)
			}
		case "lvs_method", "lb_kind":
			t.method(k)
		case "uthreshold":
			if n, ok := t.uint(k, math.MaxInt32); ok {
				r.upper, upperSt = uint32(n), k
			}
		case "lthreshold":
			if n, ok := t.uint(k, math.MaxInt32); ok {
				r.lower, lowerSt = uint32(n), k
			}
		case "notify_up", "notify_down":
			t.errorf(k, "%s: not supported by udr (it runs no notify scripts)", kw)
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "DNS_CHECK", "MISC_CHECK", "SMTP_CHECK", "UDP_CHECK", "PING_CHECK", "BFD_CHECK", "FILE_CHECK":
			checkers = append(checkers, k)
		default:
			t.errorf(k, "%s: unknown keyword in real_server", kw)
		}
	}
	if lowerSt != nil && r.lower > r.upper {
		t.errorf(lowerSt, "lthreshold %d is above uthreshold %d", r.lower, r.upper)
	}
	_ = upperSt
	for i, c := range checkers {
		if i > 0 {
			t.errorf(c, "%s: udr runs one checker per real server, the first is at %s", c.Keyword(), checkers[0].At())
			continue
		}
		r.check = t.checker(c, p, s)
	}
	return r, port, len(t.errs) == before
}

// checker converts a checker block.
func (t *translator) checker(st *Stmt, p params, s service) *check {
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

// yaml writes the services as udr.yaml.
func (t *translator) yaml() string {
	var b strings.Builder
	iface := t.opt.Interface
	fmt.Fprintf(&b, "# udr.yaml translated from %s by `udr config import`.\n", printable(t.source))
	if iface == "" {
		iface = PlaceholderInterface
		b.WriteString("# keepalived.conf does not say which interface udr listens on: set it.\n")
	}
	fmt.Fprintf(&b, "interface: %s\n", quote(iface))
	if len(t.out) == 0 {
		b.WriteString("services: []\n")
		return b.String()
	}
	b.WriteString("services:\n")
	for _, s := range t.out {
		fmt.Fprintf(&b, "  # %s: %s\n", printable(s.st.At()), printable(strings.Join(s.st.Words, " ")))
		fmt.Fprintf(&b, "  - protocol: %s\n", s.proto)
		fmt.Fprintf(&b, "    address: %s\n", quote(s.addr.String()))
		fmt.Fprintf(&b, "    port: %d\n", s.port)
		fmt.Fprintf(&b, "    scheduler: %s\n", s.scheduler)
		if len(s.flags) > 0 {
			fmt.Fprintf(&b, "    flags: [%s]\n", strings.Join(s.flags, ", "))
		}
		if s.persistence {
			fmt.Fprintf(&b, "    persistence: {timeout: %ds", s.timeout)
			if s.netmask >= 0 {
				fmt.Fprintf(&b, ", netmask: %d", s.netmask)
			}
			b.WriteString("}\n")
		}
		if s.onePacket {
			b.WriteString("    one_packet: true\n")
		}
		if ss := s.sorry; ss != nil {
			fmt.Fprintf(&b, "    # %s: %s\n", printable(ss.st.At()), printable(strings.Join(ss.st.Words, " ")))
			fmt.Fprintf(&b, "    sorry_server: {address: %s", quote(ss.addr.String()))
			if ss.inhibit {
				b.WriteString(", inhibit: true")
			}
			b.WriteString("}\n")
		}
		if s.quorum != 0 {
			fmt.Fprintf(&b, "    quorum: %d\n", s.quorum)
		}
		if s.hysteresis != 0 {
			fmt.Fprintf(&b, "    hysteresis: %d\n", s.hysteresis)
		}
		if len(s.servers) == 0 {
			b.WriteString("    servers: []\n")
			continue
		}
		b.WriteString("    servers:\n")
		for _, r := range s.servers {
			fmt.Fprintf(&b, "      # %s: %s\n", printable(r.st.At()), printable(strings.Join(r.st.Words, " ")))
			fmt.Fprintf(&b, "      - address: %s\n", quote(r.addr.String()))
			fmt.Fprintf(&b, "        weight: %d\n", r.weight)
			if r.upper != 0 {
				fmt.Fprintf(&b, "        upper_threshold: %d\n", r.upper)
			}
			if r.lower != 0 {
				fmt.Fprintf(&b, "        lower_threshold: %d\n", r.lower)
			}
			c := r.check
			if c == nil {
				b.WriteString("        health_check: {kind: none}\n")
				continue
			}
			b.WriteString("        health_check:\n")
			fmt.Fprintf(&b, "          kind: %s\n", c.kind)
			if c.port != 0 && c.kind != "misc" {
				fmt.Fprintf(&b, "          port: %d\n", c.port)
			}
			if c.source != "" {
				fmt.Fprintf(&b, "          source: %s\n", quote(c.source))
			}
			if c.kind == "http" || c.kind == "https" {
				fmt.Fprintf(&b, "          path: %s\n", quote(c.path))
				if c.host != "" {
					fmt.Fprintf(&b, "          host: %s\n", quote(c.host))
				}
				if s := c.statuses.String(); strings.ContainsAny(s, " -") {
					fmt.Fprintf(&b, "          status: %s\n", quote(s))
				} else {
					fmt.Fprintf(&b, "          status: %s\n", s)
				}
				if c.digest != "" {
					fmt.Fprintf(&b, "          digest: %s\n", quote(c.digest))
				}
			}
			if c.kind == "misc" {
				fmt.Fprintf(&b, "          script: %s\n", quote(c.script))
				if c.miscDynamic {
					b.WriteString("          misc_dynamic: true\n")
				}
			}
			if c.kind == "dns" {
				fmt.Fprintf(&b, "          dns_name: %s\n", quote(c.dnsName))
				fmt.Fprintf(&b, "          dns_type: %s\n", c.dnsType)
			}
			fmt.Fprintf(&b, "          interval: %v\n", c.interval)
			fmt.Fprintf(&b, "          timeout: %v\n", c.timeout)
			b.WriteString("          rise: 1\n")
			fmt.Fprintf(&b, "          fall: %d\n", c.fall)
			if c.retryEvery > 0 {
				fmt.Fprintf(&b, "          retry_interval: %v\n", c.retryEvery)
			}
			if c.initialDown {
				b.WriteString("          initial_down: true\n")
			}
			fmt.Fprintf(&b, "          on_failure: %s\n", c.onFailure)
		}
	}
	return b.String()
}

// quote writes s as a YAML double-quoted string (JSON's is one).
func quote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// printable replaces what a YAML comment may not hold.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
