package forwarder

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/udrtest"
	"github.com/udr-lb/udr/service"
)

const standbyRules = rules2 + `-A -t [2001:db8::100]:80 -s rr
-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1
`

// peerMAC is the other director of a pair: the active one when this one
// is in standby.
var peerMAC = [6]byte{0x02, 0, 0, 0, 0, 0x99}

// setStandby swaps in the running Table with Options.Standby set to on, as
// the director does.
func (h *harness) setStandby(on bool) { h.cur.Store(h.cur.Load().WithStandby(on)) }

// nsFrame builds a neighbor solicitation from the client (2001:db8::50,
// ClientMAC) for target, to target's solicited-node group, with a source
// link-layer address option and a valid checksum.
func nsFrame(target netip.Addr) []byte {
	src := netip.MustParseAddr("2001:db8::50")
	t16 := target.As16()
	group := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: t16[13], 14: t16[14], 15: t16[15]})
	b := make([]byte, 14+40+32)
	copy(b[0:6], []byte{0x33, 0x33, 0xff, t16[13], t16[14], t16[15]})
	copy(b[6:12], udrtest.ClientMAC)
	binary.BigEndian.PutUint16(b[12:], etherTypeIPv6)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = protoICMPv6, 255
	copy(ip[8:24], src.AsSlice())
	copy(ip[24:40], group.AsSlice())
	msg := ip[40:]
	msg[0] = 135
	copy(msg[8:24], t16[:])
	msg[24], msg[25] = 1, 1 // source link-layer address, 8 bytes
	copy(msg[26:32], udrtest.ClientMAC)
	sum := checksum.Pseudo(ip[8:24], ip[24:40], protoICMPv6, 32)
	binary.BigEndian.PutUint16(msg[2:], checksum.Finish(checksum.Add(sum, msg)))
	return b
}

// TestStandby sends the same frames to a director active, in standby, and
// active again: in standby nothing about a VIP is answered or forwarded
// (VerdictStandby, no frame out), the rest keeps its verdict, and a
// connection made before goes on to its real server afterwards.
func TestStandby(t *testing.T) {
	h := newHarness(t, standbyRules, 1024)
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// An open connection, before the switch.
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(7000), vip80, udrtest.SYN, nil), epoch); v != VerdictForward {
		t.Fatalf("SYN: %v, want forward", v)
	}
	server := slices.Clone(h.p.f.b[:6])
	tests := []struct {
		name    string
		frame   []byte
		active  Verdict
		standby Verdict
	}{
		{"arp who-has vip", udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast}, udrtest.Client, udrtest.VIP), VerdictReply, VerdictStandby},
		{"arp who-has vip unicast", udrtest.ARPRequest(h.toVIP(), udrtest.Client, udrtest.VIP), VerdictReply, VerdictStandby},
		{"arp who-has other", udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast}, udrtest.Client, udrtest.RS1), VerdictARPIgnored, VerdictARPIgnored},
		{"peer's gratuitous arp", arpFrame(1, peerMAC, udrtest.VIP, func(a []byte) { copy(a[24:28], udrtest.VIP.AsSlice()) }), VerdictARPConflict, VerdictStandby},
		{"peer's arp reply", arpFrame(2, peerMAC, udrtest.VIP, nil), VerdictARPConflict, VerdictStandby},
		{"ns for vip6", nsFrame(udrtest.VIP6), VerdictReply, VerdictStandby},
		{"ns for other", nsFrame(netip.MustParseAddr("2001:db8::11")), VerdictNDPIgnored, VerdictNDPIgnored},
		{"peer's unsolicited na", naFrame(udrtest.VIP6, peerMAC, true, nil), VerdictARPConflict, VerdictStandby},
		{"syn", udrtest.TCP(h.toVIP(), client(7001), vip80, udrtest.SYN, nil), VerdictForward, VerdictStandby},
		{"syn to the interface mac", udrtest.TCP(udrtest.Eth{Src: udrtest.ClientMAC, Dst: udrtest.DirectorMAC}, client(7002), vip80, udrtest.SYN, nil), VerdictForward, VerdictStandby},
		{"udp", udrtest.UDP(h.toVIP(), client(5353), vip53, []byte("q")), VerdictForward, VerdictStandby},
		{"no service", udrtest.TCP(h.toVIP(), client(1), netip.AddrPortFrom(udrtest.VIP, 81), udrtest.SYN, nil), VerdictNoService, VerdictStandby},
		{"not vip", udrtest.TCP(h.toVIP(), client(1), netip.MustParseAddrPort("192.0.2.200:80"), udrtest.SYN, nil), VerdictNotVIP, VerdictNotVIP},
		{"other host", udrtest.TCP(udrtest.Eth{Src: udrtest.ClientMAC, Dst: udrtest.RS1MAC}, client(1), vip80, udrtest.SYN, nil), VerdictNotForUs, VerdictNotForUs},
		{"broadcast ip", udrtest.TCP(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast}, client(1), vip80, udrtest.SYN, nil), VerdictMulticast, VerdictMulticast},
	}
	check := func(phase string, want func(int) Verdict) {
		t.Helper()
		for i, tt := range tests {
			v, out := h.p.Process(slices.Clone(tt.frame), epoch)
			if v != want(i) {
				t.Errorf("%s: %s: verdict %v, want %v", phase, tt.name, v, want(i))
			}
			if v == VerdictStandby && out != nil {
				t.Errorf("%s: %s: a frame out in standby", phase, tt.name)
			}
		}
	}
	standby := func(i int) Verdict { return tests[i].standby }
	active := func(i int) Verdict { return tests[i].active }

	h.setStandby(true)
	before := h.p.Stats().Verdicts[VerdictStandby]
	check("standby", standby)
	ack := udrtest.TCP(h.toVIP(), client(7000), vip80, udrtest.ACK, []byte("data"))
	if v, out := h.p.Process(slices.Clone(ack), epoch.Add(time.Second)); v != VerdictStandby || out != nil {
		t.Errorf("standby: ACK of the open connection: %v, want standby and no frame", v)
	}
	n := 0
	for _, tt := range tests {
		if tt.standby == VerdictStandby {
			n++
		}
	}
	if got := h.p.Stats().Verdicts[VerdictStandby] - before; got != uint64(n+1) {
		t.Errorf("standby verdicts counted %d, want %d", got, n+1)
	}

	h.setStandby(false)
	// The connection kept its entry and its real server.
	if v, out := h.p.Process(slices.Clone(ack), epoch.Add(2*time.Second)); v != VerdictForward || !bytes.Equal(out[:6], server) {
		t.Errorf("active again: ACK of the open connection: %v, want forward to %x", v, server)
	} else if d := h.p.Decision(); d.New {
		t.Errorf("active again: ACK of the open connection made a new entry")
	}
	check("active again", active)
}

