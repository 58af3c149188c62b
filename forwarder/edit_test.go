package forwarder

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/internal/udrtest"
)

// edit compiles rules over the running table as an ipvsadm -e of the real
// servers in edited does: Options.Edited names them for this table only.
func (h *harness) edit(tb testing.TB, rules string, edited ...dest.Key) {
	tb.Helper()
	h.opts.Edited = edited
	defer func() { h.opts.Edited = nil }()
	h.reload(tb, rules)
}

// picks sends n SYNs, each from another client address (so that a
// persistent service schedules each) and port from port on, and names the
// real server each went to: "1" for rs1, "2" for rs2.
func (h *harness) picks(tb testing.TB, svc netip.AddrPort, port uint16, n int) string {
	tb.Helper()
	var got []string
	for i := range n {
		p := port + uint16(i)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(p)}), p)
		v, out := h.p.Process(udrtest.TCP(h.toVIP(), from, svc, udrtest.SYN, nil), epoch)
		switch {
		case v != VerdictForward:
			got = append(got, v.String())
		case string(out[:6]) == string(udrtest.RS1MAC):
			got = append(got, "1")
		case string(out[:6]) == string(udrtest.RS2MAC):
			got = append(got, "2")
		default:
			got = append(got, "?")
		}
	}
	return strings.Join(got, " ")
}

// wrrRules: rs1 (weight 2) added first, then rs2 (weight 1): the list is
// [rs2, rs1], and wrr built by one add_dest per -a picks 2 1 1 2 1 1.
func wrrRules(sched, extra string) string {
	return "-A -t 192.0.2.100:80 -s " + sched + extra + `
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 2
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
`
}

// TestEditServiceNewScheduler: ipvsadm -E that changes the scheduler binds
// the new one with init_service over the whole list (ip_vs_edit_service →
// ip_vs_bind_scheduler): wrr starts with cw = mw at the list head, so rs1
// (weight 2) comes first, not rs2 as after one add_dest per server.
func TestEditServiceNewScheduler(t *testing.T) {
	h := newHarness(t, wrrRules("rr", ""), 64)
	if got, want := h.picks(t, vip80, 1000, 2), "2 1"; got != want {
		t.Fatalf("rr picks %s, want %s", got, want)
	}
	h.reload(t, wrrRules("wrr", ""))
	if got, want := h.picks(t, vip80, 2000, 6), "1 2 1 1 2 1"; got != want {
		t.Errorf("wrr bound by -E picks %s, want %s", got, want)
	}
}

// TestEditServiceKeepsSchedulerState: ipvsadm -E that keeps the scheduler
// and changes -b, -p or -M calls none of the scheduler's hooks: wrr goes on
// from where it was, lblc keeps its cache.
func TestEditServiceKeepsSchedulerState(t *testing.T) {
	for _, extra := range []string{" -b flag-3", " -b flag-1,flag-2", " -p 60"} {
		h := newHarness(t, wrrRules("wrr", ""), 64)
		got := h.picks(t, vip80, 1000, 2)
		h.reload(t, wrrRules("wrr", extra))
		got += " | " + h.picks(t, vip80, 2000, 4)
		if want := "2 1 | 1 2 1 1"; got != want {
			t.Errorf("-E%s: wrr picks %s, want %s", extra, got, want)
		}
	}

	// lblc: the VIP's cache entry names rs2 (the list head, first pick),
	// which keeps one active connection; without the cache the next pick
	// would go to the idle rs1.
	lblc := func(extra string) string {
		return "-A -t 192.0.2.100:80 -s lblc" + extra + `
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
`
	}
	h := newHarness(t, lblc(""), 64)
	if got := h.picks(t, vip80, 1000, 1); got != "2" {
		t.Fatalf("first lblc pick %s, want 2", got)
	}
	first := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1000 % 256)}), 1000)
	h.p.Process(udrtest.TCP(h.toVIP(), first, vip80, udrtest.ACK, nil), epoch)
	h.reload(t, lblc(" -b flag-2"))
	if got := h.picks(t, vip80, 2000, 1); got != "2" {
		t.Errorf("lblc after -E -b: pick %s, want 2 (the cache entry)", got)
	}
}

// TestEditServerNoChange: every ipvsadm -e runs the scheduler's upd_dest,
// even one that changes nothing (__ip_vs_update_dest): wrr's position goes
// back to the list head (ip_vs_wrr_dest_changed). A reload of the same
// rules is no edit and keeps the position.
func TestEditServerNoChange(t *testing.T) {
	rules := wrrRules("wrr", "")
	rs1 := dest.Key{Proto: 6, VIP: vip80, Real: netip.AddrPortFrom(udrtest.RS1, 80)}

	h := newHarness(t, rules, 64)
	got := h.picks(t, vip80, 1000, 1)
	h.edit(t, rules, rs1)
	got += " | " + h.picks(t, vip80, 2000, 3)
	if want := "2 | 2 1 1"; got != want {
		t.Errorf("wrr around a no-op -e: %s, want %s", got, want)
	}

	h = newHarness(t, rules, 64)
	got = h.picks(t, vip80, 1000, 1)
	h.reload(t, rules)
	got += " | " + h.picks(t, vip80, 2000, 3)
	if want := "2 | 1 1 2"; got != want {
		t.Errorf("wrr around a reload of the same rules: %s, want %s", got, want)
	}

	// An edit of another service's server leaves this one alone.
	h = newHarness(t, rules+"-A -t 192.0.2.100:81 -s wrr\n-a -t 192.0.2.100:81 -r 192.0.2.11:81 -g -w 1\n", 64)
	got = h.picks(t, vip80, 1000, 1)
	h.edit(t, rules+"-A -t 192.0.2.100:81 -s wrr\n-a -t 192.0.2.100:81 -r 192.0.2.11:81 -g -w 1\n",
		dest.Key{Proto: 6, VIP: netip.AddrPortFrom(udrtest.VIP, 81), Real: netip.AddrPortFrom(udrtest.RS1, 81)})
	got += " | " + h.picks(t, vip80, 2000, 3)
	if want := "2 | 1 1 2"; got != want {
		t.Errorf("wrr around a -e of another service: %s, want %s", got, want)
	}
}
