//go:build linux

package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/nsrun"
	"github.com/udr-lb/udr/service"
	"github.com/udr-lb/udr/stats"
	"golang.org/x/net/bpf"
)

// Config is what a director needs to start.
type Config struct {
	// Rules is an ipvsadm-save rules file, or ConfigFile a udr.yaml, that
	// New loads and Reload re-reads: one of them.
	Rules      string
	ConfigFile string
	// Load, when set, is what New and Reload call instead of
	// config.Load(ConfigFile): a udr.yaml made from another file (udr
	// run --keepalived). ConfigFile then names that file in the logs.
	Load func() (*config.File, *service.Config, []string, error)

	// Settings are the settings given on the command line, and Given
	// says which were: with a ConfigFile, udr.yaml gives the others, at
	// New and at every Reload (Resolve). Without one, Settings apply.
	Settings
	Given Setting

	// TakeOver asks the udr serving the control socket for its
	// connection table (POST /v1/handoff) instead of reading the state
	// file: that udr stops forwarding and exits, and this one goes on.
	// With no udr serving the socket, the state file is read.
	TakeOver bool

	// KeepOffloads leaves GRO/LRO/TSO/GSO as they are. By default they are
	// turned off, so that no frame larger than the MTU reaches udr.
	KeepOffloads bool

	Logger *slog.Logger
}

// Director runs udr's data plane on one interface: the forwarder.Workers
// (Settings.Workers; udr run: one per CPU but one) that move the frames of the AF_PACKET
// sockets, each owning its pipeline and connection table, and a control
// side (the control loop, Reload, the neighbour watcher) that queues
// frames for them and swaps compiled tables in. Several workers read
// sockets of one PACKET_FANOUT group (forwarder.ListenGroup), which hands
// all the frames of a client to one of them.
type Director struct {
	cfg   Config
	log   *slog.Logger
	ifi   host.Interface
	conns []*forwarder.PacketConn // one per worker
	reg   *dest.Registry
	neigh *forwarder.Neighbors
	table atomic.Pointer[forwarder.Table]
	ps    []*forwarder.Pipeline // one per worker
	ws    forwarder.Workers     // the packet workers: each owns its pipeline and connection table
	// fanout4 and fanout6 are the prefix lengths the fanout program hashes
	// client addresses with (forwarder.FanoutMasks), with several workers.
	fanout4, fanout6 int

	mu      sync.Mutex      // serialises changes: Reload, Apply
	running *service.Config // the configuration as the operator made it
	file    *config.File    // the last udr.yaml loaded, when ConfigFile is set
	changed chan struct{}

	// settings are those in force, Resolve of cfg and file. Guarded by mu
	// after New.
	settings Settings

	// Owned by the control loop.
	announcer *arpresponder.Announcer
	vlog      verdictLog
	lastProbe time.Time
	lastCheck time.Time
	lastDrops time.Time
	timeouts  service.Timeouts // the connection timeouts the table has
	drops     uint64
	txErrors  uint64
	txUnsent  uint64
	quiet     uint64 // verdict log lines suppressed, as last logged
	reachable map[netip.Addr]bool

	// localVIPs is host.LocalVIPs: which VIPs are this host's addresses.
	localVIPs func([]netip.Addr) ([]netip.Addr, error)

	stopWatch func()
	ns        nsrun.Namespace // the namespace New ran in: control changes act there

	// offloads is what New turned off on the interface, for Close to
	// turn on again.
	offloads host.OffloadChange

	stats   *stats.Table
	checker *health.Checker
	health  healthState // guarded by mu
	hand    handOff     // a hand-off of the table to a new udr (state.go)

	sync *syncDaemons // the connection sync daemons (sync.go)
	// fanoutMasks are fanout4<<8 | fanout6, for the sync daemons, which
	// read them without d.mu.
	fanoutMasks atomic.Uint64

	bgp bgpState // the VIPs' routes, with a bgp section (bgp.go)

	status statusState // what udr status shows that nothing else keeps (status.go)
}

// probeInterval is how often real servers are asked for their MAC.
const probeInterval = 5 * time.Second