// TestStandbyLearns: a standby director goes on learning the real
// servers' MACs, so that it forwards at once when it takes over.
func TestStandbyLearns(t *testing.T) {
	h := newHarness(t, standbyRules, 1024)
	h.setStandby(true)
	if v, _ := h.p.Process(arpFrame(2, poisonMAC, udrtest.RS1, nil), epoch); v != VerdictARPIgnored {
		t.Fatalf("ARP reply from rs1: %v, want arp-ignored", v)
	}
	if mac, ok := h.neigh.Lookup(udrtest.RS1); !ok || mac != poisonMAC {
		t.Errorf("rs1's MAC after its ARP reply in standby: %x %v, want %x", mac, ok, poisonMAC)
	}
}

// TestStandbyWithStandby: WithStandby leaves the Table it copies as it
// was, and keeps everything else.
func TestStandbyWithStandby(t *testing.T) {
	h := newHarness(t, standbyRules, 1024)
	t0 := h.cur.Load()
	t1 := t0.WithStandby(true)
	if t0.Options().Standby || !t1.Options().Standby {
		t.Fatalf("Standby: original %v, copy %v; want false, true", t0.Options().Standby, t1.Options().Standby)
	}
	if t1.WithStandby(false).Options().Standby {
		t.Error("WithStandby(false) left Standby set")
	}
	if t0.Config() != t1.Config() || !slices.Equal(t0.VIPs(), t1.VIPs()) || !slices.Equal(t0.DestIDs(), t1.DestIDs()) {
		t.Error("the copy differs from the original in more than Standby")
	}
}

