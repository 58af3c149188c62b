//go:build linux

package director

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/ipvssync"
	"github.com/udr-lb/udr/metrics"
)

// The connection sync daemons: ipvsadm --start-daemon master|backup, on
// the kernel's wire format (package ipvssync).
//
// The master drains, every drainInterval, the connections the packet
// workers queued for sync (forwarder.Workers.DrainSync: the kernel's
// ip_vs_sync_conn decisions), fills messages of at most maxlen bytes and
// sends each when it is full, or when its first connection has waited
// flushTime (IPVS_SYNC_FLUSH_TIME). The backup receives messages, binds
// each connection to the local real server of the same service, address
// and port, and inserts it as the kernel's backup does
// (forwarder.Workers.InsertSynced).
//
// Beyond the kernel, without changing the wire format: a backup that
// starts sends a hello (a version 1 message with no connection) to its
// group and peers; a director whose master runs answers a hello with its
// whole table (forwarder.Workers.DumpSync), at most one dump at a time and
// one every dumpInterval. Warm reports when the first such resync is done.
const (
	drainInterval = 100 * time.Millisecond
	flushTime     = 2 * time.Second // IPVS_SYNC_FLUSH_TIME
	// dumpInterval is the least time between the starts of two dumps of
	// the table: hellos that come meanwhile are answered by one dump
	// after it.
	dumpInterval = 2 * time.Second
	// dumpBurst messages are sent, then the dump waits dumpPause: about
	// 6,400 messages a second, 9 MB/s of 1472-byte messages, which a
	// backup's socket buffer absorbs.
	dumpBurst = 64
	dumpPause = 10 * time.Millisecond

	// WarmQuiet is how long the messages must pause, once the first
	// came after the hello, for the initial resync to count as done;
	// WarmNoPeer how long a backup waits for a first message before it
	// counts the resync as done with no peer answering; WarmMax bounds
	// the wait whatever comes.
	WarmQuiet  = time.Second
	WarmNoPeer = 3 * time.Second
	WarmMax    = 30 * time.Second
)

// Reasons for which sync messages or connections are dropped, as the
// udr_sync_dropped_total metric labels them.
const (
	dropDecode  = "decode"    // a message the decoder refused (malformed, wrong size, ...)
	dropSyncID  = "syncid"    // a message of another sync ID
	dropSkipped = "skipped"   // records the kernel's backup skips too (unknown protocol, state, option)
	dropFwmark  = "fwmark"    // a firewall-mark connection: udr has no fwmark services
	dropNoCPort = "no-cport"  // a connection with no client port yet (FTP), which udr does not keep
	dropServer  = "no-server" // no local service, or no such real server in it
	dropInsert  = "insert"    // the connection table did not take it
	dropEncode  = "encode"    // a connection the encoder refused
	dropSend    = "send"      // a message the socket did not take
	dropQueue   = "queue"     // connections a worker could not queue for the master (its queue was full)
)

var syncDropReasons = []string{dropDecode, dropSyncID, dropSkipped, dropFwmark, dropNoCPort,
	dropServer, dropInsert, dropEncode, dropSend, dropQueue}

// syncCounters are the sync metrics, updated by the daemons' goroutines.
type syncCounters struct {
	sentMsgs, sentConns, recvMsgs, recvConns atomic.Uint64
	hellosSent, hellosRecv, dumps, dumpConns atomic.Uint64
	dropped                                  [10]atomic.Uint64 // by syncDropReasons index
}

func (c *syncCounters) drop(reason string, n int) {
	for i, r := range syncDropReasons {
		if r == reason {
			c.dropped[i].Add(uint64(n))
			return
		}
	}
}

// syncSockets open the daemons' sockets; tests replace them.
type syncSockets struct {
	sender   func(ipvssync.Options) (syncSender, error)
	receiver func(ipvssync.Options, func(netip.AddrPort, uint8, []ipvssync.Conn)) (syncReceiver, error)
}

type syncSender interface {
	Send([]byte) error
	Close() error
}

type syncReceiver interface {
	Run(context.Context) error
	Stats() ipvssync.ReceiverStats
}

