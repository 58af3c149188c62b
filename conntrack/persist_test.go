package conntrack

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTemplateKey(t *testing.T) {
	tests := []struct {
		name   string
		client string
		vip    string
		p      Persistence
		want   string // masked client
		vport  uint16
	}{
		{"IPv4 /32", "198.51.100.77:5000", "192.0.2.100:80", Persistence{Netmask: 32}, "198.51.100.77", 80},
		{"IPv4 /24", "198.51.100.77:5000", "192.0.2.100:80", Persistence{Netmask: 24}, "198.51.100.0", 80},
		{"IPv4 /20", "198.51.100.77:5000", "192.0.2.100:80", Persistence{Netmask: 20}, "198.51.96.0", 80},
		{"IPv4 /0", "198.51.100.77:5000", "192.0.2.100:80", Persistence{Netmask: 0}, "0.0.0.0", 80},
		{"IPv4 port-0 service", "198.51.100.77:5000", "192.0.2.100:443", Persistence{Netmask: 32, AllPorts: true}, "198.51.100.77", 0},
		{"IPv6 /128", "[2001:db8::1:2]:5000", "[2001:db8::100]:80", Persistence{Netmask: 128}, "2001:db8::1:2", 80},
		{"IPv6 /64", "[2001:db8::1:2]:5000", "[2001:db8::100]:80", Persistence{Netmask: 64}, "2001:db8::", 80},
		{"IPv6 /33", "[2001:db8:ffff::1]:5000", "[2001:db8::100]:80", Persistence{Netmask: 33}, "2001:db8:8000::", 80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vip := netip.MustParseAddrPort(tt.vip)
			k := NewKey(tcp, netip.MustParseAddrPort(tt.client), vip)
			got := tt.p.TemplateKey(k)
			want := NewKey(tcp, netip.AddrPortFrom(netip.MustParseAddr(tt.want), 0), netip.AddrPortFrom(vip.Addr(), tt.vport))
			want.Template = true
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("TemplateKey (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTemplateLifetime(t *testing.T) {
	tb, reg, ids := newTestTable(t, 64, 1, Options{})
	p := Persistence{Timeout: 360, Netmask: 32}
	k1 := testKey(tcp, 1)
	tk := p.TemplateKey(k1)

	if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 0); err != nil {
		t.Fatal(err)
	}
	dest, err := tb.InsertControlled(k1, p, 10)
	if err != nil || dest != ids[0] {
		t.Fatalf("InsertControlled = %d, %v", dest, err)
	}
	te, _ := tb.Lookup(tk, 10)
	if diff := cmp.Diff(Entry{Dest: ids[0], Expiry: 370, Controlled: 1, State: StateNone, Flags: FlagTemplate}, te); diff != "" {
		t.Fatalf("template after first use (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(counts{Inactive: 1, Persist: 1}, countsOf(reg, ids[0])); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}

	mustUpdate(t, tb, k1, TCPSyn, 10)
	mustUpdate(t, tb, k1, TCPAck, 10) // ESTABLISHED until 910
	if te, _ := tb.Lookup(tk, 11); te.State != StateAssured {
		t.Fatalf("template %v after its connection reached ESTABLISHED, want ASSURED", te.State)
	}
	if diff := cmp.Diff(counts{Active: 1, Persist: 1}, countsOf(reg, ids[0])); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}

	// The template's timer fires at 370 while it still controls k1: it
	// is re-armed for 60 s (430), then again (490), ...
	if te, ok := tb.Lookup(tk, 370); !ok || te.Expiry != 430 || te.Flags&FlagRearmed == 0 {
		t.Fatalf("template at 370: %+v ok=%v, want re-armed to 430", te, ok)
	}
	if n := tb.Sweep(500, 1000); n != 0 {
		t.Fatalf("Sweep removed %d entries, want none", n)
	}
	if te, _ := tb.Lookup(tk, 500); te.Expiry != 550 {
		t.Fatalf("template expiry %d at 500, want 550 (430+60+60)", te.Expiry)
	}

	// A new connection restarts the timer with 60 s now, not -p.
	k2 := testKey(tcp, 2)
	if _, err := tb.InsertControlled(k2, p, 520); err != nil {
		t.Fatal(err)
	}
	if te, _ := tb.Lookup(tk, 520); te.Expiry != 580 || te.Controlled != 2 {
		t.Fatalf("template after re-use: %+v, want expiry 580, 2 controlled", te)
	}

	// k2 never gets a packet (3 s), k1 finishes at 600 (FIN_WAIT 120 s).
	mustUpdate(t, tb, k1, TCPFin, 600)
	tb.Sweep(601, 1000)
	if te, _ := tb.Lookup(tk, 601); te.Controlled != 1 {
		t.Fatalf("template controls %d after k2 expired, want 1", te.Controlled)
	}
	tb.Sweep(720, 1000) // k1 expires; the template's timer (re-armed to 760) runs on
	te, ok := tb.Lookup(tk, 720)
	if !ok || te.Controlled != 0 || te.Expiry != 760 {
		t.Fatalf("template at 720: %+v ok=%v, want alive until 760 with no connection", te, ok)
	}
	if n := tb.Sweep(760, 1000); n != 1 || tb.Len() != 0 {
		t.Fatalf("Sweep at 760 removed %d, Len %d; want the template gone", n, tb.Len())
	}
	if diff := cmp.Diff(counts{}, countsOf(reg, ids[0])); diff != "" {
		t.Fatalf("counts at the end (-want +got):\n%s", diff)
	}
}

// TestTemplateExplicitDelete: Delete is ip_vs_conn_expire_now (a
// rescheduled connection), which leaves cp->timeout as it is, so the
// template stays, ASSURED or not; only ip_vs_conn_del (eviction here)
// drops a template left unassured and unused (TestEvictDropsTemplate).
func TestTemplateExplicitDelete(t *testing.T) {
	for _, assured := range []bool{false, true} {
		tb, reg, ids := newTestTable(t, 64, 1, Options{})
		p := Persistence{Timeout: 360, Netmask: 24}
		k := testKey(tcp, 1)
		tk := p.TemplateKey(k)
		if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.InsertControlled(k, p, 0); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, tb, k, TCPSyn, 0)
		if assured {
			mustUpdate(t, tb, k, TCPAck, 0)
		}
		if tb.Delete(tk, 1) {
			t.Fatal("Delete removed a template that controls a connection")
		}
		if !tb.Delete(k, 1) {
			t.Fatal("Delete(connection) = false")
		}
		if te, ok := tb.Lookup(tk, 1); !ok || te.Controlled != 0 {
			t.Fatalf("assured %v: template after Delete of its connection: %+v present %v, want present, controlling nothing", assured, te, ok)
		}
		if diff := cmp.Diff(counts{Persist: 1}, countsOf(reg, ids[0])); diff != "" {
			t.Fatalf("assured %v: counts (-want +got):\n%s", assured, diff)
		}
	}
}

// TestEvictDropsTemplate: evicting a controlled connection is the kernel's
// drop_entry, ip_vs_conn_del with cp->timeout 0: its template goes too if
// it is left controlling nothing and is not ASSURED (ip_vs_conn_expire).
func TestEvictDropsTemplate(t *testing.T) {
	for _, assured := range []bool{false, true} {
		tb, reg, ids := newTestTable(t, 2, 1, Options{})
		p := Persistence{Timeout: 360, Netmask: 32}
		k := testKey(tcp, 1)
		tk := p.TemplateKey(k)
		if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.InsertControlled(k, p, 0); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, tb, k, TCPSyn, 0)
		if assured {
			mustUpdate(t, tb, k, TCPAck, 0)
		}
		mustInsert(t, tb, testKey(tcp, 2), ids[0], 1) // full: evicts k
		if _, ok := tb.Lookup(k, 1); ok {
			t.Fatalf("assured %v: the controlled connection was not evicted", assured)
		}
		if _, ok := tb.Lookup(tk, 1); ok != assured {
			t.Fatalf("assured %v: template present %v after its connection was evicted, want %v", assured, ok, assured)
		}
		want := counts{Inactive: 1}
		if assured {
			want.Persist = 1
		}
		if diff := cmp.Diff(want, countsOf(reg, ids[0])); diff != "" {
			t.Fatalf("assured %v: counts (-want +got):\n%s", assured, diff)
		}
	}
}

func TestInsertTemplateRepoints(t *testing.T) {
	tb, reg, ids := newTestTable(t, 64, 2, Options{})
	p := Persistence{Timeout: 100, Netmask: 32}
	k := testKey(tcp, 1)
	tk := p.TemplateKey(k)
	if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(k, p, 0); err != nil {
		t.Fatal(err)
	}
	if err := tb.InsertTemplate(tk, ids[1], p.Timeout, 5); err != nil {
		t.Fatal(err)
	}
	te, _ := tb.Lookup(tk, 5)
	if te.Dest != ids[1] || te.Controlled != 1 || te.Expiry != 105 {
		t.Fatalf("re-pointed template %+v", te)
	}
	got := []counts{countsOf(reg, ids[0]), countsOf(reg, ids[1])}
	if diff := cmp.Diff([]counts{{Inactive: 1}, {Persist: 1}}, got); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	// The next connection of the client follows the template.
	if dest, err := tb.InsertControlled(testKey(tcp, 2), p, 6); err != nil || dest != ids[1] {
		t.Fatalf("InsertControlled = %d, %v; want %d", dest, err, ids[1])
	}
}

func TestInsertControlledWithoutTemplate(t *testing.T) {
	tb, _, _ := newTestTable(t, 64, 1, Options{})
	if _, err := tb.InsertControlled(testKey(tcp, 1), Persistence{Timeout: 60, Netmask: 32}, 0); err == nil {
		t.Fatal("InsertControlled without a template succeeded")
	}
	if tb.Len() != 0 {
		t.Fatalf("Len %d, want 0", tb.Len())
	}
}

// TestTemplateRearmAfterLateExpiry checks a template whose timer fired
// several times while its connection lived, with both found late: the
// template ends as the kernel's timers would have left it.
func TestTemplateRearmAfterLateExpiry(t *testing.T) {
	tb, reg, ids := newTestTable(t, 64, 1, Options{})
	p := Persistence{Timeout: 100, Netmask: 32}
	k := testKey(tcp, 1)
	tk := p.TemplateKey(k)
	if err := tb.InsertTemplate(tk, ids[0], p.Timeout, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(k, p, 0); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, tb, k, TCPSyn, 0)
	mustUpdate(t, tb, k, TCPAck, 0) // k expires at 900, the template at 100
	if _, ok := tb.Lookup(k, 920); ok {
		t.Fatal("connection alive at 920")
	}
	// Fired at 100 and re-armed at 160, ..., 880, 940: the first fire
	// after k's expiry at 900 is its last.
	te, ok := tb.Lookup(tk, 920)
	want := Entry{Dest: ids[0], Expiry: 940, State: StateAssured, Flags: FlagTemplate | FlagRearmed}
	if diff := cmp.Diff(want, te); !ok || diff != "" {
		t.Fatalf("template at 920, ok=%v (-want +got):\n%s", ok, diff)
	}
	if _, ok := tb.Lookup(tk, 940); ok {
		t.Fatal("template alive at 940")
	}
	if got := countsOf(reg, ids[0]); got != (counts{}) {
		t.Fatalf("counts %+v, want none", got)
	}
}

// TestInvalidateTemplate follows ip_vs_check_template: the old template
// leaves its key but stays bound to its server with its connection; a new
// one takes the key; each connection ends on its own template; the old
// template goes at its own timer.
func TestInvalidateTemplate(t *testing.T) {
	tb, reg, ids := newTestTable(t, 64, 2, Options{})
	a, b := ids[0], ids[1]
	p := Persistence{Timeout: 100, Netmask: 32}
	k1, k2 := testKey(tcp, 1), testKey(tcp, 1)
	k2.CPort = 2
	tk := p.TemplateKey(k1)
	if err := tb.InsertTemplate(tk, a, p.Timeout, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(k1, p, 0); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, tb, k1, TCPSyn, 0)
	mustUpdate(t, tb, k1, TCPAck, 0) // ESTABLISHED (900 s), template ASSURED

	if !tb.InvalidateTemplate(tk, 10) {
		t.Fatal("InvalidateTemplate: template not found")
	}
	if _, ok := tb.Lookup(tk, 10); ok {
		t.Fatal("the invalidated template is still under its key")
	}
	if err := tb.InsertTemplate(tk, b, p.Timeout, 10); err != nil {
		t.Fatal(err)
	}
	if d, err := tb.InsertControlled(k2, p, 10); err != nil || d != b {
		t.Fatalf("InsertControlled = %d, %v; want %d", d, err, b)
	}
	var old Key
	tb.Range(func(k Key, e Entry) bool {
		if k.Template && k != tk {
			old = k
			if e.Dest != a || e.Controlled != 1 || e.State != StateAssured || e.Expiry != 100 {
				t.Errorf("invalidated template: %+v, want on %d controlling 1, ASSURED, expiry 100", e, a)
			}
		}
		return true
	})
	client, vip := old.Addrs()
	if client.Port() != 0 || vip.Port() != 65535 || !old.Invalidated() || tk.Invalidated() {
		t.Errorf("invalidated template listed as %v -> %v (Invalidated %v), want client port 0, virtual port 65535", client, vip, old.Invalidated())
	}
	if diff := cmp.Diff(counts{Active: 1, Persist: 1}, countsOf(reg, a)); diff != "" {
		t.Errorf("old server's counts (-want +got):\n%s", diff)
	}

	// The old connection ends on the old template, the new one's count
	// stays.
	if !tb.Delete(k1, 20) {
		t.Fatal("Delete(k1) = false")
	}
	if e, ok := tb.Lookup(tk, 20); !ok || e.Controlled != 1 || e.Dest != b {
		t.Errorf("new template after the old connection ended: %+v %v, want on %d controlling 1", e, ok, b)
	}
	if e, ok := tb.Lookup(old, 20); !ok || e.Controlled != 0 {
		t.Errorf("old template after its connection ended: %+v %v, want present controlling 0", e, ok)
	}
	tb.Sweep(100, 1<<10)
	if _, ok := tb.Lookup(old, 100); ok {
		t.Error("the old template outlived its timer")
	}
	if diff := cmp.Diff(counts{}, countsOf(reg, a)); diff != "" {
		t.Errorf("old server's counts at the end (-want +got):\n%s", diff)
	}
}

// TestInvalidateTemplateMerge: a client's second invalidated template of
// the same server joins the first (the table has one entry per key): it
// counts both's connections and lives as long as the longer-lived.
func TestInvalidateTemplateMerge(t *testing.T) {
	tb, reg, ids := newTestTable(t, 64, 1, Options{})
	a := ids[0]
	p := Persistence{Timeout: 100, Netmask: 32}
	tk := p.TemplateKey(testKey(tcp, 1))
	for i, at := range []uint32{0, 50} {
		if err := tb.InsertTemplate(tk, a, p.Timeout, at); err != nil {
			t.Fatal(err)
		}
		k := testKey(tcp, 1)
		k.CPort = uint16(10 + i)
		if _, err := tb.InsertControlled(k, p, at); err != nil {
			t.Fatal(err)
		}
		tb.InvalidateTemplate(tk, at)
	}
	ik := invalidKey(tk, a)
	if e, ok := tb.Lookup(ik, 60); !ok || e.Controlled != 2 || e.Expiry != 150 {
		t.Fatalf("merged template: %+v %v, want controlling 2 until 150", e, ok)
	}
	if tb.Len() != 3 || countsOf(reg, a).Persist != 1 {
		t.Fatalf("Len %d, PersistConn %d; want 3 entries, 1 template counted", tb.Len(), countsOf(reg, a).Persist)
	}
}

// TestFlushNodestInvalidated: the expire_nodest_conn flush of a deleted
// server's connection drops the template that controlled it, the
// invalidated one, and leaves the client's new template alone.
func TestFlushNodestInvalidated(t *testing.T) {
	tb, reg, ids := newTestTable(t, 64, 2, Options{})
	a, b := ids[0], ids[1]
	p := Persistence{Timeout: 100, Netmask: 32}
	k := testKey(tcp, 1)
	tk := p.TemplateKey(k)
	if err := tb.InsertTemplate(tk, a, p.Timeout, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertControlled(k, p, 0); err != nil {
		t.Fatal(err)
	}
	reg.State(b).Available.Store(true)
	reg.State(a).Available.Store(false) // a is deleted
	tb.InvalidateTemplate(tk, 1)
	if err := tb.InsertTemplate(tk, b, p.Timeout, 1); err != nil {
		t.Fatal(err)
	}
	var f Flush
	for !tb.FlushNodest(&f, 2, 1<<10) {
	}
	if e, ok := tb.Lookup(tk, 2); !ok || e.Dest != b {
		t.Fatalf("the client's new template after the flush: %+v %v, want on %d", e, ok, b)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len %d after the flush, want 1 (the new template)", tb.Len())
	}
	if diff := cmp.Diff(counts{}, countsOf(reg, a)); diff != "" {
		t.Fatalf("deleted server's counts (-want +got):\n%s", diff)
	}
}
