package stats

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// lab is a registry, a table and a clock that advances one Period per
// tick.
type lab struct {
	t   *testing.T
	reg *dest.Registry
	tab *Table
	now time.Time
}

func newLab(t *testing.T) *lab {
	return &lab{t: t, reg: dest.NewRegistry(16), tab: NewTable(), now: time.Unix(1_700_000_000, 0)}
}

var (
	web = service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}
	dns = service.Key{Proto: service.UDP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 53}
)

func svc(k service.Key, rips ...string) *service.Service {
	s := &service.Service{Key: k}
	for _, r := range rips {
		s.Dests = append(s.Dests, service.Dest{Addr: netip.MustParseAddr(r), Port: k.Port, Weight: 1})
	}
	return s
}

// id returns the DestID of rip in service k.
func (l *lab) id(k service.Key, rip string) dest.ID {
	l.t.Helper()
	id, err := l.reg.Assign(k.DestKey(service.Dest{Addr: netip.MustParseAddr(rip), Port: k.Port}))
	if err != nil {
		l.t.Fatal(err)
	}
	return id
}

// traffic adds conns new connections of pkts packets of 100 bytes each to
// real server rip of k, as the packet path does.
func (l *lab) traffic(k service.Key, rip string, conns, pkts uint64) {
	st := l.reg.State(l.id(k, rip))
	st.Conns.Add(conns)
	st.InPkts.Add(pkts)
	st.InBytes.Add(100 * pkts)
}

func (l *lab) tick(services ...*service.Service) {
	l.now = l.now.Add(Period)
	for _, s := range services { // as forwarder.Compile does before
		for _, d := range s.Dests {
			l.id(s.Key, d.Addr.String())
		}
	}
	l.tab.Tick(l.now, l.reg, services)
}

func (l *lab) dest(k service.Key, rip string) Snapshot {
	l.t.Helper()
	s, ok := l.tab.Dest(l.id(k, rip))
	if !ok {
		l.t.Fatalf("no statistics for %v %s", k, rip)
	}
	return s
}

func (l *lab) service(k service.Key) Snapshot {
	l.t.Helper()
	s, ok := l.tab.Service(k)
	if !ok {
		l.t.Fatalf("no statistics for %v", k)
	}
	return s
}

func counters(conns, pkts uint64) Counters {
	return Counters{Conns: conns, InPkts: pkts, InBytes: 100 * pkts}
}

func TestTableSums(t *testing.T) {
	l := newLab(t)
	cfg := []*service.Service{svc(web, "192.0.2.11", "192.0.2.12"), svc(dns, "192.0.2.11")}
	l.tick(cfg...)
	l.traffic(web, "192.0.2.11", 3, 30)
	l.traffic(web, "192.0.2.12", 2, 10)
	l.traffic(dns, "192.0.2.11", 7, 7)
	l.tick(cfg...)

	got := map[string]Counters{
		"web rs1": l.dest(web, "192.0.2.11").Counters,
		"web rs2": l.dest(web, "192.0.2.12").Counters,
		"dns rs1": l.dest(dns, "192.0.2.11").Counters,
		"web":     l.service(web).Counters,
		"dns":     l.service(dns).Counters,
		"total":   l.tab.Total().Counters,
	}
	want := map[string]Counters{
		"web rs1": counters(3, 30),
		"web rs2": counters(2, 10),
		"dns rs1": counters(7, 7),
		"web":     counters(5, 40),
		"dns":     counters(7, 7),
		"total":   counters(12, 47),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("counters (-want +got):\n%s", diff)
	}
}