// New checks the host, compiles the rules and opens the socket. The caller
// runs Run and then Close. New and Reload act on the network namespace of
// the calling thread: the sockets they open stay in it.
func New(cfg Config) (_ *Director, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d := &Director{
		cfg:       cfg,
		log:       cfg.Logger,
		reg:       dest.NewRegistry(1 << 16),
		neigh:     forwarder.NewNeighbors(1 << 16),
		changed:   make(chan struct{}, 1),
		reachable: make(map[netip.Addr]bool),
		stats:     stats.NewTable(),
		localVIPs: host.LocalVIPs,
	}
	d.status.started = time.Now()
	d.hand.init()
	if d.ns, err = nsrun.Current(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.restoreOffloads()
			d.ns.Close()
			for _, c := range d.conns {
				c.Close()
			}
			if d.checker != nil {
				d.checker.Close()
			}
		}
	}()
	rules, fc, err := d.loadRules()
	if err != nil {
		return nil, err
	}
	d.file = fc
	if d.settings, err = Resolve(cfg.Settings, cfg.Given, fc); err != nil {
		return nil, err
	}
	s := d.settings
	if err := s.Check(cfg.Given); err != nil {
		return nil, err
	}
	if err := checkTableMemory(capacityOr(s.Capacity), workerCount(s.Workers)); err != nil {
		return nil, err
	}
	if d.ifi, err = host.InterfaceInfo(s.Iface); err != nil {
		return nil, err
	}
	d.announcer = arpresponder.NewAnnouncer(s.AnnounceInterval)
	if err := d.newChecker(); err != nil {
		return nil, err
	}
	if _, err := d.setHealthTargets(); err != nil {
		return nil, err
	}
	t, err := d.compile(d.overlay(rules), nil, nil)
	if err != nil {
		return nil, err
	}
	if s.VIPMAC == "iface" {
		v4, v6, err := host.ForwardingEnabled(s.Iface)
		if err != nil {
			return nil, err
		}
		if v4 || v6 {
			return nil, fmt.Errorf("--vip-mac=iface with forwarding on for %s: the kernel would route the VIP traffic too; run `sysctl -w net.ipv4.conf.%s.forwarding=0 net.ipv6.conf.%s.forwarding=0` or use the default virtual MAC", s.Iface, s.Iface, s.Iface)
		}
	}
	if !cfg.KeepOffloads {
		d.disableOffloads()
	}
	filter, err := forwarder.BuildFilter(t.VIPs())
	if err != nil {
		return nil, err
	}
	ccfg := forwarder.ConnConfig{Filter: filter, IO: s.IO}
	if vmac := t.Options().VIPMAC; vmac != d.ifi.MAC {
		ccfg.ExtraMACs = [][6]byte{vmac}
	}
	n := workerCount(s.Workers)
	var fanout []bpf.RawInstruction
	if n > 1 {
		d.fanout4, d.fanout6 = forwarder.FanoutMasks(t)
		if fanout, err = forwarder.BuildFanout(d.fanout4, d.fanout6); err != nil {
			return nil, err
		}
	}
	if d.conns, err = forwarder.ListenGroup(s.Iface, ccfg, n, fanout); err != nil {
		return nil, err
	}
	d.log.Info("receiving frames", "iface", s.Iface, "io", d.conns[0].IO().String(), "asked", s.IO.String(), "workers", n, "auto", s.Workers == WorkersAuto)
	if d.stopWatch, err = host.WatchNeighbors(d.ifi.Index, d.neighborSeen); err != nil {
		d.log.Warn("not watching the kernel neighbour table", "err", err)
		d.stopWatch = func() {}
	}
	d.table.Store(t)
	d.reg.Publish(t.DestIDs())
	d.running = rules
	d.timeouts = rules.Timeouts
	// The workers share the capacity: the memory bound stays the same.
	per, epoch := max(capacityOr(s.Capacity)/n, 1), time.Now()
	for range n {
		conns := conntrack.New(per, d.reg, conntrack.Options{Timeouts: t.Config().Timeouts,
			DropEntry: s.DropEntry, SecureTCP: s.SecureTCP})
		d.ps = append(d.ps, forwarder.NewPipeline(forwarder.PipelineConfig{Table: &d.table, Conns: conns, Neighbors: d.neigh,
			Registry: d.reg, Epoch: epoch, Shared: n > 1, UnreachShare: max(forwarder.UnreachPerSecond/n, 1)}))
	}
	if cfg.TakeOver {
		if err := d.takeOver(t); err != nil {
			return nil, err
		}
	} else {
		d.loadState(t)
	}
	d.ws = d.newWorkers()
	d.fanoutMasks.Store(uint64(d.fanout4)<<8 | uint64(d.fanout6))
	d.sync = newSyncDaemons(d.log, workersSync{d})
	d.sync.ns = d.ns.Do
	d.logTable(t)
	if t.Options().Standby {
		d.log.Info("starting in standby: no ARP/NDP answers, announcements or forwarding for the VIPs until `udr admin --active`")
	}
	if err := d.startBGP(); err != nil {
		return nil, err
	}
	return d, nil
}

