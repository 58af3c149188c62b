package forwarder

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/handoff"
	"github.com/udr-lb/udr/internal/udrtest"
)

// FanoutWorker computes in Go what the kernel does with the fanout
// program's result: the program's value modulo the group's size.
func TestFanoutWorkerMatchesProgram(t *testing.T) {
	eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: udrtest.DirectorMAC}
	for _, m := range [][2]int{{32, 128}, {24, 64}, {17, 100}, {0, 0}} {
		run := fanoutVM(t, m[0], m[1])
		for i := range 200 {
			c4 := netip.AddrFrom4([4]byte{198, 51, byte(i * 7), byte(i * 13)})
			c6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(i), 7: byte(i * 3), 9: byte(i * 5), 13: byte(i * 11), 15: byte(i)})
			for _, c := range []netip.Addr{c4, c6} {
				vip := vip80
				if c.Is6() {
					vip = netip.AddrPortFrom(udrtest.VIP6, 80)
				}
				v := run(udrtest.TCP(eth, netip.AddrPortFrom(c, 1000), vip, udrtest.SYN, nil))
				for n := 1; n <= 5; n++ {
					if got, want := FanoutWorker(c.As16(), m[0], m[1], n), int(uint32(v))%n; got != want {
						t.Fatalf("masks /%d /%d, %v, %d workers: FanoutWorker = %d, the program gives %d", m[0], m[1], c, n, got, want)
					}
				}
			}
		}
	}
}

// restartRules: wrr 3:2, wlc, a persistent rr service and one the next
// rules drop.
const restartRules = `-A -t 192.0.2.100:80 -s wrr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 3
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 2
-A -t 192.0.2.100:443 -s wlc
-a -t 192.0.2.100:443 -r 192.0.2.11:443 -g -w 1
-a -t 192.0.2.100:443 -r 192.0.2.12:443 -g -w 1
-A -t 192.0.2.100:8080 -s rr -p 600
-a -t 192.0.2.100:8080 -r 192.0.2.11:8080 -g -w 1
-a -t 192.0.2.100:8080 -r 192.0.2.12:8080 -g -w 1
-A -t 192.0.2.100:9000 -s rr
-a -t 192.0.2.100:9000 -r 192.0.2.11:9000 -g -w 1
`

// director is what udr run builds: n pipelines sharing one Table, each
// fed the frames the fanout hands it.
type director struct {
	cur   atomic.Pointer[Table]
	reg   *dest.Registry
	neigh *Neighbors
	ps    []*Pipeline
	vmac  [6]byte
}

