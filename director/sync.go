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
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/ipvssync"
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
	return admin.DaemonDefaults(cur.asked) == admin.DaemonDefaults(want) && slices.Equal(cur.peers, peers) && cur.noGroup == noGroup
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
