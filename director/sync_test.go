//go:build linux

package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/ipvssync"
	"github.com/udr-lb/udr/service"
)

// fakeSyncTable is the packet workers' side of the sync daemons: records
// queued for DrainSync, a table for DumpSync, and what InsertSynced got.
type fakeSyncTable struct {
	mu       sync.Mutex
	enabled  bool
	queued   []forwarder.SyncRecord
	table    []forwarder.SyncRecord
	inserted []forwarder.SyncRecord
	dumps    int
}

func (f *fakeSyncTable) EnableSync(on bool) { f.mu.Lock(); f.enabled = on; f.mu.Unlock() }

func (f *fakeSyncTable) SyncStats() forwarder.SyncStats { return forwarder.SyncStats{} }

func (f *fakeSyncTable) DrainSync(fn func([]forwarder.SyncRecord)) {
	f.mu.Lock()
	q := f.queued
	f.queued = nil
	f.mu.Unlock()
	if len(q) > 0 {
		fn(q)
	}
}

func (f *fakeSyncTable) InsertSynced(_ context.Context, recs []forwarder.SyncRecord) (forwarder.InsertStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inserted = append(f.inserted, recs...)
	return forwarder.InsertStats{}, nil
}

func (f *fakeSyncTable) DumpSync(_ context.Context, fn func([]forwarder.SyncRecord)) error {
	f.mu.Lock()
	t := append([]forwarder.SyncRecord(nil), f.table...)
	f.dumps++
	f.mu.Unlock()
	for len(t) > 0 {
		n := min(len(t), 100)
		fn(t[:n])
		t = t[n:]
	}
	return nil
}

func (f *fakeSyncTable) queue(recs ...forwarder.SyncRecord) {
	f.mu.Lock()
	f.queued = append(f.queued, recs...)
	f.mu.Unlock()
}

// fakeNet carries the messages of fake senders to fake receivers, as a
// multicast group would (a sender does not hear itself).
type fakeNet struct {
	mu    sync.Mutex
	sent  [][]byte
	recvs map[*fakeReceiver]bool
	opts  []ipvssync.Options // of every socket opened
}

type fakeSender struct {
	n    *fakeNet
	from netip.AddrPort
}

func (s *fakeSender) Send(msg []byte) error {
	b := append([]byte(nil), msg...)
	s.n.mu.Lock()
	s.n.sent = append(s.n.sent, b)
	var rs []*fakeReceiver
	for r := range s.n.recvs {
		if r.self != s.from {
			rs = append(rs, r)
		}
	}
	s.n.mu.Unlock()
	for _, r := range rs {
		r.ch <- b
	}
	return nil
}

func (s *fakeSender) Close() error { return nil }

type fakeReceiver struct {
	n    *fakeNet
	self netip.AddrPort
	ch   chan []byte
	fn   func(netip.AddrPort, uint8, []ipvssync.Conn)
}

func (r *fakeReceiver) Stats() ipvssync.ReceiverStats { return ipvssync.ReceiverStats{} }

func (r *fakeReceiver) Run(ctx context.Context) error {
	defer func() {
		r.n.mu.Lock()
		delete(r.n.recvs, r)
		r.n.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-r.ch:
			syncid, conns, err := ipvssync.Decode(b, nil)
			if err != nil {
				return err
			}
			r.fn(netip.AddrPort{}, syncid, conns)
		}
	}
}

func (n *fakeNet) messages() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]byte(nil), n.sent...)
}

var (
	syncVIP    = netip.MustParseAddrPort("192.0.2.100:80")
	syncReal1  = netip.MustParseAddrPort("192.0.2.11:80")
	syncReal2  = netip.MustParseAddrPort("192.0.2.12:80")
	syncSvcKey = service.Key{Proto: service.TCP, Addr: syncVIP.Addr(), Port: 80}
)

// newTestSync is a syncDaemons over table and net, on a host whose only
// interface is eth0 (MTU 1500); self names its sockets.
func newTestSync(t *testing.T, table *fakeSyncTable, n *fakeNet, self string, log io.Writer) *syncDaemons {
	sd := newSyncDaemons(slog.New(slog.NewTextHandler(log, nil)), table)
	sd.mtu = func(iface string) (int, error) {
		if iface != "eth0" {
			return 0, errors.New("no such interface")
		}
		return 1500, nil
	}
	from := netip.MustParseAddrPort(self)
	sd.sockets = syncSockets{
		sender: func(o ipvssync.Options) (syncSender, error) {
			n.mu.Lock()
			n.opts = append(n.opts, o)
			n.mu.Unlock()
			return &fakeSender{n: n, from: from}, nil
		},
		receiver: func(o ipvssync.Options, fn func(netip.AddrPort, uint8, []ipvssync.Conn)) (syncReceiver, error) {
			r := &fakeReceiver{n: n, self: from, ch: make(chan []byte, 1024), fn: fn}
			// Listening from now on, as NewReceiver's sockets are.
			n.mu.Lock()
			n.opts = append(n.opts, o)
			n.recvs[r] = true
			n.mu.Unlock()
			return r, nil
		},
	}
	return sd
}