var liveSyncSockets = syncSockets{
	sender: func(o ipvssync.Options) (syncSender, error) { return ipvssync.NewSender(o) },
	receiver: func(o ipvssync.Options, fn func(netip.AddrPort, uint8, []ipvssync.Conn)) (syncReceiver, error) {
		return ipvssync.NewReceiver(o, fn)
	},
}

// syncTable is what the daemons use of the packet workers
// (forwarder.Workers).
type syncTable interface {
	EnableSync(bool)
	DrainSync(func([]forwarder.SyncRecord))
	InsertSynced(context.Context, []forwarder.SyncRecord) (forwarder.InsertStats, error)
	DumpSync(context.Context, func([]forwarder.SyncRecord)) error
	SyncStats() forwarder.SyncStats
}

// workersSync are the packet workers as the sync daemons use them: a
// record goes to the worker that the fanout hands its client to.
type workersSync struct{ d *Director }

func (w workersSync) EnableSync(on bool)                        { w.d.ws.EnableSync(on) }
func (w workersSync) DrainSync(fn func([]forwarder.SyncRecord)) { w.d.ws.DrainSync(fn) }
func (w workersSync) SyncStats() forwarder.SyncStats            { return w.d.ws.SyncStats() }
func (w workersSync) DumpSync(ctx context.Context, fn func([]forwarder.SyncRecord)) error {
	return w.d.ws.DumpSync(ctx, fn)
}
func (w workersSync) InsertSynced(ctx context.Context, recs []forwarder.SyncRecord) (forwarder.InsertStats, error) {
	m := w.d.fanoutMasks.Load()
	return w.d.ws.InsertSynced(ctx, recs, int(m>>8), int(m&0xff))
}

// syncDaemons are a director's sync daemons. Start and Stop come from
// udr admin, from the settings at Run and from Reload; the daemons run on
// their own goroutines until stopped or until the director stops.
type syncDaemons struct {
	log     *slog.Logger
	table   syncTable
	ns      func(func() error) error // runs a function in the director's namespace
	mtu     func(iface string) (int, error)
	sockets syncSockets
	stats   syncCounters

	mu     sync.Mutex
	ctx    context.Context  // the director's life; nil before start
	peers  []netip.AddrPort // unicast peers of the daemons started from now on
	master *masterDaemon
	backup *backupDaemon
	wg     sync.WaitGroup

	// refusedLogged is when (Unix seconds) records the table refused were
	// last logged: at most once a minute.
	refusedLogged atomic.Int64
	// recvDone are the counters of the backups that stopped.
	recvDone ipvssync.ReceiverStats

	ready    chan struct{} // closed once run has started the settings' daemons
	warm     chan struct{}
	warmOnce sync.Once
	warming  bool // a backup's first resync is being waited for
}

func newSyncDaemons(log *slog.Logger, table syncTable) *syncDaemons {
	return &syncDaemons{
		log:     log,
		table:   table,
		ns:      func(f func() error) error { return f() },
		mtu:     func(iface string) (int, error) { i, err := host.InterfaceInfo(iface); return i.MTU, err },
		sockets: liveSyncSockets,
		ready:   make(chan struct{}),
		warm:    make(chan struct{}),
	}
}

// run lets the daemons run until ctx is done, starting those of s first;
// it returns once every daemon has stopped. Without a backup daemon after
// s, the director is warm at once.
func (sd *syncDaemons) run(ctx context.Context, s config.Sync, iface string) {
	sd.mu.Lock()
	sd.ctx = ctx
	sd.mu.Unlock()
	sd.apply(s, iface)
	sd.mu.Lock()
	if sd.backup == nil && !sd.warming {
		sd.setWarm()
	}
	sd.mu.Unlock()
	close(sd.ready)
	<-ctx.Done()
	sd.mu.Lock()
	for _, st := range []string{"master", "backup"} {
		sd.stopLocked(st, "the director stops")
	}
	sd.mu.Unlock()
	sd.wg.Wait()
	sd.setWarm()
}