// tableReserve is the memory left to the rest of udr (its sockets' rings,
// the compiled table, the control plane) when the connection tables are
// checked against the memory the machine has.
const tableReserve = 64 << 20

// availableMemory is host.AvailableMemory; tests replace it.
var availableMemory = host.AvailableMemory

// checkTableMemory refuses a capacity whose connection tables, allocated
// whole at start (conntrack.Memory), do not fit in the memory this process
// can take with tableReserve to spare: a clear error now rather than the
// runtime's fatal out of memory.
func checkTableMemory(capacity, workers int) error {
	per := max(capacity/workers, 1)
	need := conntrack.Memory(per) * uint64(workers)
	m, err := availableMemory()
	if err != nil {
		return fmt.Errorf("capacity %d: cannot tell how much memory is available: %w", capacity, err)
	}
	if need+tableReserve > m.Bytes {
		return fmt.Errorf("capacity %d: the connection table needs %s, but this process can take only %s more (%s), and udr keeps %s for the rest: lower --capacity (capacity:)",
			capacity, mib(need), mib(m.Bytes), m.By, mib(tableReserve))
	}
	return nil
}

// mib writes a number of bytes in MiB.
func mib(n uint64) string { return fmt.Sprintf("%d MiB", (n+(1<<20)-1)>>20) }

func capacityOr(n int) int {
	if n == 0 {
		return forwarder.DefaultCapacity
	}
	return n
}

// loadRules reads the rules file or the udr.yaml; fc is nil for a rules file.
func (d *Director) loadRules() (cfg *service.Config, fc *config.File, err error) {
	if d.cfg.ConfigFile != "" {
		load := d.cfg.Load
		if load == nil {
			load = func() (*config.File, *service.Config, []string, error) { return config.Load(d.cfg.ConfigFile) }
		}
		fc, cfg, warnings, err := load()
		if err == nil && d.cfg.Given&SetSync != 0 {
			warnings = bgpWarningsFor(warnings, d.cfg.ConfigFile, fc, cfg, d.cfg.Settings.Sync)
		}
		for _, w := range warnings {
			d.log.Warn(w)
		}
		return cfg, fc, err
	}
	f, err := os.Open(d.cfg.Rules)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	cfg, warnings, err := admin.ParseRules(f, d.cfg.Rules)
	for _, w := range warnings {
		d.log.Warn(w)
	}
	return cfg, nil, err
}

// bgpWarningsFor replaces, in the warnings that config.Load gave for the
// file name, those of config.BGPWarnings under the file's sync block by
// those under sync, the one the --sync* flags give: the flags replace the
// whole block, so they decide whether the other directors hold this one's
// entries.
func bgpWarningsFor(warnings []string, name string, fc *config.File, cfg *service.Config, sync config.Sync) []string {
	file := config.BGPWarnings(name, fc.BGP, fc.Sync, cfg)
	out := make([]string, 0, len(warnings))
	for _, w := range warnings {
		if !slices.Contains(file, w) {
			out = append(out, w)
		}
	}
	return append(out, config.BGPWarnings(name, fc.BGP, sync, cfg)...)
}

// compile checks rules against the host and builds a Table.
func (d *Director) compile(rules *service.Config, prev *forwarder.Table, edited []dest.Key) (*forwarder.Table, error) {
	var vips []netip.Addr
	for _, s := range rules.Services {
		if !slices.Contains(vips, s.Addr) {
			vips = append(vips, s.Addr)
		}
	}
	local, err := d.localVIPs(vips)
	if err != nil {
		return nil, err
	}
	if len(local) > 0 {
		var fixes []string
		for _, a := range local {
			bits := 32
			if a.Is6() {
				bits = 128
			}
			fixes = append(fixes, fmt.Sprintf("ip addr del %s/%d dev IFACE", a, bits))
		}
		return nil, fmt.Errorf("VIP %s is configured on this host: its kernel would answer ARP for it and reset the connections udr forwards; udr owns the VIPs alone, remove them first (%s)", local[0], strings.Join(fixes, "; "))
	}
	s := d.settings
	opts := forwarder.Options{
		IfMAC:                   d.ifi.MAC,
		SloppyTCP:               s.SloppyTCP,
		ConnReuseMode:           s.ConnReuseMode,
		ExpireNodestConn:        s.ExpireNodestConn,
		ExpireQuiescentTemplate: s.ExpireQuiescentTemplate,
		DropEntry:               s.DropEntry,
		SecureTCP:               s.SecureTCP,
		Edited:                  edited,
	}
	switch s.VIPMAC {
	case "":
		opts.VIPMAC = arpresponder.VirtualMAC(d.ifi.MAC)
	case "iface":
		opts.VIPMAC = d.ifi.MAC
	default:
		hw, err := config.ParseVIPMAC(s.VIPMAC)
		if err != nil {
			return nil, fmt.Errorf("--vip-mac %w", err)
		}
		opts.VIPMAC = [6]byte(hw)
	}
	if cur := d.table.Load(); cur != nil {
		// Standby or active stays as SetStandby left it.
		opts.Standby = cur.Options().Standby
	} else {
		opts.Standby = s.Standby
	}
	if d.ps != nil {
		// The change's time on the connection table's clock: the lblc
		// and lblcr services it creates start their timers then.
		opts.Now = d.ps[0].Clock(time.Now())
	}
	return forwarder.Compile(rules, d.reg, d.neigh, prev, opts)
}

