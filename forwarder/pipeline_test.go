package forwarder

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/internal/udrtest"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness is a pipeline over a rules text, with rs1 and rs2's MACs known.
type harness struct {
	p     *Pipeline
	cur   atomic.Pointer[Table]
	reg   *dest.Registry
	neigh *Neighbors
	opts  Options
	vmac  [6]byte
}

func newHarness(tb testing.TB, rules string, capacity int) *harness {
	tb.Helper()
	cfg, _, err := admin.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		tb.Fatalf("ParseRules: %v", err)
	}
	h := &harness{reg: dest.NewRegistry(64), neigh: NewNeighbors(64)}
	h.neigh.Set(udrtest.RS1, [6]byte(udrtest.RS1MAC))
	h.neigh.Set(udrtest.RS2, [6]byte(udrtest.RS2MAC))
	h.opts = Options{IfMAC: [6]byte(udrtest.DirectorMAC)}
	h.opts.VIPMAC = arpresponder.VirtualMAC(h.opts.IfMAC)
	h.vmac = h.opts.VIPMAC
	t, err := Compile(cfg, h.reg, h.neigh, nil, h.opts)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	h.cur.Store(t)
	conns := conntrack.New(capacity, h.reg, conntrack.Options{Seed: 1})
	h.p = NewPipeline(PipelineConfig{Table: &h.cur, Conns: conns, Neighbors: h.neigh, Registry: h.reg, Epoch: epoch})
	return h
}

// reload compiles new rules over the running table, as a SIGHUP does.
func (h *harness) reload(tb testing.TB, rules string) {
	tb.Helper()
	cfg, _, err := admin.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		tb.Fatalf("ParseRules: %v", err)
	}
	t, err := Compile(cfg, h.reg, h.neigh, h.cur.Load(), h.opts)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	h.cur.Store(t)
}

func (h *harness) toVIP() udrtest.Eth {
	return udrtest.Eth{Src: udrtest.ClientMAC, Dst: h.vmac[:]}
}

const rules2 = `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
`

var (
	vip80  = netip.AddrPortFrom(udrtest.VIP, 80)
	vip53  = netip.AddrPortFrom(udrtest.VIP, 53)
	client = func(port uint16) netip.AddrPort { return netip.AddrPortFrom(udrtest.Client, port) }
)

func TestForwardRewritesOnlyMACs(t *testing.T) {
	h := newHarness(t, rules2, 1024)
	// rr over [rs2, rs1]: the last added server gets the first connection.
	for i, want := range [][]byte{udrtest.RS2MAC, udrtest.RS1MAC, udrtest.RS2MAC} {
		in := udrtest.TCP(h.toVIP(), client(uint16(40000+i)), vip80, udrtest.SYN, nil)
		orig := slices.Clone(in)
		v, out := h.p.Process(in, epoch)
		if v != VerdictForward {
			t.Fatalf("SYN %d: verdict %v, want forward", i, v)
		}
		if !bytes.Equal(out[0:6], want) || !bytes.Equal(out[6:12], udrtest.DirectorMAC) {
			t.Errorf("SYN %d: MACs dst %x src %x, want dst %x src %x", i, out[0:6], out[6:12], want, []byte(udrtest.DirectorMAC))
		}
		if !bytes.Equal(out[12:], orig[12:]) {
			t.Errorf("SYN %d: bytes after the MACs changed", i)
		}
		// The rest of the connection follows the first packet.
		for _, fl := range []int{udrtest.ACK, udrtest.ACK | udrtest.PSH, udrtest.FIN | udrtest.ACK} {
			v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(uint16(40000+i)), vip80, fl, []byte("x")), epoch.Add(time.Second))
			if v != VerdictForward || !bytes.Equal(out[0:6], want) {
				t.Errorf("SYN %d: flags %#x: verdict %v dst %x, want forward to %x", i, fl, v, out[0:6], want)
			}
		}
	}
}

func TestVerdicts(t *testing.T) {
	h := newHarness(t, rules2, 1024)
	other := udrtest.Eth{Src: udrtest.ClientMAC, Dst: udrtest.RS1MAC}
	bcast := udrtest.Eth{Src: udrtest.ClientMAC, Dst: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	syn := udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil)
	badVersion := slices.Clone(syn)
	badVersion[14] = 0x55
	badCsum := slices.Clone(syn)
	badCsum[14+10] ^= 0xff
	tests := []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"empty", nil, VerdictTruncated},
		{"ethernet only", syn[:14], VerdictTruncated},
		{"ipv4 cut", syn[:30], VerdictTruncated},
		{"bad version", badVersion, VerdictMalformed},
		{"bad header checksum", badCsum, VerdictMalformed},
		{"other host", udrtest.TCP(other, client(1), vip80, udrtest.SYN, nil), VerdictNotForUs},
		{"broadcast ip", udrtest.TCP(bcast, client(1), vip80, udrtest.SYN, nil), VerdictMulticast},
		{"not vip", udrtest.TCP(h.toVIP(), client(1), netip.MustParseAddrPort("192.0.2.200:80"), udrtest.SYN, nil), VerdictNotVIP},
		{"no service", udrtest.TCP(h.toVIP(), client(1), netip.AddrPortFrom(udrtest.VIP, 81), udrtest.SYN, nil), VerdictNoService},
		{"ack without entry", udrtest.TCP(h.toVIP(), client(2), vip80, udrtest.ACK, nil), VerdictNoConn},
		{"rst without entry", udrtest.TCP(h.toVIP(), client(3), vip80, udrtest.RST, nil), VerdictNoConn},
		{"arp who-has vip", udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast.Dst}, udrtest.Client, udrtest.VIP), VerdictReply},
		{"arp who-has other", udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: bcast.Dst}, udrtest.Client, udrtest.RS1), VerdictARPIgnored},
		{"udp new", udrtest.UDP(h.toVIP(), client(5353), vip53, []byte("q")), VerdictForward},
		{"syn", syn, VerdictForward},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := h.p.Process(slices.Clone(tt.frame), epoch)
			if v != tt.want {
				t.Errorf("verdict %v, want %v", v, tt.want)
			}
		})
	}
}

