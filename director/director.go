//go:build linux

package director

import (
	"context"
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

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// Config is what a director needs to start.
type Config struct {
	Iface string // the interface clients and real servers are on
	Rules string // ipvsadm-save rules file, re-read by Reload

	// VIPMAC selects the MAC that answers ARP/NDP for the VIPs: "" for the
	// virtual MAC (arpresponder.VirtualMAC), "iface" for the interface's
	// own MAC, or a MAC address.
	VIPMAC string
	// AnnounceInterval is the period of gratuitous ARP / unsolicited NA;
	// 0 means arpresponder.DefaultAnnounceInterval.
	AnnounceInterval time.Duration
	// Capacity bounds the connection table; 0 means forwarder.DefaultCapacity.
	Capacity  int
	SloppyTCP bool
	// KeepOffloads leaves GRO/LRO/TSO/GSO as they are. By default they are
	// turned off, so that no frame larger than the MTU reaches udr.
	KeepOffloads bool

	Logger *slog.Logger
}

// Director runs udr's data plane on one interface: one worker that owns the
// AF_PACKET socket, the pipeline and the connection table, and a control
// side (Reload, the neighbour watcher) that swaps compiled tables in.
type Director struct {
	cfg   Config
	log   *slog.Logger
	ifi   host.Interface
	conn  *forwarder.PacketConn
	reg   *service.Registry
	neigh *forwarder.Neighbors
	table atomic.Pointer[forwarder.Table]
	p     *forwarder.Pipeline

	mu      sync.Mutex // serialises Reload
	changed chan struct{}

	// Owned by the worker.
	announcer *arpresponder.Announcer
	conflicts map[[6]byte]bool
	noNeigh   map[service.DestID]bool
	lastProbe time.Time
	lastCheck time.Time
	lastDrops time.Time
	drops     uint64
	reachable map[netip.Addr]bool

	stopWatch func()
}

// probeInterval is how often real servers are asked for their MAC.
const probeInterval = 5 * time.Second

// New checks the host, compiles the rules and opens the socket. The caller
// runs Run and then Close. New and Reload act on the network namespace of
// the calling thread: the sockets they open stay in it.
func New(cfg Config) (*Director, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d := &Director{
		cfg:       cfg,
		log:       cfg.Logger,
		reg:       service.NewRegistry(1 << 16),
		neigh:     forwarder.NewNeighbors(1 << 16),
		changed:   make(chan struct{}, 1),
		announcer: arpresponder.NewAnnouncer(cfg.AnnounceInterval),
		conflicts: make(map[[6]byte]bool),
		noNeigh:   make(map[service.DestID]bool),
		reachable: make(map[netip.Addr]bool),
	}
	var err error
	if d.ifi, err = host.InterfaceInfo(cfg.Iface); err != nil {
		return nil, err
	}
	rules, err := d.loadRules()
	if err != nil {
		return nil, err
	}
	t, err := d.compile(rules, nil)
	if err != nil {
		return nil, err
	}
	if cfg.VIPMAC == "iface" {
		v4, v6, err := host.ForwardingEnabled(cfg.Iface)
		if err != nil {
			return nil, err
		}
		if v4 || v6 {
			return nil, fmt.Errorf("--vip-mac=iface with forwarding on for %s: the kernel would route the VIP traffic too; run `sysctl -w net.ipv4.conf.%s.forwarding=0 net.ipv6.conf.%s.forwarding=0` or use the default virtual MAC", cfg.Iface, cfg.Iface, cfg.Iface)
		}
	}
	if !cfg.KeepOffloads {
		changed, err := host.DisableOffloads(cfg.Iface)
		if err != nil {
			d.log.Warn("cannot turn off offloads; frames larger than the MTU will be dropped", "iface", cfg.Iface, "err", err)
		} else if len(changed) > 0 {
			d.log.Info("turned off offloads so that no frame exceeds the MTU", "iface", cfg.Iface, "features", strings.Join(changed, ","))
		}
	}
	filter, err := forwarder.BuildFilter(t.VIPs())
	if err != nil {
		return nil, err
	}
	ccfg := forwarder.ConnConfig{Filter: filter}
	if vmac := t.Options().VIPMAC; vmac != d.ifi.MAC {
		ccfg.ExtraMACs = [][6]byte{vmac}
	}
	if d.conn, err = forwarder.Listen(cfg.Iface, ccfg); err != nil {
		return nil, err
	}
	if d.stopWatch, err = host.WatchNeighbors(d.ifi.Index, d.neighborSeen); err != nil {
		d.log.Warn("not watching the kernel neighbour table", "err", err)
		d.stopWatch = func() {}
	}
	d.table.Store(t)
	conns := conntrack.New(capacityOr(cfg.Capacity), d.reg, conntrack.Options{Timeouts: t.Config().Timeouts})
	d.p = forwarder.NewPipeline(forwarder.PipelineConfig{Table: &d.table, Conns: conns, Neighbors: d.neigh, Registry: d.reg, Epoch: time.Now()})
	d.logTable(t)
	return d, nil
}

func capacityOr(n int) int {
	if n == 0 {
		return forwarder.DefaultCapacity
	}
	return n
}

func (d *Director) loadRules() (*service.Config, error) {
	f, err := os.Open(d.cfg.Rules)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, warnings, err := service.ParseRules(f, d.cfg.Rules, func(s string) bool { return slices.Contains(sched.Names, s) })
	for _, w := range warnings {
		d.log.Warn(w)
	}
	return cfg, err
}

// compile checks rules against the host and builds a Table.
func (d *Director) compile(rules *service.Config, prev *forwarder.Table) (*forwarder.Table, error) {
	var vips []netip.Addr
	for _, s := range rules.Services {
		if !slices.Contains(vips, s.Addr) {
			vips = append(vips, s.Addr)
		}
	}
	local, err := host.LocalVIPs(vips)
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
	opts := forwarder.Options{IfMAC: d.ifi.MAC, SloppyTCP: d.cfg.SloppyTCP}
	switch d.cfg.VIPMAC {
	case "":
		opts.VIPMAC = arpresponder.VirtualMAC(d.ifi.MAC, vips)
	case "iface":
		opts.VIPMAC = d.ifi.MAC
	default:
		hw, err := net.ParseMAC(d.cfg.VIPMAC)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			return nil, fmt.Errorf("--vip-mac %q: want a unicast Ethernet MAC, \"iface\" or nothing", d.cfg.VIPMAC)
		}
		opts.VIPMAC = [6]byte(hw)
	}
	return forwarder.Compile(rules, d.reg, d.neigh, prev, opts)
}

