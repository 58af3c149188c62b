//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/bounded"
	"github.com/udr-lb/udr/internal/privs"
	udrmetrics "github.com/udr-lb/udr/metrics"
	"github.com/udr-lb/udr/service"
)

// runDirector is `udr run`: the director on a live interface until SIGTERM
// or SIGINT; SIGHUP re-reads the rules.
func runDirector(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseRun(args, stderr)
	if cfg == nil {
		return err // nil for -h
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = log
	keep, err := runCapabilities(cfg)
	if err != nil {
		return err
	}
	// Without the capabilities it does not need, before it opens anything:
	// this may re-execute udr (same pid, arguments and descriptors).
	caps, err := privs.Restrict(keep, pprof.StopCPUProfile) // UDR_CPUPROFILE: the new image profiles
	if err != nil {
		return fmt.Errorf("run: give up the capabilities udr does not need: %w", err)
	}
	log.Info("capabilities", "kept", caps.Permitted.String(), "bounding", caps.Bounding.String(), "no_new_privs", caps.NoNewPrivs)
	// The listeners' connections are cut from the descriptor limit, so
	// that no client of theirs can take the descriptors of the packet
	// sockets, the control socket, reloads and health checks.
	fds, err := bounded.Descriptors()
	if err != nil {
		return err
	}
	controlConns, metricsConns := bounded.ConnCap(fds, director.ControlMaxConns), bounded.ConnCap(fds, udrmetrics.MaxConns)
	log.Info("descriptor budget", "limit", fds, "control_connections", controlConns, "metrics_connections", metricsConns)
	if fds < lowDescriptors {
		log.Warn("the descriptor limit is low: the control socket and metrics hold fewer connections, and many health checks may not find a descriptor; raise it (LimitNOFILE=, ulimit -Hn)",
			"limit", fds, "want_at_least", lowDescriptors)
	}
	d, err := director.New(*cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	set := d.Settings() // the flags, and the file's settings where none is given
	control, metrics := set.ControlSocket, set.MetricsAddress

	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGTERM or SIGINT: with BGP, the routes are withdrawn first and the
	// workers go on forwarding for the drain time, while the routers
	// move the flows to the other directors; then everything stops.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sig.Done():
			d.Drain(ctx)
			cancel()
		case <-ctx.Done():
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := d.Reload(); err != nil {
					log.Error("reload failed; the running table stays", "rules", cfg.Rules, "err", err)
				} else {
					log.Info("reloaded", "rules", cfg.Rules)
				}
			}
		}
	}()
	listeners := make(map[string]*bounded.Counters) // for the metrics
	if control != "off" {
		ln, err := listenControl(control, cfg.TakeOver)
		if err != nil {
			return err
		}
		lim := director.ControlLimits(controlConns, log)
		lim.Counters = new(bounded.Counters)
		listeners["control"] = lim.Counters
		go func() {
			if err := d.ServeControl(ctx, ln, lim); err != nil {
				log.Error("control API stopped", "socket", control, "err", err)
			}
		}()
	}
	if metrics != "off" {
		ln, err := d.ListenMetrics(metrics)
		if err != nil {
			return err
		}
		lim := udrmetrics.Limits(metricsConns, log)
		lim.Counters = new(bounded.Counters)
		listeners["metrics"] = lim.Counters
		var more []prometheus.Collector
		if d.BGPStatus() != nil {
			more = append(more, udrmetrics.NewBGPCollector(d.BGPMetrics))
		}
		h, err := udrmetrics.Handler(udrmetrics.NewCollector(d.MetricsSnapshot, &udrmetrics.Options{Rates: true, Listeners: listeners}), more...)
		if err != nil {
			return err
		}
		go func() {
			if err := udrmetrics.Serve(ctx, ln, h, lim); err != nil {
				log.Error("metrics endpoint stopped", "address", metrics, "err", err)
			}
		}()
	}
	log.Info("udr running", "iface", set.Iface, "rules", cfg.Rules, "config", cfg.ConfigFile, "control", control, "metrics", metrics)
	sdNotify("READY=1")
	err = d.Run(ctx)
	sdNotify("STOPPING=1")
	// The workers have stopped: hand their tables to the next start,
	// unless a new udr took them over already.
	if d.HandedOff() {
		log.Info("handed the connection table to the new udr, which forwards now")
	} else if serr := d.SaveState(); serr != nil {
		log.Error("state not saved: the next start begins with an empty connection table", "state", set.StatePath(), "err", serr)
	}
	st, cs := d.Stats(), d.ConnStats()
	log.Info("udr stopped", "forwarded", st.Verdicts[0], "replies", st.Verdicts[1], "rx", cs.RxFrames, "kernel_drops", cs.RxKernelDrops)
	return err
}