// TestStandbyDoesNotAllocate: the standby verdicts, and the active path
// after a switch and back, allocate nothing.
func TestStandbyDoesNotAllocate(t *testing.T) {
	h := newHarness(t, standbyRules, 1<<16)
	h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch)
	est := udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil)
	arp := udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, udrtest.Client, udrtest.VIP)
	ns := nsFrame(udrtest.VIP6)
	garp := arpFrame(1, peerMAC, udrtest.VIP, nil)
	buf := make([]byte, 2048)
	process := func(frame []byte, want Verdict) {
		n := copy(buf, frame)
		if v, _ := h.p.Process(buf[:n], epoch); v != want {
			t.Fatalf("verdict %v, want %v", v, want)
		}
	}
	for _, tc := range []struct {
		name    string
		standby bool
		frame   []byte
		want    Verdict
	}{
		{"standby established", true, est, VerdictStandby},
		{"standby arp", true, arp, VerdictStandby},
		{"standby ns", true, ns, VerdictStandby},
		{"standby peer's announcement", true, garp, VerdictStandby},
		{"active established", false, est, VerdictForward},
		{"active arp", false, arp, VerdictReply},
	} {
		h.setStandby(tc.standby)
		if a := testing.AllocsPerRun(1000, func() { process(tc.frame, tc.want) }); a != 0 {
			t.Errorf("%s: Process allocs = %v, want 0", tc.name, a)
		}
	}
}

// TestStandbyExplain: the explanation of each standby verdict says what
// was not done.
func TestStandbyExplain(t *testing.T) {
	h := newHarness(t, standbyRules, 1024)
	h.setStandby(true)
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, tt := range []struct {
		frame []byte
		want  string
	}{
		{udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast}, udrtest.Client, udrtest.VIP),
			"standby ARP who-has 192.0.2.100 from 192.0.2.50 (02:00:00:00:00:50): standby, not answered"},
		{arpFrame(2, peerMAC, udrtest.VIP, nil),
			"standby ARP reply 192.0.2.100 from 192.0.2.100 (02:00:00:00:00:99): standby, another host announces the VIP"},
		{nsFrame(udrtest.VIP6), "standby ICMPv6 2001:db8::50 -> ff02::1:ff00:100: standby, not answered"},
		{udrtest.TCP(h.toVIP(), client(7001), vip80, udrtest.SYN, nil), "standby TCP 192.0.2.50:7001 -> 192.0.2.100:80 [S]: standby, not forwarded"},
	} {
		in := slices.Clone(tt.frame)
		h.p.Process(in, epoch)
		x := NewExplainer(h.cur.Load(), h.neigh, h.reg)
		if got := x.Line(h.p.Decision(), in); got != tt.want {
			t.Errorf("explained\n%q\nwant\n%q", got, tt.want)
		}
	}
}

// TestStandbyWorkerGoesOn: in standby the worker still runs the control
// plane's calls (Do: connection sync inserts entries that way) and expires
// connections on their timers.
func TestStandbyWorkerGoesOn(t *testing.T) {
	r := startWorker(t, WorkerConfig{IdleWake: 20 * time.Millisecond}, 1024)
	p := r.h.p
	p.Conns().SetTimeouts(service.Timeouts{UDP: 1})
	start := time.Now()
	if v, _ := p.Process(udrtest.UDP(r.h.toVIP(), client(5353), vip53, []byte("q")), start); v != VerdictForward {
		t.Fatalf("datagram: %v, want forward", v)
	}
	r.h.setStandby(true)
	r.run(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	deadline := time.Now().Add(testTimeout)
	for {
		var n int
		var expired uint64
		var standby bool
		if err := r.w.Do(ctx, func(p *Pipeline, _ time.Time) {
			n, expired, standby = p.Conns().Len(), p.Conns().Stats().Expired, p.table.Load().Options().Standby
		}); err != nil {
			t.Fatalf("Do in standby: %v", err)
		}
		if !standby {
			t.Fatal("the worker's table is not in standby")
		}
		if n == 0 {
			if expired != 1 {
				t.Fatalf("table empty with %d expired, want 1", expired)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection with a 1 s timeout is still there %v after it was made", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSendCutsIdleWait: a frame the control plane queues (the burst of
// announcements of a director that became active) is written at once, not
// when the worker's idle wait ends.
func TestSendCutsIdleWait(t *testing.T) {
	const idle = time.Minute
	r := startWorker(t, WorkerConfig{IdleWake: idle}, 1024)
	r.run(t)
	// Let the worker block in its read with the long wait.
	time.Sleep(100 * time.Millisecond)
	frame := r.arpWhoHas()
	start := time.Now()
	if !r.w.Send(frame) {
		t.Fatal("Send refused the frame")
	}
	select {
	case b := <-r.conn.Out:
		if len(b) != 1 || !bytes.Equal(b[0], frame) {
			t.Fatalf("wrote %d frames, want the one sent", len(b))
		}
		t.Logf("written %v after Send", time.Since(start))
	case <-time.After(testTimeout):
		t.Fatalf("the frame was not written within %v of Send (idle wait %v)", testTimeout, idle)
	}
}
