package forwarder

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/internal/udrtest"
	"github.com/udr-lb/udr/ipvssync"
)

// syncRefRules: TCP and UDP, each plain and persistent, and one-packet UDP
// plain and persistent.
const syncRefRules = `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
-A -t 192.0.2.100:8080 -s rr -p 60
-a -t 192.0.2.100:8080 -r 192.0.2.11:8080 -g -w 1
-a -t 192.0.2.100:8080 -r 192.0.2.12:8080 -g -w 1
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
-a -u 192.0.2.100:53 -r 192.0.2.12:53 -g -w 1
-A -u 192.0.2.100:54 -s rr -p 60
-a -u 192.0.2.100:54 -r 192.0.2.11:54 -g -w 1
-a -u 192.0.2.100:54 -r 192.0.2.12:54 -g -w 1
-A -u 192.0.2.100:55 -s rr -o
-a -u 192.0.2.100:55 -r 192.0.2.11:55 -g -w 1
-a -u 192.0.2.100:55 -r 192.0.2.12:55 -g -w 1
-A -u 192.0.2.100:56 -s rr -o -p 60
-a -u 192.0.2.100:56 -r 192.0.2.11:56 -g -w 1
-a -u 192.0.2.100:56 -r 192.0.2.12:56 -g -w 1
`

// refConn is the kernel's view of a connection (struct ip_vs_conn): its
// state, old_state (the state when it was last synced, 0 when it was
// made: ip_vs_conn_new) and in_pkts.
type refConn struct {
	state      conntrack.State
	oldState   uint16
	pkts       int
	controlled bool
}

// TestSyncPolicyReference checks the data path's sync decisions
// (conntrack's syncPacket, Entry.SyncDue, Pipeline.syncConn and the queue)
// against ipvssync.Policy.Needed, the plain statement of
// ip_vs_sync_conn_needed: random but valid packet sequences from several
// clients to TCP and UDP services, plain, persistent and one-packet, go
// through a pipeline with sync on, and after each packet the records it
// queued must be those that ip_vs_sync_conn, with Needed, would send for
// it, computed from a model of the kernel's connection (state by
// conntrack's INPUT_ONLY table, old_state, in_pkts). Two differences are
// the data path's by design, each allowed only where it applies (see
// below); the test also requires that each kind of decision occurred.
func TestSyncPolicyReference(t *testing.T) {
	for _, tc := range []struct {
		threshold, period int
		persist           bool
		seed              uint64
	}{
		{3, 50, false, 1},
		{3, 50, true, 2},
		{2, 5, false, 3},
		{1, 3, true, 4},
		{6, 7, false, 5},
		{0, 4, false, 6},
	} {
		t.Run(fmt.Sprintf("%d_%d_persist=%v", tc.threshold, tc.period, tc.persist), func(t *testing.T) {
			syncPolicyReference(t, tc.threshold, tc.period, tc.persist, tc.seed)
		})
	}
}