func TestQuiescedServerKeepsItsConnections(t *testing.T) {
	h := newHarness(t, rules2, 1024)
	// The first connection goes to rs2 (head of the list).
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS2MAC) {
		t.Fatalf("first SYN: %v to %x, want forward to rs2", v, out[:6])
	}
	h.reload(t, strings.Replace(rules2, "192.0.2.12:80 -g -w 1", "192.0.2.12:80 -g -w 0", 1))
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS2MAC) {
		t.Errorf("ACK of the open connection: %v to %x, want forward to rs2", v, out[:6])
	}
	for port := uint16(2); port < 6; port++ {
		if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(port), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
			t.Errorf("new SYN %d: %v to %x, want forward to rs1", port, v, out[:6])
		}
	}
	// Removing rs2 stops its connection (expire_nodest_conn=0).
	h.reload(t, strings.Replace(rules2, "-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n", "", 1))
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch); v != VerdictDestRemoved {
		t.Errorf("ACK to a removed server: %v, want dest-removed", v)
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	h := newHarness(t, rules2, 1<<16)
	est := udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil)
	h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch)
	arp := udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, udrtest.Client, udrtest.VIP)
	syn := udrtest.TCP(h.toVIP(), client(1024), vip80, udrtest.SYN, nil)
	port := uint16(1024) // ephemeral ports: port 20 is never scheduled
	buf := make([]byte, 2048)
	// process runs a copy of frame: the pipeline rewrites its input in place.
	process := func(frame []byte, want Verdict) {
		n := copy(buf, frame)
		if v, _ := h.p.Process(buf[:n], epoch); v != want {
			t.Fatalf("verdict %v, want %v", v, want)
		}
	}
	// Alone, and sharing the Table with other workers (the service's
	// lock on new connections).
	for _, shared := range []bool{false, true} {
		h.p.serial = shared
		for _, tc := range []struct {
			name string
			fn   func()
		}{
			{"established", func() { process(est, VerdictForward) }},
			{"arp", func() { process(arp, VerdictReply) }},
			{"syn", func() {
				port++
				syn[14+20] = byte(port >> 8) // a new source port: a new connection
				syn[14+20+1] = byte(port)
				process(syn, VerdictForward)
			}},
		} {
			if a := testing.AllocsPerRun(1000, tc.fn); a != 0 {
				t.Errorf("%s (shared %v): Process allocs = %v, want 0", tc.name, shared, a)
			}
		}
	}
}

// TestUnknownMAC: a real server whose MAC is not known gets no new
// connection (the scheduler passes it by), and a connection whose server's
// MAC is lost is dropped as no-neighbor until it is known again.
func TestUnknownMAC(t *testing.T) {
	h := newHarness(t, rules2, 1024)
	h.neigh.Delete(udrtest.RS2)
	for port := uint16(1); port <= 4; port++ {
		if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(port), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
			t.Fatalf("SYN %d with rs2's MAC unknown: %v to %x, want forward to rs1", port, v, out[:6])
		}
	}
	h.neigh.Set(udrtest.RS2, [6]byte(udrtest.RS2MAC))
	h.neigh.Delete(udrtest.RS1)
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch); v != VerdictNoNeighbor {
		t.Errorf("ACK of rs1's connection with rs1's MAC lost: %v, want no-neighbor", v)
	}
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(9), vip80, udrtest.SYN, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS2MAC) {
		t.Errorf("new SYN with rs1's MAC lost: %v to %x, want forward to rs2", v, out[:6])
	}
	h.neigh.Set(udrtest.RS1, [6]byte(udrtest.RS1MAC))
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
		t.Errorf("ACK once rs1's MAC is known again: %v to %x, want forward to rs1", v, out[:6])
	}
}

// TestOnePacket: every datagram of a one-packet UDP service (-o) is
// scheduled on its own and leaves no connection entry.
func TestOnePacket(t *testing.T) {
	h := newHarness(t, `-A -u 192.0.2.100:53 -s rr -o
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
-a -u 192.0.2.100:53 -r 192.0.2.12:53 -g -w 1
`, 64)
	var got []string
	for range 4 {
		v, out := h.p.Process(udrtest.UDP(h.toVIP(), client(5353), vip53, []byte("q")), epoch)
		if v != VerdictForward {
			t.Fatalf("verdict %v, want forward", v)
		}
		got = append(got, map[bool]string{true: "rs1", false: "rs2"}[bytes.Equal(out[:6], udrtest.RS1MAC)])
	}
	if want := []string{"rs2", "rs1", "rs2", "rs1"}; !slices.Equal(got, want) {
		t.Errorf("datagrams of one client port went to %v, want %v", got, want)
	}
	if n := h.p.Conns().Len(); n != 0 {
		t.Errorf("connection table holds %d entries, want 0", n)
	}
}