// apply starts and stops daemons so that those of s run, with s's
// options (interface "" is iface) and peers: a daemon whose options
// changed starts again. Failures are logged: a daemon that cannot start
// does not stop the director.
func (sd *syncDaemons) apply(s config.Sync, iface string) {
	sd.mu.Lock()
	sd.peers = slices.Clone(s.Peers)
	sd.mu.Unlock()
	for _, st := range []struct {
		state string
		on    bool
	}{{"master", s.Master}, {"backup", s.Backup}} {
		want := daemonOf(s, st.state, iface)
		sd.mu.Lock()
		cur, running := sd.runningLocked(st.state)
		sd.mu.Unlock()
		noGroup := !s.Group.IsValid()
		same := running && sameDaemon(cur, want, s.Peers, noGroup)
		if running && !same {
			sd.Stop(st.state)
		}
		if st.on && !same {
			if err := sd.start(want, noGroup); err != nil {
				sd.log.Error("sync daemon not started", "state", st.state, "iface", want.McastInterface, "err", err)
			}
		}
	}
}

// daemonOf is the admin.Daemon of state in s, as ipvsadm would send it.
func daemonOf(s config.Sync, state, iface string) admin.Daemon {
	d := admin.Daemon{State: state, McastInterface: s.Interface, SyncID: s.SyncID, SyncMaxLen: s.MaxLen,
		McastGroup: s.Group, McastPort: s.Port, McastTTL: s.TTL}
	if d.McastInterface == "" {
		d.McastInterface = iface
	}
	return d
}

// sameDaemon reports whether a running daemon has the options and peers
// that want and peers ask for.
func sameDaemon(cur *daemonConfig, want admin.Daemon, peers []netip.AddrPort, noGroup bool) bool {
	return withDefaults(cur.asked) == withDefaults(want) && slices.Equal(cur.peers, peers) && cur.noGroup == noGroup
}

// withDefaults fills in the options whose defaults do not depend on the
// interface.
func withDefaults(d admin.Daemon) admin.Daemon {
	if !d.McastGroup.IsValid() {
		d.McastGroup = admin.DefaultSyncGroup
	}
	if d.McastPort == 0 {
		d.McastPort = admin.DefaultSyncPort
	}
	if d.McastTTL == 0 {
		d.McastTTL = admin.DefaultSyncTTL
	}
	return d
}

// daemonConfig is a running daemon's options: as asked, and as the
// kernel completes them.
type daemonConfig struct {
	asked, d admin.Daemon
	peers    []netip.AddrPort
	noGroup  bool // the peers only: no multicast group (d.McastGroup invalid)
	cancel   context.CancelFunc
	done     chan struct{}
}

func (c *daemonConfig) options() ipvssync.Options {
	return ipvssync.Options{Interface: c.d.McastInterface, SyncID: uint8(c.d.SyncID), MaxLen: c.d.SyncMaxLen,
		Group: c.d.McastGroup, Port: uint16(c.d.McastPort), TTL: c.d.McastTTL, Peers: c.peers}
}

type masterDaemon struct {
	daemonConfig
	snd    syncSender
	sendMu sync.Mutex    // the drain loop and a dump share snd
	dump   chan struct{} // a hello asks for a dump
}

type backupDaemon struct {
	daemonConfig
	rcv syncReceiver
}

func (sd *syncDaemons) runningLocked(state string) (*daemonConfig, bool) {
	switch {
	case state == "master" && sd.master != nil:
		return &sd.master.daemonConfig, true
	case state == "backup" && sd.backup != nil:
		return &sd.backup.daemonConfig, true
	}
	return nil, false
}

// Start starts a daemon as ipvsadm --start-daemon asks: the kernel's
// errors are *admin.KernelError (EEXIST when one of that state runs,
// ENODEV when the interface does not exist), and a socket that cannot be
// opened is EINVAL with the reason.
func (sd *syncDaemons) Start(asked admin.Daemon) error { return sd.start(asked, false) }