func syncPolicyReference(t *testing.T, threshold, period int, persistMode bool, seed uint64) {
	const packets = 3000
	h := newHarness(t, syncRefRules, 4096)
	q := syncOn(t, h, threshold, period, persistMode, 4096)
	pol := ipvssync.Policy{Threshold: threshold, Period: period}

	type service struct {
		proto      uint8
		port       uint16
		persistent bool
		onePacket  bool
	}
	services := []service{
		{protoTCP, 80, false, false},
		{protoTCP, 8080, true, false},
		{protoUDP, 53, false, false},
		{protoUDP, 54, true, false},
		{protoUDP, 55, false, true},
		{protoUDP, 56, true, true},
	}
	// TCP events: SYN, ACK, data, FIN, RST; ACK and data most often, so
	// that connections run long enough to pass several thresholds.
	type event struct {
		flags int
		data  []byte
	}
	events := []event{
		{udrtest.SYN, nil}, {udrtest.SYN, nil},
		{udrtest.ACK, nil}, {udrtest.ACK, nil}, {udrtest.ACK, nil}, {udrtest.ACK, nil},
		{udrtest.ACK | udrtest.PSH, []byte("data")}, {udrtest.ACK | udrtest.PSH, []byte("data")},
		{udrtest.ACK | udrtest.PSH, []byte("data")}, {udrtest.ACK | udrtest.PSH, []byte("data")},
		{udrtest.ACK | udrtest.PSH, []byte("data")}, {udrtest.ACK | udrtest.PSH, []byte("data")},
		{udrtest.FIN | udrtest.ACK, nil},
		{udrtest.RST, nil}, {udrtest.RST | udrtest.ACK, nil},
	}
	// kernelFlags maps udrtest's TCP flags to the header's bits.
	kernelFlags := func(fl int) uint8 {
		var b uint8
		for _, m := range []struct {
			u int
			k uint8
		}{{udrtest.SYN, conntrack.TCPSyn}, {udrtest.ACK, conntrack.TCPAck}, {udrtest.FIN, conntrack.TCPFin}, {udrtest.RST, conntrack.TCPRst}} {
			if fl&m.u != 0 {
				b |= m.k
			}
		}
		return b
	}

	conns := map[conntrack.Key]*refConn{}
	templates := map[conntrack.Key]int{} // a template's in_pkts
	// What happened, to show that each kind of decision was checked.
	var connRecords, notDue, templateRecords, approximations, copiesSkipped int
	periodic := 0 // connection records past the first period
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := 1; i <= packets; i++ {
		now := epoch.Add(time.Duration(i) * time.Millisecond)
		svc := services[rng.IntN(len(services))]
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + rng.IntN(3))}), uint16(40000+rng.IntN(3)))
		vip := netip.AddrPortFrom(udrtest.VIP, svc.port)
		k := conntrack.NewKey(svc.proto, from, vip)
		var frame []byte
		var ev event
		if svc.proto == protoTCP {
			ev = events[rng.IntN(len(events))]
			frame = udrtest.TCP(h.toVIP(), from, vip, ev.flags, ev.data)
		} else {
			frame = udrtest.UDP(h.toVIP(), from, vip, []byte("q"))
		}
		what := fmt.Sprintf("packet %d, UDP %v -> %v", i, from, vip)
		if svc.proto == protoTCP {
			what = fmt.Sprintf("packet %d, TCP %v -> %v %s", i, from, vip, flagNames(ev.flags))
		}

		// The model: what the kernel's connection does with this packet.
		c := conns[k]
		prev := conntrack.StateNone
		forwarded := true
		switch {
		case svc.onePacket:
			// IP_VS_CONN_F_ONE_PACKET: a connection per datagram, never
			// synced (ip_vs_sync_conn: goto control).
			c = nil
		case svc.proto == protoUDP:
			if c == nil {
				c = &refConn{state: conntrack.StateUDP, controlled: svc.persistent}
				conns[k] = c
			}
			prev = c.state
			c.pkts++
		default:
			fl := kernelFlags(ev.flags)
			if c != nil && fl&conntrack.TCPSyn != 0 && fl&conntrack.TCPRst == 0 && !c.controlled &&
				(c.state == conntrack.StateTimeWait || c.state == conntrack.StateClose) {
				// conn_reuse_mode 1 (is_new_conn_expected): the old
				// connection expires, the SYN makes a new one.
				c = nil
			}
			if c == nil {
				if fl&conntrack.TCPSyn == 0 || fl&conntrack.TCPRst != 0 {
					// tcp_conn_schedule: only a SYN makes a connection.
					forwarded = false
					delete(conns, k)
					break
				}
				c = &refConn{controlled: svc.persistent}
				conns[k] = c
			}
			prev = c.state
			c.state = c.state.Next(fl, false)
			c.pkts++
		}

		h0 := q.head.Load()
		v, _ := h.p.Process(frame, now)
		h1 := q.head.Load()
		if want := map[bool]Verdict{true: VerdictForward, false: VerdictNoConn}[forwarded]; v != want {
			t.Fatalf("%s: verdict %v, want %v", what, v, want)
		}
		var queued []syncEntry
		for j := h0; j != h1; j++ {
			queued = append(queued, q.buf[j&q.mask])
		}
		if c != nil {
			if e, ok := h.p.conns.Lookup(k, h.p.Ticks(now)); !ok || e.State != c.state {
				t.Fatalf("%s: table has %v (%v), the model %v", what, e.State, ok, c.state)
			}
		}

		// ip_vs_sync_conn: the connection's record when Needed says so,
		// then its template's.
		var wantConn bool
		if c != nil {
			// sync_persist_mode: a connection under a template is never
			// sent (ip_vs_sync_conn_needed, in_persistence).
			wantConn = !(persistMode && c.controlled) &&
				pol.Needed(svc.proto, c.state.KernelState(), c.oldState, false, c.pkts)
		}
		var tk conntrack.Key
		wantTemplate := false
		if forwarded && svc.persistent {
			tk = conntrack.Persistence{Netmask: 32}.TemplateKey(k)
			templates[tk]++
			wantTemplate = pol.Needed(svc.proto, 0, 0, true, templates[tk])
		}

		gotConn, gotTemplate := false, false
		for j, e := range queued {
			switch {
			case e.key == k && !gotConn && !gotTemplate:
				gotConn = true
			case svc.persistent && e.key == tk && e.flags&conntrack.FlagTemplate != 0 && !gotTemplate:
				gotTemplate = true
			default:
				t.Fatalf("%s: record %d of %d queued: %+v, want the connection's, then its template's", what, j+1, len(queued), e)
			}
		}
		if c == nil && gotConn {
			t.Fatalf("%s: a connection record queued for a connection the kernel does not sync", what)
		}
		if gotConn != wantConn && gotConn && c.oldState == c.state.KernelState() &&
			pol.Needed(svc.proto, c.state.KernelState(), prev.KernelState(), false, c.pkts) {
			// The known approximation (conntrack/sync.go, syncPacket): the
			// data path compares the state with the one before the packet,
			// the kernel with old_state, the state of the last record. They
			// differ only for a connection that comes back to the state it
			// was last synced in (FIN_WAIT, SYN_RECV, ESTABLISHED, FIN_WAIT
			// again): here the change sends a record, the kernel's does not.
			approximations++
			wantConn = true
		}
		if gotConn != wantConn {
			if persistMode && c.controlled {
				t.Fatalf("%s: connection record queued %v, want none: sync_persist_mode and a template (in_persistence)", what, gotConn)
			}
			t.Fatalf("%s: connection record queued %v, ipvssync.Policy.Needed(proto %d, state %v, oldState %d, pkts %d) = %v",
				what, gotConn, svc.proto, c.state, c.oldState, c.pkts, wantConn)
		}
		if wantConn {
			c.oldState = c.state.KernelState() // ip_vs_sync_conn_needed: set
			connRecords++
			if c.pkts > period {
				periodic++
			}
		} else if c != nil {
			notDue++
		}
		if wantTemplate && !gotTemplate && !gotConn && h1 != q.tail.Load() {
			// The template was asked for but an identical copy of its
			// record waits in the queue, the last one queued
			// (syncQueue.push): the kernel sends both copies.
			last := q.buf[(h1-1)&q.mask]
			te, ok := h.p.conns.Lookup(tk, h.p.Ticks(now))
			if ok && last.key == tk && last.dest == te.Dest && last.state == te.State && last.flags == te.Flags && last.timeout == 60 {
				copiesSkipped++
				wantTemplate = false
			}
		}
		if gotTemplate != wantTemplate {
			t.Fatalf("%s: template (port %d) record queued %v, ipvssync.Policy.Needed(template, pkts %d) = %v",
				what, tk.VPort, gotTemplate, templates[tk], wantTemplate)
		}
		if gotTemplate {
			templateRecords++
		}
		if rng.IntN(8) == 0 {
			q.take() // the control plane drains now and then
		}
	}
	if d := q.dropped.Load(); d != 0 {
		t.Fatalf("%d records dropped: the queue was too small for the test", d)
	}
	t.Logf("%d connection records (%d past the first period), %d not due, %d template records, %d by the approximation, %d template copies skipped",
		connRecords, periodic, notDue, templateRecords, approximations, copiesSkipped)
	// Every kind of decision happened, or the test checked less than it says.
	if connRecords == 0 || periodic == 0 || notDue == 0 || templateRecords == 0 || copiesSkipped == 0 {
		t.Errorf("a kind of decision never happened: %d connection records (%d past the first period), %d not due, %d template records, %d copies skipped",
			connRecords, periodic, notDue, templateRecords, copiesSkipped)
	}
}

// flagNames names udrtest's TCP flags fl.
func flagNames(fl int) string {
	var s string
	for _, f := range []struct {
		bit  int
		name string
	}{{udrtest.SYN, "SYN"}, {udrtest.ACK, "ACK"}, {udrtest.FIN, "FIN"}, {udrtest.RST, "RST"}, {udrtest.PSH, "PSH"}} {
		if fl&f.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += f.name
		}
	}
	return s
}