// Reload re-reads the rules file and swaps the new table in. Connections to
// real servers that remain go on; an invalid file changes nothing.
func (d *Director) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	rules, err := d.loadRules()
	if err != nil {
		return err
	}
	prev := d.table.Load()
	t, err := d.compile(rules, prev)
	if err != nil {
		return err
	}
	if !slices.Equal(t.VIPs(), prev.VIPs()) {
		filter, err := forwarder.BuildFilter(t.VIPs())
		if err != nil {
			return err
		}
		if err := d.conn.SetFilter(filter); err != nil {
			return err
		}
	}
	if vmac := t.Options().VIPMAC; vmac != prev.Options().VIPMAC && vmac != d.ifi.MAC {
		if err := d.conn.AddUnicastMAC(vmac); err != nil {
			return err
		}
	}
	d.table.Store(t)
	select {
	case d.changed <- struct{}{}:
	default:
	}
	d.logTable(t)
	return nil
}

func (d *Director) logTable(t *forwarder.Table) {
	vmac := t.Options().VIPMAC
	var vips []string
	for _, v := range t.VIPs() {
		vips = append(vips, v.String())
	}
	d.log.Info("virtual server table loaded", "services", len(t.Config().Services), "vips", strings.Join(vips, ","), "vip_mac", net.HardwareAddr(vmac[:]).String())
}

// Close releases the socket and stops following the neighbour table.
func (d *Director) Close() error {
	d.stopWatch()
	return d.conn.Close()
}

// Stats returns the worker's verdict counters. Call it after Run returned.
func (d *Director) Stats() forwarder.Stats { return *d.p.Stats() }

// Run forwards frames until ctx is done.
func (d *Director) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		d.conn.SetReadDeadline(time.Now())
	}()
	return d.loop(ctx)
}

// neighborSeen takes a MAC from the kernel's neighbour table.
func (d *Director) neighborSeen(addr netip.Addr, mac [6]byte) {
	if d.neigh.Set(addr, mac) {
		d.log.Info("real server MAC from the kernel neighbour table", "addr", addr, "mac", net.HardwareAddr(mac[:]).String())
	}
}

// ConnStats returns the socket's counters.
func (d *Director) ConnStats() forwarder.ConnStats { return d.conn.Stats() }