// Reload re-reads the rules file and swaps the new table in. Connections to
// real servers that remain go on; an invalid file changes nothing. Changes
// made with udr admin since the last load are replaced by the file's. Of a
// udr.yaml's settings, those that no flag gave and that the running
// director can change (sloppy_tcp, conn_reuse_mode, expire_nodest_conn,
// expire_quiescent_template, drop_entry, secure_tcp) take the file's new
// values; a change of the others is logged and applies at the next start.
func (d *Director) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	rules, fc, err := d.loadRules()
	if err != nil {
		return err
	}
	next, err := Resolve(d.cfg.Settings, d.cfg.Given, fc)
	if err != nil {
		return err
	}
	if fixed := differ(d.settings, next) &^ reloadable; fixed != 0 {
		d.log.Warn("settings changed in the config file apply at the next start", "keys", fixed.keys())
	}
	d.bgpReloaded(fc)
	oldFile, oldSettings, oldRules := d.file, d.settings, d.running
	// The file's settings apply to the table being compiled.
	d.file, d.settings = fc, merge(d.settings, next, reloadable)
	if err := d.install(rules); err != nil {
		d.file, d.settings = oldFile, oldSettings
		return err
	}
	if !d.settings.Sync.Equal(oldSettings.Sync) {
		// Daemons started or stopped with udr admin since stay as they
		// are unless the file changed them.
		d.sync.apply(d.settings.Sync, d.settings.Iface)
	}
	if len(rules.Services) == 0 && len(oldRules.Services) > 0 {
		// Allowed (a director being drained), but rarely meant.
		var removed []string
		for _, s := range service.SortedServices(oldRules) {
			removed = append(removed, s.Key.String())
		}
		d.log.Warn("the reload removed every service: udr forwards nothing until services are added", "removed", strings.Join(removed, ","))
	}
	changed, err := d.setHealthTargets()
	if err != nil {
		return err
	}
	if changed {
		// New servers that start down (initial_down), or servers whose
		// check went away: compile again with the health overlay.
		return d.install(d.running)
	}
	return nil
}

// Settings returns the settings in force.
func (d *Director) Settings() Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settings
}

// install compiles cfg as the running configuration and swaps it in;
// edited names the real servers an ipvsadm -e edited (forwarder
// Options.Edited). The caller holds d.mu. On error nothing changed.
func (d *Director) install(cfg *service.Config, edited ...dest.Key) error {
	return d.ns.Do(func() error {
		prev := d.table.Load()
		t, err := d.compile(d.overlay(cfg), prev, edited)
		if err != nil {
			return err
		}
		if !slices.Equal(t.VIPs(), prev.VIPs()) {
			filter, err := forwarder.BuildFilter(t.VIPs())
			if err != nil {
				return err
			}
			for _, c := range d.conns {
				if err := c.SetFilter(filter); err != nil {
					return err
				}
			}
		}
		if vmac := t.Options().VIPMAC; vmac != prev.Options().VIPMAC && vmac != d.ifi.MAC {
			for _, c := range d.conns {
				if err := c.AddUnicastMAC(vmac); err != nil {
					return err
				}
			}
		}
		if err := d.widenFanout(t); err != nil {
			return err
		}
		d.table.Store(t)
		d.reg.Publish(t.DestIDs())
		if t.Options().ExpireNodestConn && destRemoved(prev, t) {
			// expire_nodest_conn=1: __ip_vs_del_dest queues the flush
			// of the deleted servers' connections, a jiffy later
			// (ip_vs_enqueue_expire_nodest_conns).
			d.ws.FlushNodest()
		}
		d.reap(time.Now())
		d.running = cfg
		select {
		case d.changed <- struct{}{}:
		default:
		}
		d.logTable(t)
		return nil
	})
}