// start is Start; noGroup sends to the peers only (udr.yaml's group:
// none).
func (sd *syncDaemons) start(asked admin.Daemon, noGroup bool) error {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	mtu, err := sd.mtu(asked.McastInterface)
	if err != nil {
		return admin.DaemonError(admin.OpStartDaemon, syscall.ENODEV)
	}
	if _, running := sd.runningLocked(asked.State); running {
		return admin.DaemonError(admin.OpStartDaemon, syscall.EEXIST)
	}
	if sd.ctx == nil || sd.ctx.Err() != nil {
		return &admin.KernelError{Op: admin.OpStartDaemon, Errno: syscall.EINVAL, Msg: "the director is not forwarding: no sync daemon can start"}
	}
	ctx, cancel := context.WithCancel(sd.ctx)
	cfg := daemonConfig{asked: asked, d: admin.CompleteDaemon(asked, mtu), peers: sd.peers, noGroup: noGroup, cancel: cancel, done: make(chan struct{})}
	if noGroup {
		cfg.d.McastGroup = netip.Addr{} // ipvssync: no multicast, the peers only
	}
	fail := func(err error) error {
		cancel()
		return &admin.KernelError{Op: admin.OpStartDaemon, Errno: syscall.EINVAL, Msg: "sync daemon: " + err.Error()}
	}
	switch asked.State {
	case "master":
		m := &masterDaemon{daemonConfig: cfg, dump: make(chan struct{}, 1)}
		if err := sd.ns(func() (err error) { m.snd, err = sd.sockets.sender(m.options()); return err }); err != nil {
			return fail(err)
		}
		sd.master = m
		sd.table.EnableSync(true)
		sd.wg.Add(1)
		go func() {
			defer sd.wg.Done()
			defer close(m.done)
			defer m.snd.Close()
			sd.runMaster(ctx, m)
		}()
	case "backup":
		b := &backupDaemon{daemonConfig: cfg}
		var rcv syncReceiver
		if err := sd.ns(func() (err error) { rcv, err = sd.sockets.receiver(b.options(), sd.received(ctx, b)); return err }); err != nil {
			return fail(err)
		}
		sd.backup, b.rcv = b, rcv
		first := !sd.warming && !sd.isWarm()
		if first {
			sd.warming = true
		}
		sd.wg.Add(1)
		go func() {
			defer sd.wg.Done()
			defer close(b.done)
			if err := rcv.Run(ctx); err != nil && ctx.Err() == nil {
				sd.log.Error("sync daemon stopped receiving", "state", "backup", "err", err)
			}
		}()
		sd.wg.Add(1)
		go func() {
			defer sd.wg.Done()
			sd.hello(ctx, b, first)
		}()
	}
	d := cfg.d
	sd.log.Info("sync daemon started", "state", d.State, "mcast", d.McastInterface, "syncid", d.SyncID, "maxlen", d.SyncMaxLen,
		"group", d.McastGroup, "port", d.McastPort, "ttl", d.McastTTL, "peers", len(cfg.peers))
	return nil
}

// Stop stops the daemon of state, as ipvsadm --stop-daemon: ESRCH when
// it does not run.
func (sd *syncDaemons) Stop(state string) error {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if !sd.stopLocked(state, "stopped") {
		return admin.DaemonError(admin.OpStopDaemon, syscall.ESRCH)
	}
	return nil
}

func (sd *syncDaemons) stopLocked(state, why string) bool {
	var cfg *daemonConfig
	switch {
	case state == "master" && sd.master != nil:
		cfg = &sd.master.daemonConfig
		sd.master = nil
		sd.table.EnableSync(false)
	case state == "backup" && sd.backup != nil:
		cfg = &sd.backup.daemonConfig
		addReceiverStats(&sd.recvDone, sd.backup.rcv.Stats())
		sd.backup = nil
	default:
		return false
	}
	cfg.cancel()
	sd.mu.Unlock()
	<-cfg.done // the master flushes what it holds
	sd.mu.Lock()
	sd.log.Info("sync daemon stopped", "state", state, "mcast", cfg.d.McastInterface, "syncid", cfg.d.SyncID, "why", why)
	return true
}

// Daemons returns the running daemons, the master first.
func (sd *syncDaemons) Daemons() []admin.Daemon {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	var out []admin.Daemon
	if sd.master != nil {
		out = append(out, sd.master.d)
	}
	if sd.backup != nil {
		out = append(out, sd.backup.d)
	}
	return out
}