// conn is an established TCP connection from client port cport to
// syncVIP, bound to real.
func conn(cport uint16, real netip.AddrPort, state conntrack.State, active bool) forwarder.SyncRecord {
	r := forwarder.SyncRecord{
		Key:     conntrack.NewKey(6, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.50"), cport), syncVIP),
		Dest:    syncSvcKey.DestKey(service.Dest{Addr: real.Addr(), Port: real.Port()}),
		State:   state,
		Timeout: 900,
	}
	if active {
		r.Flags = conntrack.FlagActive
	}
	return r
}

func runSync(t *testing.T, sd *syncDaemons, s config.Sync) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sd.run(ctx, s, "eth0")
	}()
	<-sd.ready
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The records the master sends reach the backup, which inserts them bound
// to the same real servers, with the same state, activity and timeout;
// templates and UDP state numbers cross as the kernel's.
func TestSyncMasterToBackup(t *testing.T) {
	n := &fakeNet{recvs: make(map[*fakeReceiver]bool)}
	ta, tb := &fakeSyncTable{}, &fakeSyncTable{}
	var la, lb strings.Builder
	a := newTestSync(t, ta, n, "192.0.2.2:8848", &la)
	b := newTestSync(t, tb, n, "192.0.2.3:8848", &lb)
	s := config.DefaultSync()
	s.Backup = true
	runSync(t, b, s)
	waitFor(t, "warm backup (no peer answers)", b.isWarm)
	s.Master, s.Backup = true, false
	runSync(t, a, s)
	if !ta.enabled {
		t.Fatal("a master does not turn the workers' sync on")
	}
	tmpl := conn(0, syncReal2, conntrack.StateAssured, false)
	tmpl.Key.Template = true
	tmpl.Flags = conntrack.FlagTemplate
	tmpl.Timeout = 360
	want := []forwarder.SyncRecord{
		conn(40000, syncReal1, conntrack.StateEstablished, true),
		conn(40001, syncReal2, conntrack.StateFinWait, false),
		tmpl,
	}
	ta.queue(want...)
	// Three connections fill no message: it goes after flushTime.
	start := time.Now()
	waitFor(t, "insert on the backup", func() bool { tb.mu.Lock(); defer tb.mu.Unlock(); return len(tb.inserted) == 3 })
	if took := time.Since(start); took < flushTime-drainInterval {
		t.Errorf("a partial message went after %v, before the flush time %v", took, flushTime)
	}
	tb.mu.Lock()
	got := tb.inserted
	tb.mu.Unlock()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("inserted %d:\n%+v\nwant\n%+v", i, got[i], want[i])
		}
	}
	msgs := n.messages()
	if len(msgs) != 2 { // the backup's hello, then one message
		t.Fatalf("%d messages on the wire, want the hello and one", len(msgs))
	}
	_, conns, err := ipvssync.Decode(msgs[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFlags := []uint32{0x0083, 0x0183, 0x1083}
	for i, c := range conns {
		if c.Flags != wantFlags[i] {
			t.Errorf("conn %d flags %#x, want %#x", i, c.Flags, wantFlags[i])
		}
	}
	if conns[1].State != 4 || conns[2].State != ipvssync.TemplateAssured {
		t.Errorf("states %d, %d: want FIN_WAIT (4) and ASSURED (1)", conns[1].State, conns[2].State)
	}
	snap := b.snapshot()
	if snap.ReceivedMessages != 1 || snap.ReceivedConns != 3 || !snap.Backup || snap.Master {
		t.Errorf("backup's counters %+v", snap)
	}
	if snap := a.snapshot(); snap.SentMessages != 1 || snap.SentConns != 3 {
		t.Errorf("master's counters %+v", snap)
	}
}

// A full message goes at once, without waiting for the flush time.
func TestSyncFullMessage(t *testing.T) {
	n := &fakeNet{recvs: make(map[*fakeReceiver]bool)}
	ta := &fakeSyncTable{}
	a := newTestSync(t, ta, n, "192.0.2.2:8848", io.Discard)
	s := config.DefaultSync()
	s.Master, s.MaxLen = true, ipvssync.HeaderLen+10*ipvssync.ConnLenV4
	runSync(t, a, s)
	var recs []forwarder.SyncRecord
	for i := range 25 {
		recs = append(recs, conn(uint16(30000+i), syncReal1, conntrack.StateEstablished, true))
	}
	ta.queue(recs...)
	waitFor(t, "two full messages", func() bool { return len(n.messages()) >= 2 })
	msgs := n.messages()
	for _, m := range msgs[:2] {
		if len(m) != s.MaxLen || m[4] != 10 {
			t.Errorf("full message of %d bytes and %d connections, want %d and 10", len(m), m[4], s.MaxLen)
		}
	}
	waitFor(t, "the last five", func() bool { return len(n.messages()) == 3 })
	if m := n.messages()[2]; m[4] != 5 {
		t.Errorf("last message has %d connections, want 5", m[4])
	}
}

// A director whose master runs answers a starting backup's hello with its
// whole table; the starting director is warm once that came.
func TestSyncResync(t *testing.T) {
	n := &fakeNet{recvs: make(map[*fakeReceiver]bool)}
	ta, tb := &fakeSyncTable{}, &fakeSyncTable{}
	var lb strings.Builder
	b := newTestSync(t, tb, n, "192.0.2.3:8848", &lb)
	for i := range 500 {
		tb.table = append(tb.table, conn(uint16(20000+i), []netip.AddrPort{syncReal1, syncReal2}[i%2], conntrack.StateEstablished, true))
	}
	both := config.DefaultSync()
	both.Master, both.Backup = true, true
	runSync(t, b, both)
	waitFor(t, "warm", b.isWarm)

	var la strings.Builder
	a := newTestSync(t, ta, n, "192.0.2.2:8848", &la)
	start := time.Now()
	runSync(t, a, both)
	waitFor(t, "the resync", a.isWarm)
	took := time.Since(start)
	ta.mu.Lock()
	got := len(ta.inserted)
	ta.mu.Unlock()
	if got != 500 {
		t.Fatalf("after the resync the starting director has %d connections, want 500\n%s", got, la.String())
	}
	if !strings.Contains(la.String(), "received the peers' connection table") {
		t.Errorf("warm after %v, not by the peer's answer; log:\n%s", took, la.String())
	}
	if !strings.Contains(lb.String(), "sent the connection table to a peer that started") || !strings.Contains(lb.String(), "conns=500") {
		t.Errorf("the answering director's log:\n%s", lb.String())
	}
	if s := b.snapshot(); s.Resyncs != 1 || s.ResyncConns != 500 || s.HellosReceived != 1 {
		t.Errorf("answering director's counters %+v", s)
	}
}

// Start, Stop and Daemons answer as the kernel: EEXIST, ESRCH, ENODEV.
func TestSyncDaemonErrors(t *testing.T) {
	n := &fakeNet{recvs: make(map[*fakeReceiver]bool)}
	var log strings.Builder
	sd := newTestSync(t, &fakeSyncTable{}, n, "192.0.2.2:8848", &log)
	if err := sd.Start(admin.Daemon{State: "master", McastInterface: "eth0"}); err == nil {
		t.Error("a daemon started before the director runs")
	}
	stop := runSync(t, sd, config.DefaultSync())
	check := func(err error, errno syscall.Errno, msg string) {
		t.Helper()
		var ke *admin.KernelError
		if !errors.As(err, &ke) || ke.Errno != errno || ke.Msg != msg {
			t.Errorf("got %v, want %v %q", err, errno, msg)
		}
	}
	check(sd.Start(admin.Daemon{State: "backup", McastInterface: "eth9"}), syscall.ENODEV, "No such device")
	if err := sd.Start(admin.Daemon{State: "master", McastInterface: "eth0", SyncID: 4}); err != nil {
		t.Fatal(err)
	}
	check(sd.Start(admin.Daemon{State: "master", McastInterface: "eth0"}), syscall.EEXIST, "Daemon has already run")
	if err := sd.Start(admin.Daemon{State: "backup", McastInterface: "eth0"}); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, d := range sd.Daemons() {
		got += admin.DaemonLine(d)
	}
	want := "master sync daemon (mcast=eth0, syncid=4, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	if got != want {
		t.Errorf("daemons:\n%swant\n%s", got, want)
	}
	if err := sd.Stop("master"); err != nil {
		t.Fatal(err)
	}
	check(sd.Stop("master"), syscall.ESRCH, "No daemon is running")
	stop()
	if d := sd.Daemons(); len(d) != 0 {
		t.Errorf("daemons after the director stopped: %v", d)
	}
	for _, line := range []string{`msg="sync daemon started" state=master mcast=eth0 syncid=4`, `msg="sync daemon stopped" state=master`,
		`msg="sync daemon stopped" state=backup mcast=eth0 syncid=0 why="the director stops"`} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("no %q in the log:\n%s", line, log.String())
		}
	}
}

