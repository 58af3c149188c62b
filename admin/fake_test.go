package admin

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/udr-lb/udr/service"
)

// fakeBackend is a director in memory: a service.Config changed by
// Apply on a clone of the config (so errors are the real ones), and
// counters that a test sets.
type fakeBackend struct {
	cfg      *service.Config
	size     int
	dests    map[DestKey]DestInfo
	services map[service.Key]Stats
	conns    []Conn
	standby  bool

	connsAsked int // State calls with conns set

	daemons []Daemon // the sync daemons that run, master first
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		cfg:      &service.Config{},
		size:     4096,
		dests:    make(map[DestKey]DestInfo),
		services: make(map[service.Key]Stats),
	}
}

func (f *fakeBackend) Apply(cmd *Command) error {
	c := f.cfg.Clone()
	if err := Apply(c, cmd); err != nil {
		return err
	}
	f.cfg = c
	if cmd.Op == OpZero {
		f.zero(!cmd.Options.Has(OptService), cmd.Service.Key)
	}
	return nil
}

// zero zeroes the counters of every service (all) or of those of keys.
func (f *fakeBackend) zero(all bool, keys ...service.Key) {
	for k := range f.services {
		if all || slices.Contains(keys, k) {
			f.services[k] = Stats{}
		}
	}
	for k, d := range f.dests {
		if all || slices.Contains(keys, k.Service) {
			d.Stats = Stats{}
			f.dests[k] = d
		}
	}
}

func (f *fakeBackend) Edit(fn func(*Editor) error) error {
	e := NewEditor(f.cfg)
	if err := fn(e); err != nil {
		return err
	}
	f.cfg = e.Config()
	all, keys := e.Zeroed()
	f.zero(all, keys...)
	return nil
}

func (f *fakeBackend) State(conns bool) (*State, error) {
	st := &State{
		Config:      f.cfg.Clone(),
		ConnTabSize: f.size,
		Dests:       maps.Clone(f.dests),
		Services:    maps.Clone(f.services),
		Standby:     f.standby,
	}
	if conns {
		f.connsAsked++
		st.Conns = slices.Clone(f.conns)
	}
	return st, nil
}

// setCounters reads lines of a case's counters section:
//
//	TCP 192.0.2.100:80 conns=17 inpkts=1234
//	TCP 192.0.2.100:80 -> 192.0.2.11:80 active=3 inactive=12 conns=8
func (f *fakeBackend) setCounters(line string) error {
	w := strings.Fields(line)
	if len(w) < 2 {
		return fmt.Errorf("counters line %q: want PROTO VIP:PORT [-> RIP:PORT] NAME=VALUE...", line)
	}
	k, err := parseKey(w[0], w[1])
	if err != nil {
		return err
	}
	w = w[2:]
	var dest *DestInfo
	var dk DestKey
	if len(w) >= 2 && w[0] == "->" {
		ap, err := netip.ParseAddrPort(w[1])
		if err != nil {
			return fmt.Errorf("counters line %q: %w", line, err)
		}
		dk = DestKey{Service: k, Dest: ap}
		d := f.dests[dk]
		dest, w = &d, w[2:]
	}
	s := f.services[k]
	stats := &s
	if dest != nil {
		stats = &dest.Stats
	}
	for _, kv := range w {
		name, val, _ := strings.Cut(kv, "=")
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return fmt.Errorf("counters line %q: %s: %w", line, kv, err)
		}
		p := map[string]*uint64{
			"conns": &stats.Conns, "inpkts": &stats.InPkts, "outpkts": &stats.OutPkts,
			"inbytes": &stats.InBytes, "outbytes": &stats.OutBytes, "cps": &stats.CPS,
			"inpps": &stats.InPPS, "outpps": &stats.OutPPS, "inbps": &stats.InBPS, "outbps": &stats.OutBPS,
		}[name]
		switch {
		case p != nil:
			*p = v
		case dest != nil && name == "active":
			dest.ActiveConn = int(v)
		case dest != nil && name == "inactive":
			dest.InActConn = int(v)
		case dest != nil && name == "persist":
			dest.PersistConn = int(v)
		default:
			return fmt.Errorf("counters line %q: unknown counter %q", line, name)
		}
	}
	if dest != nil {
		f.dests[dk] = *dest
	} else {
		f.services[k] = s
	}
	return nil
}

