package forwarder

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/udr-lb/udr/service"
)

// TraceFilter selects the frames a trace shows. A frame matches when it
// matches every criterion given; a criterion given several times matches
// any of its values. The zero TraceFilter matches every frame.
type TraceFilter struct {
	Clients  []netip.Prefix   // the client (source) address is in one of them
	VIPs     []netip.Addr     // the destination address is one of them
	Services []service.Key    // the frame's service is one of them
	Servers  []netip.AddrPort // the real server is one of them; port 0: any
	Verdicts uint64           // bit 1<<v per verdict v; 0: any verdict
	New      bool             // only frames that created a connection entry
	Drops    bool             // only dropped frames (neither forwarded nor answered)
}

// traceWords are the words of a filter, for error messages.
const traceWords = "client, vip, service, server, verdict, new or drops"

// ParseTraceFilter parses a trace filter from its words:
//
//	client ADDR|PREFIX   the client address, or a prefix it is in
//	vip ADDR             the VIP (the frame's destination address)
//	service PROTO:ADDR:PORT
//	                     a virtual service, e.g. tcp:192.0.2.100:80, udp:[2001:db8::1]:53
//	server ADDR[:PORT]   the real server picked
//	verdict NAME[,NAME]  the verdict (forward, reply, no-conn, ...; see udr replay)
//	new                  only frames that created a connection
//	drops                only dropped frames
//
// Different words must all match; the same word repeated matches any of its
// values. No word matches every frame. An error names the bad word.
func ParseTraceFilter(words []string) (TraceFilter, error) {
	var f TraceFilter
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch w {
		case "new":
			f.New = true
			continue
		case "drops":
			f.Drops = true
			continue
		case "client", "vip", "service", "server", "verdict":
		default:
			return TraceFilter{}, fmt.Errorf("trace filter: unknown word %q: want %s", w, traceWords)
		}
		if i+1 == len(words) {
			return TraceFilter{}, fmt.Errorf("trace filter: %q needs a value after it (%s)", w, traceValue(w))
		}
		i++
		arg := words[i]
		bad := func() error {
			return fmt.Errorf("trace filter: %s %q: want %s", w, arg, traceValue(w))
		}
		switch w {
		case "client":
			p, err := parsePrefixOrAddr(arg)
			if err != nil {
				return TraceFilter{}, bad()
			}
			f.Clients = append(f.Clients, p)
		case "vip":
			a, err := netip.ParseAddr(arg)
			if err != nil || a.Zone() != "" {
				return TraceFilter{}, bad()
			}
			f.VIPs = append(f.VIPs, a.Unmap())
		case "service":
			k, ok := parseServiceKey(arg)
			if !ok {
				return TraceFilter{}, bad()
			}
			f.Services = append(f.Services, k)
		case "server":
			ap, err := netip.ParseAddrPort(arg)
			if err != nil {
				a, err2 := netip.ParseAddr(arg)
				if err2 != nil || a.Zone() != "" {
					return TraceFilter{}, bad()
				}
				ap = netip.AddrPortFrom(a, 0)
			}
			f.Servers = append(f.Servers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		case "verdict":
			for _, name := range strings.Split(arg, ",") {
				v, ok := verdictByName(name)
				if !ok {
					return TraceFilter{}, fmt.Errorf("trace filter: verdict %q: want one of %s", name, strings.Join(verdictNames[:], ", "))
				}
				f.Verdicts |= 1 << v
			}
		}
	}
	if f.Drops && f.Verdicts != 0 && f.Verdicts&^(1<<VerdictForward|1<<VerdictReply) == 0 {
		return TraceFilter{}, fmt.Errorf("trace filter: drops and verdict %s match no frame", strings.Join(f.verdictList(), ","))
	}
	return f, nil
}

func traceValue(w string) string {
	switch w {
	case "client":
		return "an address or a prefix, e.g. 198.51.100.0/24"
	case "vip":
		return "an address, e.g. 192.0.2.100"
	case "service":
		return "PROTO:ADDR:PORT, e.g. tcp:192.0.2.100:80"
	case "server":
		return "an address or ADDR:PORT, e.g. 192.0.2.11"
	}
	return "verdict names separated by commas, e.g. forward,no-conn"
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("v4-mapped prefix")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("not an address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseServiceKey(s string) (service.Key, bool) {
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		return service.Key{}, false
	}
	var k service.Key
	switch strings.ToLower(proto) {
	case "tcp":
		k.Proto = service.TCP
	case "udp":
		k.Proto = service.UDP
	default:
		return service.Key{}, false
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil || ap.Addr().Zone() != "" {
		return service.Key{}, false
	}
	k.Addr, k.Port = ap.Addr().Unmap(), ap.Port()
	return k, true
}

func verdictByName(s string) (Verdict, bool) {
	for v, name := range verdictNames {
		if name == s {
			return Verdict(v), true
		}
	}
	return 0, false
}

func (f *TraceFilter) verdictList() []string {
	var names []string
	for v := range numVerdicts {
		if f.Verdicts&(1<<v) != 0 {
			names = append(names, v.String())
		}
	}
	return names
}

// String returns the filter in ParseTraceFilter's words; "all frames" for
// the zero filter.
func (f TraceFilter) String() string {
	var w []string
	for _, p := range f.Clients {
		if p.IsSingleIP() {
			w = append(w, "client", p.Addr().String())
		} else {
			w = append(w, "client", p.String())
		}
	}
	for _, a := range f.VIPs {
		w = append(w, "vip", a.String())
	}
	for _, k := range f.Services {
		w = append(w, "service", strings.ToLower(k.Proto.String())+":"+netip.AddrPortFrom(k.Addr, k.Port).String())
	}
	for _, s := range f.Servers {
		if s.Port() == 0 {
			w = append(w, "server", s.Addr().String())
		} else {
			w = append(w, "server", s.String())
		}
	}
	if f.Verdicts != 0 {
		w = append(w, "verdict", strings.Join(f.verdictList(), ","))
	}
	if f.New {
		w = append(w, "new")
	}
	if f.Drops {
		w = append(w, "drops")
	}
	if len(w) == 0 {
		return "all frames"
	}
	return strings.Join(w, " ")
}