// apply starts, restarts and stops daemons as the settings change, and
// leaves alone those whose options did not.
func TestSyncApply(t *testing.T) {
	n := &fakeNet{recvs: make(map[*fakeReceiver]bool)}
	var log strings.Builder
	sd := newTestSync(t, &fakeSyncTable{}, n, "192.0.2.2:8848", &log)
	s := config.DefaultSync()
	s.Master = true
	runSync(t, sd, s)
	states := func() string {
		var out []string
		for _, d := range sd.Daemons() {
			out = append(out, fmt.Sprintf("%s/%d", d.State, d.SyncID))
		}
		return strings.Join(out, ",")
	}
	if got := states(); got != "master/0" {
		t.Fatalf("daemons %s, want master/0", got)
	}
	starts := func() int { return strings.Count(log.String(), "sync daemon started") }
	sd.apply(s, "eth0")
	if starts() != 1 {
		t.Errorf("an unchanged setting restarted the daemon")
	}
	s.Backup, s.SyncID = true, 5
	sd.apply(s, "eth0")
	if got := states(); got != "master/5,backup/5" || starts() != 3 {
		t.Errorf("daemons %s after %d starts, want master/5,backup/5 after 3", got, starts())
	}
	s.Master = false
	s.Peers = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.3:8848")}
	sd.apply(s, "eth0")
	if got := states(); got != "backup/5" || starts() != 4 {
		t.Errorf("daemons %s after %d starts, want backup/5 after 4 (new peers)", got, starts())
	}
	// group: none with peers: the sockets get no group, and the listing
	// none either.
	s.Group = netip.Addr{}
	sd.apply(s, "eth0")
	n.mu.Lock()
	last := n.opts[len(n.opts)-1]
	n.mu.Unlock()
	if last.Group.IsValid() || len(last.Peers) != 1 || starts() != 5 {
		t.Errorf("group none: options %+v after %d starts, want no group and one peer after 5", last, starts())
	}
	if got, want := admin.DaemonLine(sd.Daemons()[0]), "backup sync daemon (mcast=eth0, syncid=5, maxlen=1472, port=8848, ttl=1)\n"; got != want {
		t.Errorf("group none: %q, want %q", got, want)
	}
	s.Interface = "eth7"
	sd.apply(s, "eth0")
	if !strings.Contains(log.String(), `msg="sync daemon not started" state=backup iface=eth7`) {
		t.Errorf("a daemon on a missing interface is not logged:\n%s", log.String())
	}
}