func TestTableRates(t *testing.T) {
	l := newLab(t)
	cfg := []*service.Service{svc(web, "192.0.2.11", "192.0.2.12")}
	l.tick(cfg...)
	var got []uint64
	for range 4 {
		l.traffic(web, "192.0.2.11", 100, 0) // 50 conn/s
		l.traffic(web, "192.0.2.12", 100, 0)
		l.tick(cfg...)
		got = append(got, l.service(web).Rates.CPS, l.dest(web, "192.0.2.11").Rates.CPS)
	}
	want := []uint64{25, 12, 44, 22, 58, 29, 68, 34}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("service and rs1 cps per tick (-want +got):\n%s", diff)
	}

	// A second Tick within half a Period refreshes the counters but does
	// not run the estimators again.
	l.traffic(web, "192.0.2.11", 100, 0)
	l.now = l.now.Add(Period / 4)
	l.tab.Tick(l.now, l.reg, cfg)
	s := l.service(web)
	if s.Rates.CPS != 68 || s.Counters.Conns != 900 {
		t.Fatalf("after an early tick: cps %d conns %d, want 68 900", s.Rates.CPS, s.Counters.Conns)
	}
}

// TestTableZero checks ipvsadm -Z: the zero point is the counters read at
// the last Tick, rates restart from zero, Cumulative is untouched, and
// other services (and the total) keep theirs unless every service is
// zeroed.
func TestTableZero(t *testing.T) {
	l := newLab(t)
	cfg := []*service.Service{svc(web, "192.0.2.11"), svc(dns, "192.0.2.11")}
	l.tick(cfg...)
	l.traffic(web, "192.0.2.11", 4, 40)
	l.traffic(dns, "192.0.2.11", 1, 1)
	l.tick(cfg...)
	l.traffic(web, "192.0.2.11", 1, 1) // not read yet: counted after -Z

	if !l.tab.Zero(web) {
		t.Fatal("Zero(web) = false, want true")
	}
	if l.tab.Zero(service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 1}) {
		t.Fatal("Zero(unknown service) = true, want false")
	}
	zeroed := Snapshot{Cumulative: counters(4, 40)}
	if diff := cmp.Diff(zeroed, l.service(web)); diff != "" {
		t.Fatalf("web after -Z (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(zeroed, l.dest(web, "192.0.2.11")); diff != "" {
		t.Fatalf("web rs1 after -Z (-want +got):\n%s", diff)
	}
	if got := l.dest(dns, "192.0.2.11").Counters; got != counters(1, 1) {
		t.Fatalf("dns rs1 after -Z of web = %+v, want untouched", got)
	}
	if got := l.tab.Total().Counters; got != counters(5, 41) {
		t.Fatalf("total after -Z of web = %+v, want untouched", got)
	}

	l.tick(cfg...)
	want := Snapshot{Counters: counters(1, 1), Cumulative: counters(5, 41), Rates: Rates{InBPS: 12}}
	if diff := cmp.Diff(want, l.service(web)); diff != "" {
		t.Fatalf("web one tick after -Z (-want +got):\n%s", diff)
	}

	l.tab.ZeroAll()
	for name, s := range map[string]Snapshot{"web": l.service(web), "dns": l.service(dns), "total": l.tab.Total()} {
		if s.Counters != (Counters{}) || s.Rates != (Rates{}) {
			t.Errorf("%s after -Z of all: %+v, want zero counters and rates", name, s)
		}
	}
}

// TestTableDeletedServer checks that a deleted real server's counts stay
// in its service, including those since the last Tick, and that a server
// added again resumes its counters.
func TestTableDeletedServer(t *testing.T) {
	l := newLab(t)
	both := svc(web, "192.0.2.11", "192.0.2.12")
	only2 := svc(web, "192.0.2.12")
	l.tick(both)
	l.traffic(web, "192.0.2.11", 10, 100)
	l.traffic(web, "192.0.2.12", 1, 1)
	l.tick(both)
	l.traffic(web, "192.0.2.11", 5, 5) // between the last Tick and the deletion

	l.tick(only2)
	if _, ok := l.tab.Dest(l.id(web, "192.0.2.11")); ok {
		t.Fatal("deleted server still listed")
	}
	if got := l.service(web).Counters; got != counters(16, 106) {
		t.Fatalf("service after deleting rs1 = %+v, want %+v", got, counters(16, 106))
	}
	l.traffic(web, "192.0.2.12", 1, 1)
	l.tick(only2)
	if got := l.service(web).Counters; got != counters(17, 107) {
		t.Fatalf("service one tick later = %+v, want %+v", got, counters(17, 107))
	}

	l.tick(both)
	if got := l.dest(web, "192.0.2.11"); got.Counters != counters(15, 105) || got.Rates != (Rates{}) {
		t.Fatalf("rs1 added again = %+v, want its counters back and rates from zero", got)
	}
	if got := l.service(web).Counters; got != counters(17, 107) {
		t.Fatalf("service after adding rs1 again = %+v, want %+v (no double count)", got, counters(17, 107))
	}
}

