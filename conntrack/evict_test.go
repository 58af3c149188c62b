package conntrack

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEvictionPolicy(t *testing.T) {
	// 9 entries in 11 slots: the 64-slot window sees the whole table.
	// Each packet list is sent at its connection's times.
	tb, reg, ids := newTestTable(t, 9, 1, Options{})
	p := Persistence{Timeout: 2000, Netmask: 32}
	type pkt struct {
		at    uint32
		flags uint8
	}
	type conn struct {
		name string
		key  Key
		pkts []pkt
	}
	conns := []conn{
		// Packets over time: confirmed, whatever its state's timeout.
		{"confirmed fin_wait", testKey(tcp, 0), []pkt{{0, TCPSyn}, {0, TCPAck}, {3, TCPFin}}},
		{"syn_recv idle 50", testKey(tcp, 1), []pkt{{50, TCPSyn}}},
		{"pair idle 90", testKey(tcp, 2), []pkt{{10, TCPSyn}, {10, TCPAck}}},
		{"pair idle 20", testKey(tcp, 3), []pkt{{80, TCPSyn}, {80, TCPAck}}},
		{"three packets idle 95", testKey(tcp, 4), []pkt{{5, TCPSyn}, {5, TCPAck}, {5, TCPAck}}},
		{"udp idle 35", testKey(udp, 5), []pkt{{65, 0}}},
		{"closed idle 75", testKey(tcp, 8), []pkt{{25, TCPSyn}, {25, TCPAck}, {25, TCPAck}, {25, TCPFin}}},
	}
	names := map[Key]string{}
	for _, c := range conns {
		mustInsert(t, tb, c.key, ids[0], c.pkts[0].at)
		for _, pk := range c.pkts {
			mustUpdate(t, tb, c.key, pk.flags, pk.at)
		}
		names[c.key] = c.name
	}
	controlled := testKey(tcp, 6)
	tk := p.TemplateKey(controlled)
	if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(controlled, p, 20); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, tb, controlled, TCPSyn, 20)
	mustUpdate(t, tb, controlled, TCPAck, 20) // assures the template
	names[controlled] = "controlled pair idle 80"
	names[tk] = "assured template"
	if tb.Len() != tb.Cap() {
		t.Fatalf("Len %d, want a full table of %d", tb.Len(), tb.Cap())
	}

	var evicted []string
	for i := range 10 {
		before := map[Key]bool{}
		tb.Range(func(k Key, _ Entry) bool { before[k] = true; return true })
		k := testKey(tcp, 100+i)
		// SYN, ACK and a request at once: three packets, not confirmed.
		mustInsert(t, tb, k, ids[0], 100)
		for _, f := range []uint8{TCPSyn, TCPAck, TCPAck} {
			mustUpdate(t, tb, k, f, 100)
		}
		names[k] = "new"
		tb.Range(func(k Key, _ Entry) bool { delete(before, k); return true })
		for k := range before {
			evicted = append(evicted, names[k])
		}
		if tb.Len() != tb.Cap() {
			t.Fatalf("Len %d after insert into a full table, want %d", tb.Len(), tb.Cap())
		}
	}
	// One or two packets go first, the most idle first (one packet's idle
	// counting twice), whatever their state; then the other unconfirmed,
	// the most idle first, the new ones too: the confirmed connection and
	// the ASSURED template stay.
	want := []string{
		"syn_recv idle 50", "pair idle 90", "controlled pair idle 80", "closed idle 75", "udp idle 35", "pair idle 20",
		"three packets idle 95", "new", "new", "new",
	}
	if diff := cmp.Diff(want, evicted); diff != "" {
		t.Fatalf("eviction order (-want +got):\n%s", diff)
	}
	if te, ok := tb.Lookup(tk, 100); !ok || te.Controlled != 0 {
		t.Fatalf("template %+v ok=%v, want kept with no connection", te, ok)
	}
	if e, ok := tb.Lookup(conns[0].key, 100); !ok || e.State != StateFinWait || e.Flags&FlagActive != 0 {
		t.Fatalf("confirmed connection %+v ok=%v, want kept in FIN_WAIT", e, ok)
	}
	if got := tb.Stats(); got != (Stats{Evicted: 10}) {
		t.Fatalf("Stats %+v, want 10 evictions", got)
	}
	if got := countsOf(reg, ids[0]); got != (counts{Active: 7, Inactive: 1, Persist: 1}) {
		t.Fatalf("counts %+v after evictions", got)
	}
}