// runCapabilities are the capabilities `udr run` keeps: CAP_NET_RAW for its
// packet sockets, CAP_NET_ADMIN for the NIC's unicast MAC list, promiscuous
// mode and the offloads it turns on again when it stops, and
// CAP_NET_BIND_SERVICE only when the metrics endpoint listens on a port
// below 1024. Nothing else: udr reads its files as root's own, and runs its
// health checks in its own network namespace (no setns, no CAP_SYS_ADMIN).
func runCapabilities(cfg *director.Config) (privs.Set, error) {
	keep := privs.Of(unix.CAP_NET_RAW, unix.CAP_NET_ADMIN)
	set := cfg.Settings
	if cfg.ConfigFile != "" {
		fc, _, _, err := loadConfig(cfg)
		if err != nil {
			return 0, usageErrorf("run: %v", err)
		}
		if set, err = director.Resolve(cfg.Settings, cfg.Given, fc); err != nil {
			return 0, usageErrorf("run: %v", err)
		}
	}
	if cfg.ConfigFile != "" {
		// A BGP listener on port 179 (passive peers).
		if fc, _, _, err := loadConfig(cfg); err == nil && fc.BGP != nil && fc.BGP.ListenPort > 0 && fc.BGP.ListenPort < 1024 {
			keep |= privs.Of(unix.CAP_NET_BIND_SERVICE)
		}
	}
	if a := set.MetricsAddress; a != "off" && a != "" {
		if _, port, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 1024 {
				keep |= privs.Of(unix.CAP_NET_BIND_SERVICE)
			}
		}
	}
	return keep, nil
}

// lowDescriptors is the descriptor limit below which udr run warns: the
// listeners' caps shrink under it (bounded.ConnCap).
const lowDescriptors = 1024

// runFlags are the flags of udr run that give a director.Settings field.
var runFlags = map[string]director.Setting{
	"iface":                     director.SetIface,
	"vip-mac":                   director.SetVIPMAC,
	"garp-interval":             director.SetAnnounceInterval,
	"capacity":                  director.SetCapacity,
	"sloppy-tcp":                director.SetSloppyTCP,
	"conn-reuse-mode":           director.SetConnReuseMode,
	"expire-nodest-conn":        director.SetExpireNodestConn,
	"expire-quiescent-template": director.SetExpireQuiescentTemplate,
	"drop-entry":                director.SetDropEntry,
	"secure-tcp":                director.SetSecureTCP,
	"control":                   director.SetControlSocket,
	"metrics":                   director.SetMetricsAddress,
	"io":                        director.SetIO,
	"workers":                   director.SetWorkers,
	"state":                     director.SetStateFile,
	"standby":                   director.SetStandby,
	"sync":                      director.SetSync,
	"sync-interface":            director.SetSync,
	"sync-id":                   director.SetSync,
	"sync-maxlen":               director.SetSync,
	"sync-group":                director.SetSync,
	"sync-port":                 director.SetSync,
	"sync-ttl":                  director.SetSync,
	"sync-peers":                director.SetSync,
}