// addConn reads a line of a case's conns section:
//
//	TCP 898 ESTABLISHED 192.0.2.1:51234 192.0.2.100:80 192.0.2.11:80 [template]
func (f *fakeBackend) addConn(line string) error {
	w := strings.Fields(line)
	if len(w) != 6 && len(w) != 7 {
		return fmt.Errorf("conns line %q: want PROTO EXPIRES STATE CLIENT VIRTUAL DEST [template]", line)
	}
	k, err := parseKey(w[0], "192.0.2.1:1")
	if err != nil {
		return err
	}
	exp, err := strconv.ParseUint(w[1], 10, 32)
	if err != nil {
		return fmt.Errorf("conns line %q: %w", line, err)
	}
	var ap [3]netip.AddrPort
	for i := range ap {
		if ap[i], err = netip.ParseAddrPort(w[3+i]); err != nil {
			return fmt.Errorf("conns line %q: %w", line, err)
		}
	}
	f.conns = append(f.conns, Conn{
		Proto: k.Proto, Expires: uint32(exp), State: w[2],
		Client: ap[0], Virtual: ap[1], Dest: ap[2],
		Template: len(w) == 7 && w[6] == "template",
	})
	return nil
}

func parseKey(proto, addr string) (service.Key, error) {
	var k service.Key
	switch proto {
	case "TCP":
		k.Proto = service.TCP
	case "UDP":
		k.Proto = service.UDP
	default:
		return k, fmt.Errorf("protocol %q: want TCP or UDP", proto)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return k, err
	}
	k.Addr, k.Port = ap.Addr(), ap.Port()
	return k, nil
}

// fakeResolver names a few addresses and ports, as /etc/hosts and
// /etc/services would.
type fakeResolver struct{}

var fakeHosts = map[netip.Addr]string{
	netip.MustParseAddr("192.0.2.100"):   "www.example.com",
	netip.MustParseAddr("192.0.2.11"):    "rs1.example.com",
	netip.MustParseAddr("192.0.2.12"):    "rs2.example.com",
	netip.MustParseAddr("198.51.100.7"):  "a-rather-long-virtual-service-name.example.com",
	netip.MustParseAddr("198.51.100.8"):  "a-rather-long-real-server-name.example.com",
	netip.MustParseAddr("2001:db8::100"): "www6.example.com",
}

func (fakeResolver) HostName(a netip.Addr) (string, bool) {
	name, ok := fakeHosts[a]
	return name, ok
}

func (fakeResolver) ServiceName(port uint16, proto service.Proto) (string, bool) {
	switch {
	case port == 80 && proto == service.TCP:
		return "http", true
	case port == 443 && proto == service.TCP:
		return "https", true
	case port == 53:
		return "domain", true
	}
	return "", false
}

// The fake backend runs sync daemons as the kernel does
// (start_sync_thread, stop_sync_thread) on a host whose interfaces are
// lo and eth0, of MTU 1500.
func (f *fakeBackend) StartDaemon(d Daemon) error {
	if d.McastInterface != "eth0" && d.McastInterface != "lo" {
		return DaemonError(OpStartDaemon, syscall.ENODEV)
	}
	if slices.ContainsFunc(f.daemons, func(r Daemon) bool { return r.State == d.State }) {
		return DaemonError(OpStartDaemon, syscall.EEXIST)
	}
	f.daemons = append(f.daemons, CompleteDaemon(d, 1500))
	slices.SortFunc(f.daemons, func(a, b Daemon) int { return strings.Compare(b.State, a.State) }) // master first
	return nil
}

func (f *fakeBackend) StopDaemon(state string) error {
	i := slices.IndexFunc(f.daemons, func(r Daemon) bool { return r.State == state })
	if i < 0 {
		return DaemonError(OpStopDaemon, syscall.ESRCH)
	}
	f.daemons = slices.Delete(f.daemons, i, i+1)
	return nil
}

func (f *fakeBackend) Daemons() []Daemon { return slices.Clone(f.daemons) }

var _ DaemonBackend = (*fakeBackend)(nil)