// runMaster is the master's loop: drain, encode, send; flush after
// flushTime; answer hellos with dumps.
func (sd *syncDaemons) runMaster(ctx context.Context, m *masterDaemon) {
	enc := ipvssync.Encoder{SyncID: uint8(m.d.SyncID), MaxLen: m.d.SyncMaxLen}
	var first time.Time // when the pending message got its first connection
	tick := time.NewTicker(drainInterval)
	defer tick.Stop()
	var lastDump time.Time
	pendingDump := false
	dumpDone := make(chan struct{}, 1)
	dumping := false
	drain := func(now time.Time) {
		sd.table.DrainSync(func(recs []forwarder.SyncRecord) {
			for i := range recs {
				c := toWire(&recs[i])
				full, ok := enc.Add(&c)
				if !ok {
					sd.stats.drop(dropEncode, 1)
					continue
				}
				if full != nil {
					sd.send(m, full)
					first = now
				} else if enc.Pending() == 1 {
					first = now
				}
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			drain(time.Now())
			if msg := enc.Flush(); msg != nil {
				sd.send(m, msg)
			}
			if dumping {
				<-dumpDone
			}
			return
		case <-m.dump:
			pendingDump = true
		case <-dumpDone:
			dumping = false
		case <-tick.C:
			now := time.Now() // not the tick's: a late tick must not age the records it drains
			drain(now)
			if enc.Pending() > 0 && now.Sub(first) >= flushTime {
				sd.send(m, enc.Flush())
			}
		}
		if now := time.Now(); pendingDump && !dumping && now.Sub(lastDump) >= dumpInterval {
			pendingDump, dumping, lastDump = false, true, now
			go func() {
				sd.dump(ctx, m)
				dumpDone <- struct{}{}
			}()
		}
	}
}

// send sends one message and counts it.
func (sd *syncDaemons) send(m *masterDaemon, msg []byte) {
	n := int(msg[4]) // nr_conns
	m.sendMu.Lock()
	err := m.snd.Send(msg)
	m.sendMu.Unlock()
	if err != nil {
		sd.stats.drop(dropSend, n)
		return
	}
	sd.stats.sentMsgs.Add(1)
	sd.stats.sentConns.Add(uint64(n))
}

// dump sends the whole table, paced, with an encoder of its own.
func (sd *syncDaemons) dump(ctx context.Context, m *masterDaemon) {
	start := time.Now()
	enc := ipvssync.Encoder{SyncID: uint8(m.d.SyncID), MaxLen: m.d.SyncMaxLen}
	conns, msgs := 0, 0
	emit := func(msg []byte) {
		sd.send(m, msg)
		msgs++
		if msgs%dumpBurst == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(dumpPause):
			}
		}
	}
	err := sd.table.DumpSync(ctx, func(recs []forwarder.SyncRecord) {
		for i := range recs {
			c := toWire(&recs[i])
			full, ok := enc.Add(&c)
			if !ok {
				sd.stats.drop(dropEncode, 1)
				continue
			}
			conns++
			if full != nil {
				emit(full)
			}
		}
	})
	if msg := enc.Flush(); msg != nil {
		emit(msg)
	}
	sd.stats.dumps.Add(1)
	sd.stats.dumpConns.Add(uint64(conns))
	if err != nil && ctx.Err() == nil {
		sd.log.Error("resync: the table could not be read whole", "conns", conns, "err", err)
	}
	sd.log.Info("resync: sent the connection table to a peer that started", "conns", conns, "messages", msgs,
		"took", time.Since(start).Round(time.Millisecond))
}

// hello sends a backup's hello, which a peer's master answers with its
// table; for the first backup it then waits for that resync to end
// (Warm).
func (sd *syncDaemons) hello(ctx context.Context, b *backupDaemon, first bool) {
	start := time.Now()
	err := sd.ns(func() error {
		snd, err := sd.sockets.sender(b.options())
		if err != nil {
			return err
		}
		defer snd.Close()
		return snd.Send(ipvssync.AppendHello(nil, uint8(b.d.SyncID)))
	})
	if err != nil {
		sd.log.Warn("resync: the hello to the peers could not be sent; the table fills from their sync messages only", "err", err)
	} else {
		sd.stats.hellosSent.Add(1)
	}
	if !first {
		return
	}
	defer sd.setWarm()
	startMsgs := sd.stats.recvMsgs.Load()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := startMsgs, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := sd.stats.recvMsgs.Load()
			if n != last {
				last, lastChange = n, now
			}
			switch {
			case n == startMsgs && now.Sub(start) >= WarmNoPeer:
				sd.log.Info("resync: no peer answered; starting with the connections that come", "waited", now.Sub(start).Round(time.Millisecond))
				return
			case n != startMsgs && now.Sub(lastChange) >= WarmQuiet:
				sd.log.Info("resync: received the peers' connection table", "messages", n-startMsgs,
					"took", lastChange.Sub(start).Round(time.Millisecond))
				return
			case now.Sub(start) >= WarmMax:
				sd.log.Warn("resync: the peers' messages still come; counting the resync done", "messages", n-startMsgs, "waited", WarmMax)
				return
			}
		}
	}
}

