package ipvssync

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/internal/netlab"
)

// received is one call of a Receiver's function.
type received struct {
	from   netip.AddrPort
	syncid uint8
	conns  []Conn
}

// syncLab is two hosts on one bridge: a (192.0.2.1, 2001:db8::1) and b
// (192.0.2.2, 2001:db8::2), each on eth0.
func syncLab(t *testing.T) (a, b *netlab.Host) {
	t.Helper()
	lab := netlab.ForTest(t, "sync")
	var err error
	if a, err = lab.AddHost("a"); err != nil {
		t.Fatal(err)
	}
	if b, err = lab.AddHost("b"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(a, "eth0", netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64")); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(b, "eth0", netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("2001:db8::2/64")); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// startReceiver opens a Receiver in h and runs it until the test ends.
func startReceiver(t *testing.T, h *netlab.Host, o Options) (*Receiver, <-chan received) {
	t.Helper()
	ch := make(chan received, 16)
	var r *Receiver
	err := h.Run(func() error {
		var err error
		r, err = NewReceiver(o, func(from netip.AddrPort, syncid uint8, conns []Conn) {
			select {
			case ch <- received{from, syncid, slices.Clone(conns)}:
			default:
			}
		})
		return err
	})
	if err != nil {
		t.Fatalf("NewReceiver(%+v): %v", o, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after its context was cancelled")
		}
		r.Close()
	})
	return r, ch
}

func newSender(t *testing.T, h *netlab.Host, o Options) *Sender {
	t.Helper()
	var s *Sender
	err := h.Run(func() error {
		var err error
		s, err = NewSender(o)
		return err
	})
	if err != nil {
		t.Fatalf("NewSender(%+v): %v", o, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sendUntil sends msg every 200 ms (the first datagrams may go before
// the group is joined or the neighbour is known) until a message arrives
// on ch, for at most 10 s.
func sendUntil(t *testing.T, s *Sender, msg []byte, ch <-chan received) received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.Send(msg); err != nil {
			t.Logf("Send: %v", err)
		}
		select {
		case got := <-ch:
			return got
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("nothing received in 10 s (sender %+v)", s.Stats())
	return received{}
}

// waitStats polls r's counters until cond holds, for at most 10 s.
func waitStats(t *testing.T, r *Receiver, what string, cond func(ReceiverStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(r.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen in 10 s; stats %+v", what, r.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func goldenMsg(t *testing.T, name string) ([]byte, []Conn) {
	t.Helper()
	for _, g := range goldens() {
		if g.name == name {
			return unhex(t, g.dump), wireConns(g.conns)
		}
	}
	t.Fatalf("no golden %q", name)
	return nil, nil
}

func checkReceived(t *testing.T, got received, from netip.Addr, syncid uint8, conns []Conn) {
	t.Helper()
	if got.from.Addr() != from || got.syncid != syncid {
		t.Errorf("received from %s syncid %d, want from %s syncid %d", got.from, got.syncid, from, syncid)
	}
	if diff := cmp.Diff(conns, got.conns, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("conns (-want +got):\n%s", diff)
	}
}

func TestPrivilegedSync(t *testing.T) {
	a, b := syncLab(t)
	hostA := netip.MustParseAddr("192.0.2.1")
	several, severalConns := goldenMsg(t, "several")

	t.Run("multicast", func(t *testing.T) {
		r, ch := startReceiver(t, b, Options{Interface: "eth0"})
		s := newSender(t, a, Options{Interface: "eth0", SyncID: 5})
		if got := s.Destinations(); !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("224.0.0.81:8848")}) {
			t.Fatalf("destinations %v, want [224.0.0.81:8848]", got)
		}
		// The IPv4 socket is bound to eth0's address (bind_mcastif_addr).
		checkReceived(t, sendUntil(t, s, several, ch), hostA, 5, severalConns)
		// A hello reaches fn with no connections.
		got := sendUntil(t, s, AppendHello(nil, 5), ch)
		if len(got.conns) != 0 || got.syncid != 5 {
			t.Errorf("hello received as %+v", got)
		}
		if st := r.Stats(); st.Messages < 2 || st.Conns < 4 {
			t.Errorf("stats %+v, want at least 2 messages and 4 conns", st)
		}
	})

	t.Run("unicast", func(t *testing.T) {
		peers := []netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:8848"), netip.MustParseAddrPort("192.0.2.2:8848"),
			netip.MustParseAddrPort("[2001:db8::1]:8848"), netip.MustParseAddrPort("[2001:db8::2]:8848"),
		}
		_, ch := startReceiver(t, b, Options{Peers: peers})
		// Every director lists every director: a leaves itself out.
		s := newSender(t, a, Options{Peers: peers, SyncID: 5})
		want := []netip.AddrPort{peers[1], peers[3]}
		if got := s.Destinations(); !slices.Equal(got, want) {
			t.Fatalf("destinations %v, want %v (no multicast, not itself)", got, want)
		}
		msg, conns := goldenMsg(t, "tcp4")
		// Each message goes to both of b's addresses: two arrivals.
		got := []received{sendUntil(t, s, msg, ch)}
		select {
		case r := <-ch:
			got = append(got, r)
		case <-time.After(10 * time.Second):
			t.Fatal("second copy (the other family) not received in 10 s")
		}
		var froms []netip.Addr
		for _, r := range got {
			checkReceived(t, r, r.from.Addr(), 5, conns)
			froms = append(froms, r.from.Addr())
		}
		slices.SortFunc(froms, netip.Addr.Compare)
		if !slices.Equal(froms, []netip.Addr{hostA, netip.MustParseAddr("2001:db8::1")}) {
			t.Errorf("received from %v, want 192.0.2.1 and 2001:db8::1", froms)
		}
	})

	t.Run("syncid", func(t *testing.T) {
		r, ch := startReceiver(t, b, Options{Interface: "eth0", SyncID: 7})
		s := newSender(t, a, Options{Interface: "eth0"})
		// Wait until b gets messages at all (group joined), with syncid 7.
		msg7 := bytes.Clone(several)
		msg7[hSyncID] = 7
		checkReceived(t, sendUntil(t, s, msg7, ch), hostA, 7, severalConns)
		if err := s.Send(several); err != nil { // syncid 5
			t.Fatal(err)
		}
		waitStats(t, r, "syncid drop", func(st ReceiverStats) bool { return st.Drops[DropSyncID] >= 1 })
		select {
		case got := <-ch:
			t.Fatalf("message with syncid 5 passed to fn: %+v", got)
		default:
		}
	})

	t.Run("bad datagrams", func(t *testing.T) {
		r, ch := startReceiver(t, b, Options{Interface: "eth0"})
		s := newSender(t, a, Options{Interface: "eth0"})
		v0 := unhex(t, v0Message)
		_, v0conns, err := Decode(v0, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A version 0 message is accepted.
		checkReceived(t, sendUntil(t, s, v0, ch), hostA, 5, v0conns)
		// A truncated message: the size field says 224.
		if err := s.Send(several[:100]); err != nil {
			t.Fatal(err)
		}
		waitStats(t, r, "truncated message", func(st ReceiverStats) bool { return st.Drops[DropSize] >= 1 })
		// Longer than the backup's buffer, max(MTU 1500, 1500) - 28.
		long := make([]byte, 1473)
		long[hSize], long[hSize+1] = 1473>>8, 1473&0xff
		if err := s.Send(long); err != nil {
			t.Fatal(err)
		}
		waitStats(t, r, "datagram over 1472 bytes", func(st ReceiverStats) bool { return st.Drops[DropTooLong] >= 1 })
		// Exactly 1472 bytes fits: a version 1 message of 0 conns and
		// trailing bytes is a valid (if odd) message.
		fits := AppendHello(make([]byte, 0, 1472), 5)
		fits = fits[:1472]
		fits[hSize], fits[hSize+1] = 1472>>8, 1472&0xff
		if got := sendUntil(t, s, fits, ch); len(got.conns) != 0 {
			t.Errorf("1472-byte message: %+v", got)
		}
		// A malformed record drops the message.
		bad := bytes.Clone(several)
		bad[HeaderLen] = 2 // record type
		if err := s.Send(bad); err != nil {
			t.Fatal(err)
		}
		waitStats(t, r, "bad record", func(st ReceiverStats) bool { return st.Drops[DropRecord] >= 1 })
		select {
		case got := <-ch:
			t.Fatalf("bad datagram passed to fn: %+v", got)
		default:
		}
	})

	t.Run("own", func(t *testing.T) {
		// A datagram from one of b's own addresses to b.
		r, _ := startReceiver(t, b, Options{Peers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:8848")}})
		err := b.Run(func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2)}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: DefaultPort})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(several)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		waitStats(t, r, "own message", func(st ReceiverStats) bool { return st.Drops[DropOwn] >= 1 })
		if st := r.Stats(); st.Messages != 0 {
			t.Errorf("own message accepted: %+v", st)
		}
	})
}

// TestReceiverHandleAllocs: a datagram costs no allocation, accepted or
// dropped.
func TestReceiverHandleAllocs(t *testing.T) {
	var n int
	r := &Receiver{o: Options{SyncID: 5}, fn: func(_ netip.AddrPort, _ uint8, conns []Conn) { n += len(conns) }}
	s := &recvSock{maxLen: 1472, conns: make([]Conn, 0, maxConns)}
	several, _ := goldenMsg(t, "several")
	other := bytes.Clone(several)
	other[hSyncID] = 6
	from := netip.MustParseAddrPort("192.0.2.1:40000")
	for _, b := range [][]byte{several, other, several[:50], unhex(t, v0Message)} {
		if a := testing.AllocsPerRun(100, func() { r.handle(s, from, b) }); a != 0 {
			t.Errorf("handle(%x...) allocs = %v, want 0", b[:8], a)
		}
	}
	st := r.Stats()
	if st.Messages == 0 || st.Drops[DropSyncID] == 0 || st.Drops[DropSize] == 0 || n == 0 {
		t.Fatalf("stats %+v, %d conns: want messages and syncid and size drops", st, n)
	}
}

func TestOptions(t *testing.T) {
	v6 := Options{Group: netip.MustParseAddr("ff02::51"), Interface: "eth0"}
	tests := []struct {
		name       string
		o          Options
		send, recv int // recv for an MTU of 9000
	}{
		{"defaults", Options{Interface: "eth0"}, 1472, 8972},
		{"IPv6 group", v6, 1452, 8952},
		{"IPv6 peer only", Options{Peers: []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:8848")}}, 1452, 8952},
		{"maxlen 100", Options{Interface: "eth0", MaxLen: 100}, 100, 1024},
		{"maxlen 70000", Options{Interface: "eth0", MaxLen: 70000}, 65507, 65507},
	}
	for _, tt := range tests {
		if got := tt.o.SendMaxLen(); got != tt.send {
			t.Errorf("%s: SendMaxLen = %d, want %d", tt.name, got, tt.send)
		}
		if got := tt.o.recvLen(9000); got != tt.recv {
			t.Errorf("%s: recvLen(9000) = %d, want %d", tt.name, got, tt.recv)
		}
		if err := tt.o.check(); err != nil {
			t.Errorf("%s: check: %v", tt.name, err)
		}
	}
	for name, o := range map[string]Options{
		"group without interface": {},
		"unicast group":           {Interface: "eth0", Group: netip.MustParseAddr("192.0.2.1")},
		"TTL 256":                 {Interface: "eth0", TTL: 256},
		"peer without port":       {Peers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")}},
	} {
		if err := o.check(); err == nil {
			t.Errorf("%s: check accepted %+v", name, o)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestSenderSocketOptions: the sending socket is set up as make_send_sock
// sets it: multicast loop off, TTL, fragmentation allowed, bound to the
// interface's address. (IP_MULTICAST_IF is set by interface index, which
// getsockopt does not return; TestPrivilegedSync's multicast case needs
// it: its namespaces have no route to 224.0.0.81.)
func TestSenderSocketOptions(t *testing.T) {
	s, err := NewSender(Options{Interface: "lo", TTL: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rc, err := s.v4.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var loop, ttl, pmtu int
	var gerr error
	rc.Control(func(fd uintptr) {
		f := int(fd)
		if loop, gerr = unix.GetsockoptInt(f, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP); gerr != nil {
			return
		}
		if ttl, gerr = unix.GetsockoptInt(f, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL); gerr != nil {
			return
		}
		pmtu, gerr = unix.GetsockoptInt(f, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	if loop != 0 || ttl != 3 || pmtu != unix.IP_PMTUDISC_DONT {
		t.Fatalf("IP_MULTICAST_LOOP %d, IP_MULTICAST_TTL %d, IP_MTU_DISCOVER %d; want 0, 3, %d",
			loop, ttl, pmtu, unix.IP_PMTUDISC_DONT)
	}
	if got := s.v4.LocalAddr().(*net.UDPAddr).IP; !got.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("bound to %v, want lo's address 127.0.0.1 (bind_mcastif_addr)", got)
	}
}
