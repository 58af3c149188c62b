package forwarder

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/udrtest"
	"github.com/udr-lb/udr/service"
)

func TestParseTraceFilter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TraceFilter
		str  string // String(), when it differs from in
		err  string // a part of the error
	}{
		{in: "", str: "all frames"},
		{in: "client 198.51.100.0/24", want: TraceFilter{Clients: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}},
		{in: "client 198.51.100.7/24", want: TraceFilter{Clients: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}, str: "client 198.51.100.0/24"},
		{in: "client 198.51.100.7", want: TraceFilter{Clients: []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32")}}},
		{in: "client 2001:db8::/32 client 203.0.113.9", want: TraceFilter{Clients: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("203.0.113.9/32")}}},
		{in: "vip 192.0.2.100", want: TraceFilter{VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}},
		{in: "service tcp:192.0.2.100:80", want: TraceFilter{Services: []service.Key{{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}}}},
		{in: "service udp:[2001:db8::1]:53", want: TraceFilter{Services: []service.Key{{Proto: service.UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53}}}},
		{in: "server 192.0.2.11", want: TraceFilter{Servers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.11:0")}}},
		{in: "server 192.0.2.11:8080", want: TraceFilter{Servers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.11:8080")}}},
		{in: "verdict forward,no-conn", want: TraceFilter{Verdicts: 1<<VerdictForward | 1<<VerdictNoConn}},
		{in: "new drops", want: TraceFilter{New: true, Drops: true}},
		{in: "client 198.51.100.0/24 vip 192.0.2.100 service tcp:192.0.2.100:80 server 192.0.2.11 verdict forward new", want: TraceFilter{
			Clients:  []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			VIPs:     []netip.Addr{netip.MustParseAddr("192.0.2.100")},
			Services: []service.Key{{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}},
			Servers:  []netip.AddrPort{netip.MustParseAddrPort("192.0.2.11:0")},
			Verdicts: 1 << VerdictForward, New: true}},

		{in: "clients 198.51.100.0/24", err: `unknown word "clients"`},
		{in: "client", err: `"client" needs a value`},
		{in: "client 198.51.100.0/33", err: `client "198.51.100.0/33": want an address or a prefix`},
		{in: "client fe80::1%eth0", err: `client "fe80::1%eth0"`},
		{in: "vip 192.0.2.0/24", err: `vip "192.0.2.0/24": want an address`},
		{in: "service 192.0.2.100:80", err: `service "192.0.2.100:80": want PROTO:ADDR:PORT`},
		{in: "service sctp:192.0.2.100:80", err: `service "sctp:192.0.2.100:80"`},
		{in: "server example.org", err: `server "example.org"`},
		{in: "verdict forward,dropped", err: `verdict "dropped": want one of forward, reply`},
		{in: "drops verdict forward,reply", err: "drops and verdict forward,reply match no frame"},
		{in: "new vip", err: `"vip" needs a value`},
	} {
		f, err := ParseTraceFilter(strings.Fields(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if f.String() != cmpStr(tc.str, tc.in) || !equalFilters(f, tc.want) {
			t.Errorf("%q: got %+v (%q), want %+v", tc.in, f, f.String(), tc.want)
		}
		// What String prints parses back to the same filter.
		if f.String() != "all frames" {
			g, err := ParseTraceFilter(strings.Fields(f.String()))
			if err != nil || !equalFilters(f, g) {
				t.Errorf("%q: String %q parses to %+v, %v", tc.in, f.String(), g, err)
			}
		}
	}
}

func cmpStr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func equalFilters(a, b TraceFilter) bool {
	return slices.Equal(a.Clients, b.Clients) && slices.Equal(a.VIPs, b.VIPs) && slices.Equal(a.Services, b.Services) &&
		slices.Equal(a.Servers, b.Servers) && a.Verdicts == b.Verdicts && a.New == b.New && a.Drops == b.Drops
}

func mustFilter(t testing.TB, s string) TraceFilter {
	t.Helper()
	f, err := ParseTraceFilter(strings.Fields(s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// traceLines polls tr and returns its lines.
func traceLines(tr *Trace) []string {
	var lines []string
	tr.Poll(func(e *TraceEntry) bool {
		lines = append(lines, e.Line)
		return true
	})
	return lines
}

// A trace shows the frames its filter matches, with replay's explanation
// of each; the filter is applied by the worker (client, vip, service,
// verdict, new, drops) and the reader (server).
func TestTraceLines(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10) // for the MACs
	other := netip.MustParseAddr("198.51.100.7")
	frames := [][]byte{
		udrtest.TCP(h.toVIP(), client(1000), vip80, udrtest.SYN, nil),                               // new -> rs2 (rr)
		udrtest.TCP(h.toVIP(), client(1000), vip80, udrtest.ACK, nil),                               // existing
		udrtest.TCP(h.toVIP(), netip.AddrPortFrom(other, 1001), vip80, udrtest.SYN, nil),            // new -> rs1
		udrtest.TCP(h.toVIP(), client(1002), vip80, udrtest.ACK, nil),                               // no-conn
		udrtest.UDP(h.toVIP(), client(1003), vip53, []byte("q")),                                    // new udp
		udrtest.TCP(h.toVIP(), client(1004), netip.AddrPortFrom(udrtest.VIP, 81), udrtest.SYN, nil), // no-service
	}
	// run traces frames through a fresh worker with filter.
	run := func(filter string) []string {
		h := newHarness(t, workerRules, 1<<10)
		w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p})
		tr, err := Workers{w}.StartTrace(mustFilter(t, filter), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Stop()
		for i, f := range frames {
			w.sizes[i] = copy(w.bufs[i], f)
		}
		w.batch(len(frames), epoch)
		return traceLines(tr)
	}
	// Replay's explanation of the same frames, from a fresh pipeline.
	x := newHarness(t, workerRules, 1<<10)
	ex := NewExplainer(x.cur.Load(), x.neigh, x.reg)
	var want []string
	for _, f := range frames {
		b := slices.Clone(f)
		x.p.Process(b, epoch)
		want = append(want, ex.Line(x.p.Decision(), b))
	}
	for _, tc := range []struct {
		filter string
		want   []int // indexes into want
	}{
		{"", []int{0, 1, 2, 3, 4, 5}},
		{"new", []int{0, 2, 4}},
		{"drops", []int{3, 5}},
		{"client 198.51.100.0/24", []int{2}},
		{"client 192.0.2.50 verdict no-conn,no-service", []int{3, 5}},
		{"service udp:192.0.2.100:53", []int{4}},
		{"vip 192.0.2.100 server 192.0.2.12", []int{0, 1}}, // rr: the last added server first
		{"server 192.0.2.11:80 new", []int{2}},
		{"server 192.0.2.11", []int{2, 4}},
		{"vip 192.0.2.101", nil},
	} {
		got := run(tc.filter)
		var wantLines []string
		for _, i := range tc.want {
			wantLines = append(wantLines, want[i])
		}
		if !slices.Equal(got, wantLines) {
			t.Errorf("%q:\n%s\nwant replay's lines:\n%s", tc.filter, strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
		}
	}
}

// Only one trace runs at a time; once it stops another may start.
func TestTraceOneAtATime(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	ws := Workers{NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p})}
	tr, err := ws.StartTrace(TraceFilter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.StartTrace(TraceFilter{}, 0); err != ErrTraceBusy {
		t.Fatalf("second trace: %v, want ErrTraceBusy", err)
	}
	tr.Stop()
	tr2, err := ws.StartTrace(TraceFilter{}, 0)
	if err != nil {
		t.Fatalf("after Stop: %v", err)
	}
	tr.Stop() // a stale Stop leaves the new trace alone
	if ws[0].trace.Load() == nil {
		t.Fatal("the first trace's Stop ended the second")
	}
	tr2.Stop()
}

// A full queue never holds the worker up: the frames it has no room for
// are counted as skipped, and the records kept are the oldest, intact.
func TestTraceQueueFullSkips(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p})
	tr, err := Workers{w}.StartTrace(TraceFilter{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	batch := func(first, n int) {
		for i := range n {
			w.sizes[i] = copy(w.bufs[i], udrtest.UDP(h.toVIP(), client(uint16(first+i)), vip53, []byte("q")))
		}
		done := make(chan struct{})
		go func() { w.batch(n, epoch); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatal("the worker blocked on a full trace queue")
		}
	}
	batch(2000, 10)
	if s := tr.Skipped(); s != 6 {
		t.Fatalf("skipped %d, want 6", s)
	}
	lines := traceLines(tr)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4: %q", len(lines), lines)
	}
	for i, l := range lines {
		if want := client(uint16(2000 + i)).String(); !strings.Contains(l, want) {
			t.Errorf("line %d %q, want the frame from %s", i, l, want)
		}
	}
	// Read, the queue has room again.
	batch(3000, 3)
	if lines := traceLines(tr); len(lines) != 3 || tr.Skipped() != 6 {
		t.Fatalf("after reading: %d lines, %d skipped; want 3, 6", len(lines), tr.Skipped())
	}
}

// A frame longer than the snap length keeps its first TraceSnap bytes, and
// is explained as a whole frame would be.
func TestTraceSnapLength(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p})
	tr, err := Workers{w}.StartTrace(TraceFilter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	f := udrtest.TCP(h.toVIP(), client(4000), vip80, udrtest.SYN|udrtest.PSH, make([]byte, 1000))
	w.sizes[0] = copy(w.bufs[0], f)
	w.batch(1, epoch)
	var e TraceEntry
	tr.Poll(func(te *TraceEntry) bool { e = *te; e.Frame = slices.Clone(te.Frame); return true })
	if len(e.Frame) != TraceSnap || e.Length != len(f) {
		t.Fatalf("kept %d of %d bytes, want %d of %d", len(e.Frame), e.Length, TraceSnap, len(f))
	}
	if !strings.HasPrefix(e.Line, "forward TCP 192.0.2.50:4000 -> 192.0.2.100:80 [SP]: service -t 192.0.2.100:80 rr, new connection -> 192.0.2.") {
		t.Fatalf("line %q", e.Line)
	}
}

// With a trace of every frame running, a batch still allocates nothing.
func TestTraceBatchDoesNotAllocate(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p})
	for _, filter := range []string{"", "client 192.0.2.0/24 vip 192.0.2.100 service tcp:192.0.2.100:80 verdict forward,no-conn"} {
		tr, err := Workers{w}.StartTrace(mustFilter(t, filter), 64)
		if err != nil {
			t.Fatal(err)
		}
		frames := [][]byte{
			udrtest.TCP(h.toVIP(), client(1000), vip80, udrtest.SYN, nil),
			udrtest.TCP(h.toVIP(), client(1000), vip80, udrtest.ACK, nil),
			udrtest.TCP(h.toVIP(), client(1001), vip80, udrtest.ACK, nil),
		}
		batch := func() {
			for i, f := range frames {
				w.sizes[i] = copy(w.bufs[i], f)
			}
			w.batch(len(frames), epoch)
		}
		batch()
		if a := testing.AllocsPerRun(1000, batch); a != 0 {
			t.Errorf("filter %q: batch allocs = %v with a trace running, want 0", filter, a)
		}
		if tr.Skipped() == 0 {
			t.Errorf("filter %q: nothing recorded", filter)
		}
		tr.Stop()
	}
}

// BenchmarkWorkerBatchTrace is BenchmarkWorkerBatch with no trace
// ("none"); with a trace of every frame whose queue is emptied after each
// batch without reading it ("all": the worker's cost alone, the reader
// runs elsewhere); the same with every line formatted on the worker's
// goroutine ("all-format": the worker's and the reader's costs together);
// with a full queue never read ("all-unread": every frame skipped); and
// with a filter no frame matches ("other-client").
func BenchmarkWorkerBatchTrace(b *testing.B) {
	for _, mode := range []string{"none", "all", "all-format", "all-unread", "other-client"} {
		b.Run(mode, func(b *testing.B) {
			h := newHarness(b, workerRules, 1<<16)
			w := NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p, PublishInterval: time.Second})
			var tr *Trace
			if mode != "none" {
				f := TraceFilter{}
				if mode == "other-client" {
					f = mustFilter(b, "client 203.0.113.0/24")
				}
				var err error
				if tr, err = (Workers{w}).StartTrace(f, 0); err != nil {
					b.Fatal(err)
				}
				defer tr.Stop()
			}
			frames := make([][]byte, DefaultBatchSize)
			for i := range frames {
				cl := netip.AddrPortFrom(udrtest.Client, uint16(10000+i))
				h.p.Process(udrtest.TCP(h.toVIP(), cl, vip80, udrtest.SYN, nil), epoch)
				frames[i] = udrtest.TCP(h.toVIP(), cl, vip80, udrtest.ACK|udrtest.PSH, []byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n"))
			}
			lines := 0
			b.ReportAllocs()
			for b.Loop() {
				for i, f := range frames {
					w.sizes[i] = copy(w.bufs[i], f)
				}
				w.batch(len(frames), epoch)
				switch mode {
				case "all":
					tap := w.trace.Load()
					lines += int(tap.tail.Load() - tap.head.Load())
					tap.head.Store(tap.tail.Load())
				case "all-format":
					lines += tr.Poll(func(*TraceEntry) bool { return true })
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
			if (mode == "all" || mode == "all-format") && lines != b.N*len(frames) {
				b.Fatalf("%d lines for %d frames", lines, b.N*len(frames))
			}
		})
	}
}

// With several workers, each has its own queue: the trace shows the frames
// of all, each worker's in its order, and Stop ends it in all.
func TestTraceSeveralWorkers(t *testing.T) {
	h := newHarness(t, workerRules, 1<<10)
	var ws Workers
	for range 3 {
		ws = append(ws, NewWorker(WorkerConfig{Conn: nopConn{}, Pipeline: h.p}))
	}
	tr, err := ws.StartTrace(mustFilter(t, "verdict no-conn"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range ws {
		for j := range 2 {
			w.sizes[j] = copy(w.bufs[j], udrtest.TCP(h.toVIP(), client(uint16(100*i+j)), vip80, udrtest.ACK, nil))
		}
		w.batch(2, epoch)
	}
	var got []string
	tr.Poll(func(e *TraceEntry) bool {
		got = append(got, strings.Fields(e.Line)[2]+" "+strconv.Itoa(e.Worker))
		return true
	})
	want := []string{"192.0.2.50:0 0", "192.0.2.50:1 0", "192.0.2.50:100 1", "192.0.2.50:101 1", "192.0.2.50:200 2", "192.0.2.50:201 2"}
	if !slices.Equal(got, want) {
		t.Fatalf("traced %q, want %q", got, want)
	}
	tr.Stop()
	for i, w := range ws {
		if w.trace.Load() != nil {
			t.Errorf("worker %d still traces after Stop", i)
		}
	}
}

// The worker's prefix test on the pipeline's 16-byte addresses agrees with
// netip.Prefix.Contains, for IPv4 and IPv6 prefixes of every length.
func TestTraceMaskedAddr(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.101.7"), netip.MustParseAddr("198.51.100.200"),
		netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("0.0.0.0"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db9::1"),
		netip.MustParseAddr("::ffff:198.51.100.7"), netip.MustParseAddr("::"),
	}
	for _, base := range []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::1")} {
		for bits := 0; bits <= base.BitLen(); bits++ {
			p := netip.PrefixFrom(base, bits).Masked()
			m := newMaskedAddr(p)
			for _, a := range addrs {
				a16 := a.As16()
				if got, want := m.match(&a16), p.Contains(a.Unmap()) && (a.Unmap().Is4() == p.Addr().Is4()); got != want {
					t.Errorf("%v matches %v: %v, want %v", p, a, got, want)
				}
			}
		}
	}
}
