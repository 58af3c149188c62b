package keepalived

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/udr-lb/udr/sched"
)

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
		flags        []*Stmt
		granularity  *Stmt
		rss          []*Stmt
		family       string
		familySt     *Stmt
		opsSt        *Stmt
		kindSt       *Stmt
		quorumSt     *Stmt
		hysteresisSt *Stmt
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
		srv, port, ok := t.realServer(r, p, vips)
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
func (t *translator) realServer(st *Stmt, vsp params, vips []vip) (r server, port uint16, ok bool) {
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
	var lowerSt *Stmt
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
				r.upper = uint32(n)
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
	for i, c := range checkers {
		if i > 0 {
			t.errorf(c, "%s: udr runs one checker per real server, the first is at %s", c.Keyword(), checkers[0].At())
			continue
		}
		r.check = t.checker(c, p)
	}
	return r, port, len(t.errs) == before
}