func TestFullTableExpiresFirst(t *testing.T) {
	tb, _, ids := newTestTable(t, 8, 1, Options{})
	for i := range 8 {
		mustInsert(t, tb, testKey(tcp, i), ids[0], uint32(i*10))
		mustUpdate(t, tb, testKey(tcp, i), TCPSyn, uint32(i*10)) // SYN_RECV until i*10+60
	}
	// At 65 only the first has expired: it goes, nothing is evicted.
	mustInsert(t, tb, testKey(tcp, 8), ids[0], 65)
	if _, ok := tb.Lookup(testKey(tcp, 0), 0); ok {
		t.Fatal("expired entry still present")
	}
	if got := tb.Stats(); got != (Stats{Expired: 1}) {
		t.Fatalf("Stats %+v, want one expiry and no eviction", got)
	}
}

func TestTableFull(t *testing.T) {
	tb, reg, ids := newTestTable(t, 1, 1, Options{})
	p := Persistence{Timeout: 60, Netmask: 32}
	k := testKey(tcp, 1)
	if err := tb.InsertTemplate(p.TemplateKey(k), ids[0], p.Timeout, 0); err != nil {
		t.Fatal(err)
	}
	// The only entry is the template the new connection needs.
	if _, err := tb.InsertControlled(k, p, 0); !errors.Is(err, ErrTableFull) {
		t.Fatalf("InsertControlled into a table full of its own template: %v, want ErrTableFull", err)
	}
	te, _ := tb.Lookup(p.TemplateKey(k), 0)
	if te.Controlled != 0 || tb.Len() != 1 || tb.Stats().Full != 1 {
		t.Fatalf("after refusal: template %+v, Len %d, Stats %+v", te, tb.Len(), tb.Stats())
	}
	if got := countsOf(reg, ids[0]); got != (counts{Persist: 1}) {
		t.Fatalf("counts %+v", got)
	}
}

// TestNeverGrows inserts far more connections than fit and checks that
// the table stays within its capacity and its memory.
func TestNeverGrows(t *testing.T) {
	const capacity = 4096
	tb, reg, ids := newTestTable(t, capacity, 1, Options{})
	nslots := len(tb.slots)
	flags := []uint8{TCPSyn, TCPAck, TCPFin, TCPRst, 0}
	var before, after runtime.MemStats
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			k := testKey(tcp, i)
			if i%7 == 0 {
				k.Proto = udp
			}
			now := uint32(i / 1000)
			mustInsert(t, tb, k, ids[0], now)
			mustUpdate(t, tb, k, flags[i%len(flags)], now)
			if tb.Len() > tb.Cap() {
				t.Fatalf("Len %d > Cap %d", tb.Len(), tb.Cap())
			}
		}
	}
	insert(0, 2*capacity) // fill, and reach a steady state
	runtime.GC()
	runtime.ReadMemStats(&before)
	insert(2*capacity, 50*capacity)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(tb.slots) != nslots || tb.Len() != capacity {
		t.Fatalf("slots %d (was %d), Len %d, want a full table of %d", len(tb.slots), nslots, tb.Len(), capacity)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<10 {
		t.Fatalf("heap grew by %d bytes over %d inserts into a full table", grew, 48*capacity)
	}
	st := tb.Stats()
	if st.Evicted+st.Expired < 48*capacity || st.Full != 0 {
		t.Fatalf("Stats %+v", st)
	}
	d := reg.State(ids[0])
	if got := int(d.Active.Load() + d.Inactive.Load()); got != capacity {
		t.Fatalf("server counts %d connections, table holds %d", got, capacity)
	}
}

func TestMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a million entries")
	}
	const n = 1_000_000
	_, reg, ids := newTestTable(t, 1, 1, Options{})
	// A table this large lives outside the Go heap (slots_linux.go), so
	// the heap's growth and the resident set's are both measured, and the
	// larger is the table's.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rssBefore := residentBytes(t)
	tb := New(n, reg, Options{Seed: 1, TicksPerSecond: 1})
	for i := range n {
		mustInsert(t, tb, testKey(tcp, i), ids[0], 0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if tb.Len() != n {
		t.Fatalf("Len %d, want %d", tb.Len(), n)
	}
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	rss := float64(residentBytes(t)-rssBefore) / n
	perEntry := max(heap, rss)
	t.Logf("memory per tracked connection: %.2f bytes (heap %.2f, resident %.2f; %d slots of %d bytes for %d entries)", perEntry, heap, rss, len(tb.slots), slotSize, n)
	if perEntry > 64 {
		t.Fatalf("%.2f bytes per entry, want <= 64", perEntry)
	}
	runtime.KeepAlive(tb)
}

// residentBytes returns the process's resident set (VmRSS).
func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