// TestTableDeletedService checks that a deleted service is forgotten while
// the total keeps its counts, and that it comes back empty.
func TestTableDeletedService(t *testing.T) {
	l := newLab(t)
	l.tick(svc(web, "192.0.2.11"), svc(dns, "192.0.2.11"))
	l.traffic(web, "192.0.2.11", 2, 2)
	l.traffic(dns, "192.0.2.11", 3, 3)
	l.tick(svc(dns, "192.0.2.11"))
	if _, ok := l.tab.Service(web); ok {
		t.Fatal("deleted service still listed")
	}
	if got := l.tab.Total().Counters; got != counters(5, 5) {
		t.Fatalf("total = %+v, want %+v", got, counters(5, 5))
	}
	l.tick(svc(web, "192.0.2.12"), svc(dns, "192.0.2.11"))
	if got := l.service(web).Counters; got != (Counters{}) {
		t.Fatalf("service added again = %+v, want zero", got)
	}
}

// TestTableForget: a server whose ID the registry frees before any Tick
// saw it go gives its last counts to its service and the total, and is
// gone; its ID never comes back.
func TestTableForget(t *testing.T) {
	l := newLab(t)
	both := svc(web, "192.0.2.11", "192.0.2.12")
	l.tick(both)
	l.traffic(web, "192.0.2.11", 10, 100)
	l.tick(both)
	l.traffic(web, "192.0.2.11", 5, 5) // after the last Tick
	id := l.id(web, "192.0.2.11")

	l.tab.Forget(id, l.reg.State(id))
	if _, ok := l.tab.Dest(id); ok {
		t.Fatal("a forgotten server is still listed")
	}
	l.tick(svc(web, "192.0.2.12"))
	if got := l.service(web).Counters; got != counters(15, 105) {
		t.Fatalf("service = %+v, want %+v", got, counters(15, 105))
	}
	if got := l.tab.Total().Counters; got != counters(15, 105) {
		t.Fatalf("total = %+v, want %+v", got, counters(15, 105))
	}
	l.tab.Forget(id, l.reg.State(id)) // twice: nothing
	if got := l.tab.Total().Counters; got != counters(15, 105) {
		t.Fatalf("total after a second Forget = %+v", got)
	}
}

// TestTableNewServerRates: the traffic a new real server gets before the
// estimator first sees it counts in its rates as in its service's, so
// that the servers' rates add up to the service's (ipvsadm -L --rate
// right after a start or an -a).
func TestTableNewServerRates(t *testing.T) {
	l := newLab(t)
	cfg := []*service.Service{svc(web, "192.0.2.11", "192.0.2.12")}
	l.traffic(web, "192.0.2.11", 5, 25)
	l.traffic(web, "192.0.2.12", 5, 27)
	l.tick(cfg...)
	s := l.service(web).Rates
	r1, r2 := l.dest(web, "192.0.2.11").Rates, l.dest(web, "192.0.2.12").Rates
	if r1.InPPS == 0 || r2.InPPS == 0 || r1.InBPS == 0 || r2.InBPS == 0 {
		t.Errorf("first Tick: servers' rates %+v and %+v, want non-zero as the service's %+v", r1, r2, s)
	}
	if sum := r1.InPPS + r2.InPPS; sum+1 < s.InPPS || sum > s.InPPS+1 {
		t.Errorf("servers' InPPS %d + %d, want the service's %d (±1 for rounding)", r1.InPPS, r2.InPPS, s.InPPS)
	}
}
