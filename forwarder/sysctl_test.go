package forwarder

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/internal/udrtest"
)

// reopts compiles the running rules again with other options, as a daemon
// started with other sysctls would have them.
func (h *harness) reopts(tb testing.TB, rules string, set func(*Options)) {
	tb.Helper()
	set(&h.opts)
	h.reload(tb, rules)
}

// A client reusing its port while the old entry is in FIN_WAIT: mode 1 (the
// default) keeps it on the old server, mode 2 reschedules; mode 0 never
// reschedules, not even from CLOSE.
func TestConnReuseMode(t *testing.T) {
	finish := func(h *harness) {
		// SYN → SYN_RECV, ACK → ESTABLISHED, FIN → FIN_WAIT (input-only).
		h.p.Process(udrtest.TCP(h.toVIP(), client(7), vip80, udrtest.SYN, nil), epoch)
		h.p.Process(udrtest.TCP(h.toVIP(), client(7), vip80, udrtest.ACK, nil), epoch)
		h.p.Process(udrtest.TCP(h.toVIP(), client(7), vip80, udrtest.FIN|udrtest.ACK, nil), epoch)
	}
	for _, tc := range []struct {
		mode    int
		want    []byte // where the port-reusing SYN goes (the first went to rs2)
		resched bool
	}{
		{0, udrtest.RS2MAC, false},
		{1, udrtest.RS2MAC, false},
		{2, udrtest.RS1MAC, true},
		{3, udrtest.RS1MAC, true},
	} {
		h := newHarness(t, rules2, 64)
		mode, err := ConnReuseMode(tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		h.reopts(t, rules2, func(o *Options) { o.ConnReuseMode = mode })
		finish(h)
		v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(7), vip80, udrtest.SYN, nil), epoch)
		if v != VerdictForward || !bytes.Equal(out[:6], tc.want) || h.p.Decision().Resched != tc.resched {
			t.Errorf("conn_reuse_mode %d: SYN on FIN_WAIT: %v to %x resched %v, want %x resched %v", tc.mode, v, out[:6], h.p.Decision().Resched, tc.want, tc.resched)
		}
	}
	if _, err := ConnReuseMode(4); err == nil {
		t.Errorf("conn_reuse_mode 4 accepted")
	}
	// From CLOSE (after a RST) mode 1 reschedules and mode 0 does not.
	for mode, want := range map[int][]byte{0: udrtest.RS2MAC, 1: udrtest.RS1MAC} {
		h := newHarness(t, rules2, 64)
		m, _ := ConnReuseMode(mode)
		h.reopts(t, rules2, func(o *Options) { o.ConnReuseMode = m })
		// SYN, ACK → ESTABLISHED, RST → CLOSE.
		h.p.Process(udrtest.TCP(h.toVIP(), client(8), vip80, udrtest.SYN, nil), epoch)
		h.p.Process(udrtest.TCP(h.toVIP(), client(8), vip80, udrtest.ACK, nil), epoch)
		h.p.Process(udrtest.TCP(h.toVIP(), client(8), vip80, udrtest.RST, nil), epoch)
		if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(8), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], want) {
			t.Errorf("conn_reuse_mode %d: SYN on CLOSE: %v to %x, want %x", mode, v, out[:6], want)
		}
	}
}

// expire_nodest_conn: packets of a deleted server's connection expire the
// entry instead of being dropped until it times out; a SYN reusing the port
// of a quiesced server's connection is rescheduled.
func TestExpireNodestConn(t *testing.T) {
	withoutRS2 := "-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"
	for _, expire := range []bool{false, true} {
		h := newHarness(t, rules2, 64)
		h.reopts(t, rules2, func(o *Options) { o.ExpireNodestConn = expire })
		h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch) // to rs2
		h.reload(t, withoutRS2)
		ack, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch)
		syn, out := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch)
		if !expire && (ack != VerdictDestRemoved || syn != VerdictDestRemoved) {
			t.Errorf("expire_nodest_conn=0: ACK %v, SYN %v; want both dest-removed", ack, syn)
		}
		if expire && (ack != VerdictNoConn || syn != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC)) {
			t.Errorf("expire_nodest_conn=1: ACK %v, SYN %v to %x; want no-conn, then the SYN to rs1", ack, syn, out[:6])
		}
	}
	h := newHarness(t, rules2, 64)
	h.reopts(t, rules2, func(o *Options) { o.ExpireNodestConn = true })
	h.p.Process(udrtest.TCP(h.toVIP(), client(2), vip80, udrtest.SYN, nil), epoch) // to rs2
	h.p.Process(udrtest.TCP(h.toVIP(), client(2), vip80, udrtest.ACK, nil), epoch)
	h.reload(t, "-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 0\n")
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(2), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
		t.Errorf("SYN reusing a quiesced server's connection: %v to %x, want rs1", v, out[:6])
	}
}