// Received records that udr cannot keep are dropped by reason; the others
// convert to the records the master sends back.
func TestSyncFromWire(t *testing.T) {
	base := ipvssync.Conn{Protocol: 6, Flags: 0x83, State: 1, Client: netip.MustParseAddrPort("192.0.2.50:40000"),
		VIP: syncVIP, Dest: syncReal1, Timeout: 900}
	for _, c := range []struct {
		mod    func(*ipvssync.Conn)
		reason string
	}{
		{func(c *ipvssync.Conn) {}, ""},
		{func(c *ipvssync.Conn) { c.Fwmark = 7 }, dropFwmark},
		{func(c *ipvssync.Conn) { c.Flags |= ipvssync.FlagNoCPort }, dropNoCPort},
		{func(c *ipvssync.Conn) { c.Protocol = 132 }, dropSkipped},
	} {
		cc := base
		c.mod(&cc)
		r, reason := fromWire(&cc)
		if reason != c.reason {
			t.Errorf("%+v: reason %q, want %q", cc, reason, c.reason)
			continue
		}
		if reason == "" {
			want := conn(40000, syncReal1, conntrack.StateEstablished, true)
			if r != want {
				t.Errorf("record %+v, want %+v", r, want)
			}
			if back := toWire(&r); back != base {
				t.Errorf("back to the wire: %+v, want %+v", back, base)
			}
		}
	}
}