// widenFanout re-programs the fanout group when t has a persistent
// service whose netmask is wider than the program hashes with, so that
// the clients of one template keep reaching one worker
// (forwarder.FanoutMasks). It never narrows the mask: that would move
// clients, and their connections, to other workers for nothing.
func (d *Director) widenFanout(t *forwarder.Table) error {
	if len(d.conns) < 2 {
		return nil
	}
	v4, v6 := forwarder.FanoutMasks(t)
	v4, v6 = min(v4, d.fanout4), min(v6, d.fanout6)
	if v4 == d.fanout4 && v6 == d.fanout6 {
		return nil
	}
	prog, err := forwarder.BuildFanout(v4, v6)
	if err != nil {
		return err
	}
	if err := d.conns[0].SetFanout(prog); err != nil {
		return err
	}
	d.log.Warn("the workers' fanout now hashes clients by a persistence netmask: clients moved to another worker lose their connections", "ipv4_prefix", v4, "ipv6_prefix", v6)
	d.fanout4, d.fanout6 = v4, v6
	d.fanoutMasks.Store(uint64(v4)<<8 | uint64(v6))
	return nil
}

// destRemoved reports whether a real server of prev is not in next.
func destRemoved(prev, next *forwarder.Table) bool {
	ids := make(map[dest.ID]bool)
	for _, id := range next.DestIDs() {
		ids[id] = true
	}
	for _, id := range prev.DestIDs() {
		if !ids[id] {
			return true
		}
	}
	return false
}

func (d *Director) logTable(t *forwarder.Table) {
	vmac := t.Options().VIPMAC
	var vips []string
	for _, v := range t.VIPs() {
		vips = append(vips, v.String())
	}
	d.log.Info("virtual server table loaded", "services", len(t.Config().Services), "vips", strings.Join(vips, ","), "vip_mac", net.HardwareAddr(vmac[:]).String())
}

// Close releases the sockets, stops following the neighbour table, and
// turns the offloads that New turned off on again, unless a new udr took
// the table over (HandedOff): they stay off for it.
func (d *Director) Close() error {
	d.stopBGP()
	d.stopWatch()
	d.checker.Close()
	var errs []error
	for _, c := range d.conns {
		errs = append(errs, c.Close())
	}
	if d.HandedOff() && d.offloads.Changed() {
		// The udr that took the table over forwards on this interface
		// now: the offloads stay off for it.
		d.log.Info("offloads left off for the udr that took over", "iface", d.offloads.Iface)
	} else {
		d.restoreOffloads()
	}
	d.ns.Close()
	return errors.Join(errs...)
}

// Stats returns the workers' verdict counters, summed. Call it after Run
// returned.
func (d *Director) Stats() forwarder.Stats { return d.ws.PipelineStats() }

// Run forwards frames until ctx is done. The sync daemons of the
// settings start with it, and every sync daemon stops before it returns.
func (d *Director) Run(ctx context.Context) error {
	go d.estimate(ctx)
	go d.checker.Run(ctx)
	go d.runBGP(ctx)
	set := d.Settings()
	sctx, stopSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		d.sync.run(sctx, set.Sync, set.Iface)
	}()
	err := d.loop(ctx)
	stopSync()
	<-syncDone
	return err
}

// neighborSeen takes a MAC from the kernel's neighbour table.
func (d *Director) neighborSeen(addr netip.Addr, mac [6]byte) {
	if d.neigh.Learn(addr, mac, forwarder.NeighborKernel, time.Now()) {
		d.log.Info("real server MAC from the kernel neighbour table", "addr", addr, "mac", net.HardwareAddr(mac[:]).String())
	}
}

// ConnStats returns the sockets' counters, summed.
func (d *Director) ConnStats() forwarder.ConnStats {
	var sum forwarder.ConnStats
	for _, c := range d.conns {
		sum.Add(c.Stats())
	}
	return sum
}

// IO returns the receive backend in use: forwarder.IORing, IORingV2 or
// IOSocket.
func (d *Director) IO() forwarder.IO { return d.conns[0].IO() }

// Workers returns the number of packet workers.
func (d *Director) Workers() int { return len(d.ws) }

// WorkerStats returns each worker's counters as last published.
func (d *Director) WorkerStats() []forwarder.WorkerStats {
	out := make([]forwarder.WorkerStats, len(d.ws))
	for i, w := range d.ws {
		out[i] = w.Stats()
	}
	return out
}