// received returns the backup's receive function: a hello asks the
// master, if one runs, for a dump; connections are converted and
// inserted.
func (sd *syncDaemons) received(ctx context.Context, b *backupDaemon) func(netip.AddrPort, uint8, []ipvssync.Conn) {
	var (
		mu   sync.Mutex // the Receiver's sockets (one per family) may call at once
		recs []forwarder.SyncRecord
	)
	return func(from netip.AddrPort, syncid uint8, conns []ipvssync.Conn) {
		mu.Lock()
		defer mu.Unlock()
		if len(conns) == 0 {
			sd.stats.hellosRecv.Add(1)
			sd.mu.Lock()
			m := sd.master
			sd.mu.Unlock()
			if m != nil {
				sd.log.Info("resync: a peer started; sending it the connection table", "peer", from.Addr())
				select {
				case m.dump <- struct{}{}:
				default: // one is asked for already
				}
			}
			return
		}
		sd.stats.recvMsgs.Add(1)
		sd.stats.recvConns.Add(uint64(len(conns)))
		recs = recs[:0]
		for i := range conns {
			r, reason := fromWire(&conns[i])
			if reason != "" {
				sd.stats.drop(reason, 1)
				continue
			}
			recs = append(recs, r)
		}
		if len(recs) == 0 {
			return
		}
		st, err := sd.table.InsertSynced(ctx, recs)
		sd.stats.drop(dropServer, st.NoServer)
		sd.stats.drop(dropInsert, st.Refused)
		if now := time.Now().Unix(); err != nil && ctx.Err() == nil && st.Refused > 0 && sd.refusedLogged.Swap(now) < now-60 {
			sd.log.Warn("sync: connections the table did not take", "refused", st.Refused, "err", err)
		}
	}
}

// toWire is a connection the workers queued, as a sync record: the kernel
// sends a DR connection's flags (IP_VS_CONN_F_DROUTE, NOOUTPUT, INACTIVE
// when it does not count as active, TEMPLATE), its state number (a
// template's NONE or ASSURED, 0 for UDP) and its timeout.
func toWire(r *forwarder.SyncRecord) ipvssync.Conn {
	client, vip := r.Key.Addrs()
	flags := uint32(ipvssync.FlagDRoute | ipvssync.FlagNoOutput)
	if r.Key.Template {
		flags |= ipvssync.FlagTemplate
	} else if r.Flags&conntrack.FlagActive == 0 {
		flags |= ipvssync.FlagInactive
	}
	return ipvssync.Conn{Protocol: r.Key.Proto, Flags: flags, State: r.State.KernelState(), Client: client, VIP: vip,
		Dest: netip.AddrPortFrom(r.Dest.Real.Addr().Unmap(), r.Dest.Real.Port()), Timeout: r.Timeout}
}

const (
	protoTCP = 6
	protoUDP = 17
)

// fromWire is a received record as a connection to insert. Its real
// server is named by the service's address and port and its own; the
// workers bind it as the kernel's ip_vs_find_dest does (the VIP's port,
// else the FTP service for FTP data ports, else the VIP's port-0
// service). It returns a drop reason instead when udr cannot keep the
// connection.
func fromWire(c *ipvssync.Conn) (forwarder.SyncRecord, string) {
	template := c.Flags&ipvssync.FlagTemplate != 0
	switch {
	case c.Fwmark != 0:
		return forwarder.SyncRecord{}, dropFwmark
	case c.Flags&ipvssync.FlagNoCPort != 0 && !template:
		return forwarder.SyncRecord{}, dropNoCPort
	case c.Protocol != protoTCP && c.Protocol != protoUDP:
		return forwarder.SyncRecord{}, dropSkipped
	}
	vip := netip.AddrPortFrom(c.VIP.Addr().Unmap(), c.VIP.Port())
	client := netip.AddrPortFrom(c.Client.Addr().Unmap(), c.Client.Port())
	real := netip.AddrPortFrom(c.Dest.Addr().Unmap(), c.Dest.Port())
	state, err := conntrack.StateFromKernel(c.State, c.Protocol, template)
	if err != nil {
		return forwarder.SyncRecord{}, dropSkipped // the decoder skips these already
	}
	k := conntrack.NewKey(c.Protocol, client, vip)
	k.Template = template
	r := forwarder.SyncRecord{Key: k, Dest: dest.Key{Proto: c.Protocol, VIP: vip, Real: real}, State: state, Timeout: c.Timeout}
	if !template && c.Flags&ipvssync.FlagInactive == 0 {
		r.Flags |= conntrack.FlagActive
	}
	if template {
		r.Flags |= conntrack.FlagTemplate
	}
	return r, ""
}