// parseRun parses udr run's command line into the director's Config: the
// flags given and their values, and the flags' defaults for the others.
// With --config, director.Resolve takes those not given from the file. It
// returns nil and no error for -h.
func parseRun(args []string, stderr io.Writer) (*director.Config, error) {
	fs := flag.NewFlagSet("udr run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg director.Config
	fs.StringVar(&cfg.Iface, "iface", "", "`interface` the clients and real servers are on (required)")
	fs.StringVar(&cfg.Rules, "rules", "", "ipvsadm-save rules `file`; SIGHUP re-reads it")
	fs.StringVar(&cfg.ConfigFile, "config", "", "udr.yaml `file` (instead of --rules), whose settings apply where no flag is given; SIGHUP re-reads its services, timeouts, health checks and sysctls")
	keepalivedFile := fs.String("keepalived", "", "keepalived.conf `file` (instead of --rules or --config), its virtual servers translated as `udr config import` does; needs --iface; SIGHUP re-reads it")
	fs.StringVar(&cfg.VIPMAC, "vip-mac", "", "`MAC` answering ARP/NDP for the VIPs: empty for a virtual MAC, \"iface\" for the interface's, or an address")
	fs.DurationVar(&cfg.AnnounceInterval, "garp-interval", config.DefaultAnnounceInterval, "period of gratuitous ARP / unsolicited NA for the VIPs")
	fs.IntVar(&cfg.Capacity, "capacity", config.DefaultCapacity, "connection table capacity")
	fs.BoolVar(&cfg.SloppyTCP, "sloppy-tcp", false, "schedule TCP packets without SYN that have no entry (sysctl sloppy_tcp)")
	connReuse := fs.Int("conn-reuse-mode", config.DefaultConnReuseMode, "the kernel's conn_reuse_mode `0..3`: when a SYN reusing a client port is scheduled again")
	fs.BoolVar(&cfg.ExpireNodestConn, "expire-nodest-conn", false, "expire a deleted real server's connections right after the delete, and at their next packet (sysctl expire_nodest_conn)")
	fs.BoolVar(&cfg.ExpireQuiescentTemplate, "expire-quiescent-template", false, "persistent clients leave a weight-0 real server (sysctl expire_quiescent_template)")
	dropEntry := fs.Int("drop-entry", 0, "the kernel's drop_entry defence `0..3`: 0 off, 1 on while the connection table is 7/8 full, 3 always: drop unconfirmed connections idle past a limit")
	secureTCP := fs.Int("secure-tcp", 0, "the kernel's secure_tcp defence `0..3`: 0 off, 1 on while the connection table is 7/8 full, 3 always: the SYNACK state table and short idle limits")
	fs.BoolVar(&cfg.KeepOffloads, "keep-offloads", false, "leave GRO/LRO/TSO/GSO on (frames larger than the MTU are then dropped)")
	fs.StringVar(&cfg.ControlSocket, "control", director.DefaultControlSocket, "unix `socket` of the control API (udr admin); \"off\" disables it")
	fs.StringVar(&cfg.MetricsAddress, "metrics", config.DefaultMetricsAddress, "`address` of the Prometheus metrics endpoint; \"off\" disables it")
	ioMode := fs.String("io", config.DefaultIO, "how frames are received: `ring` (a TPACKET_V3 ring, frames decided in place), ring-v2 (a TPACKET_V2 ring: no wait for a block to fill), socket (recvmmsg), or auto (the ring-v2 ring when the kernel gives one, else the socket)")
	fs.BoolVar(&cfg.TakeOver, "takeover", false, "take the connection table over from the udr serving the control socket, which stops forwarding and exits (instead of reading the state file)")
	fs.StringVar(&cfg.StateFile, "state", "", "`file` where SIGTERM leaves the connection table and scheduler positions for the next start, which takes them over; empty for "+director.StateFileName+" next to the control socket, \"off\" for none")
	fs.BoolVar(&cfg.Standby, "standby", false, "start in standby, as the backup of an active/backup pair (keepalived's VRRP): no ARP/NDP answers for the VIPs and no forwarding until `udr admin --active`")
	syncDaemons := fs.String("sync", "off", "connection sync `daemons` to run: master, backup, master,backup, or off (ipvsadm --start-daemon); any --sync* flag replaces the config file's whole sync block")
	syncIface := fs.String("sync-interface", "", "`interface` of the sync daemons' multicast; empty for --iface (ipvsadm --mcast-interface)")
	syncID := fs.Int("sync-id", 0, "sync `ID` 0..255 written in the messages; a backup with 0 takes every ID (ipvsadm --syncid)")
	syncMaxLen := fs.Int("sync-maxlen", 0, "largest sync message in `bytes`, 1..65507; 0 for the kernel's default, 1472 (ipvsadm --sync-maxlen)")
	syncGroup := fs.String("sync-group", config.DefaultSyncGroup.String(), "sync multicast `group`, IPv4 or IPv6 (ipvsadm --mcast-group), or none to send to --sync-peers only")
	syncPort := fs.Int("sync-port", config.DefaultSyncPort, "sync UDP `port` (ipvsadm --mcast-port)")
	syncTTL := fs.Int("sync-ttl", config.DefaultSyncTTL, "sync multicast `TTL`, 1..255 (ipvsadm --mcast-ttl)")
	syncPeers := fs.String("sync-peers", "", "unicast sync `peers`, comma-separated ADDR or ADDR:PORT, sent to beside the group")
	workers := fs.String("workers", "auto", "`number` of packet workers (1..256), or auto (one per CPU udr may run on but one): sockets of one PACKET_FANOUT group that hands all of a client's frames to one worker, each with its own connection table (a share of --capacity)")
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err)
	}
	if fs.NArg() > 0 {
		return nil, usageErrorf("run: unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { cfg.Given |= runFlags[f.Name] })
	var err error
	if cfg.ConnReuseMode, err = forwarder.ConnReuseMode(*connReuse); err != nil {
		return nil, usageErrorf("run: --conn-reuse-mode: %v", err)
	}
	if cfg.DropEntry, err = conntrack.ParseDefenseMode(*dropEntry); err != nil {
		return nil, usageErrorf("run: --drop-entry: %v", err)
	}
	if cfg.SecureTCP, err = conntrack.ParseDefenseMode(*secureTCP); err != nil {
		return nil, usageErrorf("run: --secure-tcp: %v", err)
	}
	if cfg.IO, err = forwarder.ParseIO(*ioMode); err != nil {
		return nil, usageErrorf("run: --io: %v", err)
	}
	if cfg.Sync, err = parseSyncFlags(*syncDaemons, *syncIface, *syncID, *syncMaxLen, *syncGroup, *syncPort, *syncTTL, *syncPeers); err != nil {
		return nil, usageErrorf("run: %v", err)
	}
	cfg.Workers = config.WorkersAuto
	if *workers != "auto" {
		n, err := strconv.Atoi(*workers)
		if err != nil || n < 1 || n > config.MaxWorkers {
			return nil, usageErrorf("run: --workers %q: want 1..%d or auto", *workers, config.MaxWorkers)
		}
		cfg.Workers = n
	}
	// Every flag has a default in range: 0 is a value given.
	if err := cfg.Settings.Check(cfg.Given); err != nil {
		return nil, usageErrorf("run: %v", err)
	}
	given := 0
	for _, f := range []string{cfg.Rules, cfg.ConfigFile, *keepalivedFile} {
		if f != "" {
			given++
		}
	}
	if given != 1 {
		return nil, usageErrorf("run: give one of --rules, --config or --keepalived")
	}
	if *keepalivedFile != "" {
		if cfg.Iface == "" {
			return nil, usageErrorf("run: --keepalived needs --iface: a keepalived.conf does not say which interface udr listens on")
		}
		cfg.ConfigFile = *keepalivedFile
		cfg.Load = keepalivedLoader(*keepalivedFile, cfg.Iface)
	}
	if cfg.ConfigFile != "" {
		// A bad file is a bad command line, as a bad flag is. The
		// director reads it again, and at every SIGHUP.
		if _, _, _, err := loadConfig(&cfg); err != nil {
			return nil, usageErrorf("run: %v", err)
		}
	} else if cfg.Iface == "" {
		return nil, usageErrorf("run: --iface (or interface: in the config file) is required")
	}
	return &cfg, nil
}

// loadConfig loads the configuration file as the director will:
// cfg.Load when set (--keepalived), else the udr.yaml.
func loadConfig(cfg *director.Config) (*config.File, *service.Config, []string, error) {
	if cfg.Load != nil {
		return cfg.Load()
	}
	return config.Load(cfg.ConfigFile)
}

// parseSyncFlags reads the --sync* flags into a sync block, with the
// checks of udr.yaml's.
func parseSyncFlags(daemons, iface string, id, maxLen int, group string, port, ttl int, peers string) (config.Sync, error) {
	s := config.DefaultSync()
	switch daemons {
	case "off", "":
	case "master":
		s.Master = true
	case "backup":
		s.Backup = true
	case "master,backup", "backup,master":
		s.Master, s.Backup = true, true
	default:
		return s, fmt.Errorf("--sync %q: want master, backup, master,backup or off", daemons)
	}
	if iface != "" {
		if err := config.CheckInterfaceName(iface); err != nil {
			return s, fmt.Errorf("--sync-interface %v", err)
		}
	}
	s.Interface = iface
	if id < 0 || id > 255 {
		return s, fmt.Errorf("--sync-id %d out of range 0..255", id)
	}
	s.SyncID = id
	if maxLen < 0 || maxLen > config.MaxSyncMaxLen {
		return s, fmt.Errorf("--sync-maxlen %d out of range 0..%d", maxLen, config.MaxSyncMaxLen)
	}
	s.MaxLen = maxLen
	if group == "none" {
		s.Group = netip.Addr{}
	} else {
		g, err := netip.ParseAddr(group)
		if err != nil {
			return s, fmt.Errorf("--sync-group %q is not an IP address or none", group)
		}
		if err := config.CheckSyncGroup(g); err != nil {
			return s, fmt.Errorf("--sync-group %v", err)
		}
		s.Group = g
	}
	if port < 1 || port > 65535 {
		return s, fmt.Errorf("--sync-port %d out of range 1..65535", port)
	}
	s.Port = port
	if ttl < 1 || ttl > 255 {
		return s, fmt.Errorf("--sync-ttl %d out of range 1..255", ttl)
	}
	s.TTL = ttl
	if peers != "" {
		for _, p := range strings.Split(peers, ",") {
			ap, err := config.ParseSyncPeer(strings.TrimSpace(p), uint16(port))
			if err != nil {
				return s, fmt.Errorf("--sync-peers %v", err)
			}
			s.Peers = append(s.Peers, ap)
		}
		if len(s.Peers) > config.MaxSyncPeers {
			return s, fmt.Errorf("--sync-peers: %d peers, at most %d", len(s.Peers), config.MaxSyncPeers)
		}
	}
	if !s.Group.IsValid() && len(s.Peers) == 0 {
		return s, fmt.Errorf("--sync-group none needs --sync-peers")
	}
	return s, nil
}

// takeOverListenTimeout bounds how long a udr that took the table over
// waits for the old one to exit and free the control socket.
const takeOverListenTimeout = 20 * time.Second

// listenControl is director.ListenControl; after a take-over it retries
// while the old udr, which is exiting, still holds the socket.
func listenControl(path string, takeOver bool) (net.Listener, error) {
	deadline := time.Now().Add(takeOverListenTimeout)
	for {
		ln, err := director.ListenControl(path)
		if err == nil || !takeOver || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