func newDirector(t *testing.T, rules string, n int) *director {
	t.Helper()
	cfg, _, err := admin.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	d := &director{reg: dest.NewRegistry(64), neigh: NewNeighbors(64)}
	d.neigh.Set(udrtest.RS1, [6]byte(udrtest.RS1MAC))
	d.neigh.Set(udrtest.RS2, [6]byte(udrtest.RS2MAC))
	opts := Options{IfMAC: [6]byte(udrtest.DirectorMAC)}
	opts.VIPMAC = arpresponder.VirtualMAC(opts.IfMAC)
	d.vmac = opts.VIPMAC
	tb, err := Compile(cfg, d.reg, d.neigh, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	d.cur.Store(tb)
	d.reg.Publish(tb.DestIDs())
	for range n {
		d.ps = append(d.ps, NewPipeline(PipelineConfig{Table: &d.cur, Conns: conntrack.New(1024/n, d.reg, conntrack.Options{}),
			Neighbors: d.neigh, Registry: d.reg, Epoch: epoch, Shared: n > 1}))
	}
	return d
}

// send decides one client frame on the worker the fanout gives it to,
// and returns the MAC it went to, or the verdict.
func (d *director) send(src, dst netip.AddrPort, flags int, now time.Time) string {
	f := udrtest.TCP(udrtest.Eth{Src: udrtest.ClientMAC, Dst: d.vmac[:]}, src, dst, flags, nil)
	p := d.ps[FanoutWorker(src.Addr().As16(), 32, 128, len(d.ps))]
	v, out := p.Process(f, now)
	if v != VerdictForward {
		return v.String()
	}
	return net.HardwareAddr(out[0:6]).String()
}

// counts returns every real server's ActiveConn/InActConn/PersistConn.
func (d *director) counts() map[dest.Key][3]int32 {
	m := make(map[dest.Key][3]int32)
	for _, s := range d.cur.Load().Config().Services {
		for _, ds := range s.Dests {
			k := s.DestKey(ds)
			id, _ := d.reg.Lookup(k)
			st := d.reg.State(id)
			m[k] = [3]int32{st.Active.Load(), st.Inactive.Load(), st.Persist.Load()}
		}
	}
	return m
}

// A restart with the state file: connections established through the old
// director's two workers reach the same real servers through the new
// one's three (the fanout spreads clients anew), with the same counts; a
// half-open connection that timed out meanwhile and the connections of a
// service that is gone are dropped and counted; wrr goes on where it was.
func TestStateAcrossRestart(t *testing.T) {
	old := newDirector(t, restartRules, 2)
	now := epoch.Add(time.Minute)
	type conn struct {
		src, dst netip.AddrPort
		to       string
	}
	var conns []conn
	ports := []uint16{80, 443, 8080, 9000}
	for i := range 40 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%20)}), uint16(30000+i))
		dst := netip.AddrPortFrom(udrtest.VIP, ports[i%4])
		to := old.send(src, dst, udrtest.SYN, now)
		if got := old.send(src, dst, udrtest.ACK, now); got != to || strings.HasPrefix(to, "Verdict") {
			t.Fatalf("connection %d: SYN %s, ACK %s", i, to, got)
		}
		conns = append(conns, conn{src, dst, to})
	}
	before := old.counts()
	// One half-open connection (SYN_RECV, 60 s), which the restart's
	// 90 s outlast.
	half := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.99"), 999)
	old.send(half, vip80, udrtest.SYN, now)

	saved := SaveState(old.cur.Load(), old.ps, now)
	b, err := handoff.Encode(saved)
	if err != nil {
		t.Fatal(err)
	}
	st, err := handoff.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// The template count: one per persistent client of port 8080.
	var templates int
	for _, e := range st.Entries {
		if e.Key.Template {
			templates++
		}
	}
	if templates != 5 {
		t.Fatalf("%d templates saved, want 5 (one per client of the persistent service)", templates)
	}
	// The old director's next wrr pick, for comparison.
	next := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.77"), 5000)
	wantNext := old.send(next, vip80, udrtest.SYN, now)

	next9000 := strings.Replace(restartRules, "-A -t 192.0.2.100:9000 -s rr\n-a -t 192.0.2.100:9000 -r 192.0.2.11:9000 -g -w 1\n", "", 1)
	nd := newDirector(t, next9000, 3)
	// The new director has not learnt the real servers' MACs yet: they
	// come from the state.
	nd.neigh.Delete(udrtest.RS1)
	nd.neigh.Delete(udrtest.RS2)
	later := now.Add(90 * time.Second)
	ls := LoadState(nd.cur.Load(), nd.ps, st, later, 32, 128)
	if want := (LoadStats{Taken: 30 + templates, NoServer: 10, Expired: 1, Positions: 2, PositionsDropped: 1, Neighbors: 2}); ls != want {
		t.Errorf("LoadState = %+v, want %+v", ls, want)
	}
	for i, c := range conns {
		got := nd.send(c.src, c.dst, udrtest.ACK, later)
		if c.dst.Port() == 9000 {
			if got != VerdictNoService.String() {
				t.Errorf("connection %d to the removed service: %s, want %v", i, got, VerdictNoService)
			}
			continue
		}
		if got != c.to {
			t.Errorf("connection %d (%v -> %v) after the restart: %s, want %s as before", i, c.src, c.dst, got, c.to)
		}
	}
	after := nd.counts()
	for k, c := range after {
		if want := before[k]; c != want {
			t.Errorf("%v: counts %v after the restart, want %v", k, c, want)
		}
	}
	if got := nd.send(next, vip80, udrtest.SYN, later); got != wantNext {
		t.Errorf("next wrr pick after the restart: %s, want %s as the old director", got, wantNext)
	}
	// A new connection of a persistent client follows its template.
	for _, c := range conns {
		if c.dst.Port() == 8080 {
			src := netip.AddrPortFrom(c.src.Addr(), c.src.Port()+1000)
			if got := nd.send(src, c.dst, udrtest.SYN, later); got != c.to {
				t.Errorf("new connection of persistent client %v: %s, want %s (its template)", c.src.Addr(), got, c.to)
			}
		}
	}
}

// BenchmarkStateMillion saves, encodes, decodes and loads a table of 1M
// established connections over two real servers: what a restart adds to
// udr's stop and start.
func BenchmarkStateMillion(b *testing.B) {
	const n = 1 << 20
	rules := "-A -t 192.0.2.100:80 -s wlc\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g\n"
	cfg, _, err := admin.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		b.Fatal(err)
	}
	build := func() (*Table, []*Pipeline, []dest.ID) {
		reg, neigh := dest.NewRegistry(64), NewNeighbors(64)
		tb, err := Compile(cfg, reg, neigh, nil, Options{})
		if err != nil {
			b.Fatal(err)
		}
		reg.Publish(tb.DestIDs())
		var cur atomic.Pointer[Table]
		cur.Store(tb)
		p := NewPipeline(PipelineConfig{Table: &cur, Conns: conntrack.New(n, reg, conntrack.Options{}), Neighbors: neigh, Registry: reg, Epoch: epoch})
		return tb, []*Pipeline{p}, tb.DestIDs()
	}
	tb, ps, ids := build()
	now := epoch.Add(time.Minute)
	ticks := ps[0].Ticks(now)
	vip := netip.AddrPortFrom(udrtest.VIP, 80)
	for i := range n {
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 16), byte(i >> 8)}), uint16(i)|1024)
		e := conntrack.Entry{Dest: ids[i%2], State: conntrack.StateEstablished}
		if err := ps[0].Conns().Restore(conntrack.NewKey(6, c, vip), e, 90000, ticks); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		st := SaveState(tb, ps, now)
		enc, err := handoff.Encode(st)
		if err != nil {
			b.Fatal(err)
		}
		saved := time.Since(start)
		start = time.Now()
		dec, err := handoff.Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		tb2, ps2, _ := build()
		built := time.Since(start)
		start = time.Now()
		if ls := LoadState(tb2, ps2, dec, now, 32, 128); ls.Taken != n {
			b.Fatalf("took %+v", ls)
		}
		b.ReportMetric(float64(saved.Milliseconds()), "save+encode-ms")
		b.ReportMetric(float64(built.Milliseconds()), "decode+newtable-ms")
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "load-ms")
		b.ReportMetric(float64(len(enc))/(1<<20), "MiB")
	}
}