// Warm is closed once the director's table has what its peers had.
func (sd *syncDaemons) isWarm() bool {
	select {
	case <-sd.warm:
		return true
	default:
		return false
	}
}

func (sd *syncDaemons) setWarm() { sd.warmOnce.Do(func() { close(sd.warm) }) }

func addReceiverStats(to *ipvssync.ReceiverStats, s ipvssync.ReceiverStats) {
	to.Messages += s.Messages
	to.Conns += s.Conns
	to.Skipped += s.Skipped
	for i := range to.Drops {
		to.Drops[i] += s.Drops[i]
	}
}

// snapshot is the daemons' part of the metrics.
func (sd *syncDaemons) snapshot() metrics.Sync {
	sd.mu.Lock()
	s := metrics.Sync{Master: sd.master != nil, Backup: sd.backup != nil}
	rs := sd.recvDone
	if sd.backup != nil {
		addReceiverStats(&rs, sd.backup.rcv.Stats())
	}
	sd.mu.Unlock()
	qs := sd.table.SyncStats()
	c := &sd.stats
	s.SentMessages, s.SentConns = c.sentMsgs.Load(), c.sentConns.Load()
	s.ReceivedMessages, s.ReceivedConns = c.recvMsgs.Load(), c.recvConns.Load()
	s.HellosSent, s.HellosReceived = c.hellosSent.Load(), c.hellosRecv.Load()
	s.Resyncs, s.ResyncConns = c.dumps.Load(), c.dumpConns.Load()
	s.Dropped = make(map[string]uint64, len(syncDropReasons))
	for i, r := range syncDropReasons {
		s.Dropped[r] = c.dropped[i].Load()
	}
	// What the receiver's socket and the workers' queues dropped.
	for i, n := range rs.Drops {
		switch ipvssync.DropReason(i) {
		case ipvssync.DropOwn: // this director's own messages: not a loss
		case ipvssync.DropSyncID:
			s.Dropped[dropSyncID] += n
		default:
			s.Dropped[dropDecode] += n
		}
	}
	s.Dropped[dropSkipped] += rs.Skipped
	s.Dropped[dropQueue] += qs.Dropped
	s.Dropped[dropServer] += qs.NoServer
	return s
}

var _ admin.DaemonBackend = (*Director)(nil)

// StartDaemon is ipvsadm --start-daemon (admin.DaemonBackend).
func (d *Director) StartDaemon(dm admin.Daemon) error { return d.sync.Start(dm) }

// StopDaemon is ipvsadm --stop-daemon (admin.DaemonBackend).
func (d *Director) StopDaemon(state string) error { return d.sync.Stop(state) }

// Daemons are the running sync daemons, the master first
// (admin.DaemonBackend).
func (d *Director) Daemons() []admin.Daemon { return d.sync.Daemons() }

// Warm is closed once the director's connection table holds what its
// peers had when it started: at once when no backup sync daemon runs when
// Run starts; with one, once the table its peers sent in answer to the
// backup's hello has come whole (the messages paused for WarmQuiet), or
// when no peer answered within WarmNoPeer, or after WarmMax at most. Code
// that announces the VIPs to routers (BGP) waits for it, so that the
// connections the peers carry are known here before any of their packets
// come. It is closed too when Run returns.
func (d *Director) Warm() <-chan struct{} { return d.sync.warm }