// expire_quiescent_template: persistent clients of a quiesced server stay
// with it by default, and move when the sysctl is set.
func TestExpireQuiescentTemplate(t *testing.T) {
	const persistent = "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"
	const quiesced = "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 0\n"
	for expire, want := range map[bool][]byte{false: udrtest.RS2MAC, true: udrtest.RS1MAC} {
		h := newHarness(t, persistent, 64)
		h.reopts(t, persistent, func(o *Options) { o.ExpireQuiescentTemplate = expire })
		h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch) // template → rs2
		h.reload(t, quiesced)
		if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(2), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], want) {
			t.Errorf("expire_quiescent_template=%v: the client's next connection: %v to %x, want %x", expire, v, out[:6], want)
		}
	}
}

// TestExpireNodestConnControlled: with expire_nodest_conn=1, a SYN reusing
// the port of a quiesced server's connection is rescheduled even when a
// persistence template controls that connection (ip_vs_in_hook: only the
// conn_reuse_mode branch, is_new_conn_expected, leaves controlled
// connections alone). The old entry goes and a new one is made through
// the template, which still holds by default (to the quiesced server), and
// not with expire_quiescent_template=1 (to the other server).
func TestExpireNodestConnControlled(t *testing.T) {
	const persistent = "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"
	const quiesced = "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 0\n"
	for quiescent, want := range map[bool][]byte{false: udrtest.RS2MAC, true: udrtest.RS1MAC} {
		h := newHarness(t, persistent, 64)
		h.reopts(t, persistent, func(o *Options) {
			o.ExpireNodestConn = true
			o.ExpireQuiescentTemplate = quiescent
		})
		h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch) // template → rs2
		h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch)
		h.reload(t, quiesced)
		v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch)
		d := h.p.Decision()
		if v != VerdictForward || !bytes.Equal(out[:6], want) || !d.Resched || !d.New {
			t.Errorf("expire_quiescent_template=%v: SYN reusing a controlled connection's port: %v to %x resched %v new %v; want %x, rescheduled, new",
				quiescent, v, out[:6], d.Resched, d.New, want)
		}
	}
}

// TestTemplateInvalidated: a client's next connection after its template's
// server was deleted gets a new template from the scheduler, while the old
// one is re-keyed out of reach (ip_vs_check_template: virtual and
// destination port 65535, client port 0) and stays bound to the deleted
// server, counted in its PersistConn, with its connection, until its own
// timer fires.
func TestTemplateInvalidated(t *testing.T) {
	const both = "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"
	const withoutRS2 = "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"
	h := newHarness(t, both, 64)
	h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch) // template → rs2
	h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch)
	rs2 := h.cur.Load().services[0].servers[0].ID
	h.reload(t, withoutRS2)
	at := epoch.Add(10 * time.Second)
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(2), vip80, udrtest.SYN, nil), at); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
		t.Fatalf("the client's next connection: %v to %x, want rs1", v, out[:6])
	}
	var got []string
	for _, c := range admin.Conns(h.p.Conns(), h.reg, h.p.Ticks(at)) {
		if c.Template {
			got = append(got, fmt.Sprintf("%v %v %v %s %d", c.Client, c.Virtual, c.Dest, c.State, c.Expires))
		}
	}
	slices.Sort(got)
	want := []string{
		"192.0.2.50:0 192.0.2.100:65535 192.0.2.12:65535 ASSURED 290",
		"192.0.2.50:0 192.0.2.100:80 192.0.2.11:80 NONE 300",
	}
	if !slices.Equal(got, want) {
		t.Errorf("templates listed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := h.reg.State(rs2).Persist.Load(); n != 1 {
		t.Errorf("deleted rs2's PersistConn %d, want 1 until its template's timer", n)
	}
}

// TestDefenseReload: a table compiled with other drop_entry and secure_tcp
// modes reaches the connection table at the next Sweep, and a SYN then
// leads to SYNACK (secure_tcp's state table); a table with the same modes
// leaves an automatic mode's state alone.
func TestDefenseReload(t *testing.T) {
	h := newHarness(t, rules2, 64)
	syn := func(port uint16) conntrack.State {
		h.p.Process(udrtest.TCP(h.toVIP(), client(port), vip80, udrtest.SYN, nil), epoch)
		return h.p.Decision().State
	}
	h.p.Sweep(epoch, 64)
	if got := syn(1); got != conntrack.StateSynRecv {
		t.Fatalf("SYN with the defences off: %v, want SYN_RECV", got)
	}
	h.reopts(t, rules2, func(o *Options) {
		o.DropEntry, o.SecureTCP = conntrack.DefenseAuto, conntrack.DefenseAlways
	})
	h.p.Sweep(epoch, 64)
	if de, st := h.p.Conns().Defense(); de != conntrack.DefenseAuto || st != conntrack.DefenseAlways {
		t.Fatalf("after the reload: modes %v, %v, want 1, 3", de, st)
	}
	if got := syn(2); got != conntrack.StateSynAck {
		t.Fatalf("SYN with secure_tcp always on: %v, want SYNACK", got)
	}
	h.p.Conns().SetDefense(conntrack.DefenseAutoOn, conntrack.DefenseAlways) // as under pressure
	h.reload(t, rules2)
	h.p.Sweep(epoch, 64)
	if de, _ := h.p.Conns().Defense(); de != conntrack.DefenseAutoOn {
		t.Fatalf("a reload with the same modes set drop_entry to %v, want it left on (2)", de)
	}
}
