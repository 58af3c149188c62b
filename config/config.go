package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/udr-lb/udr/bgp"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/service"
)

// Defaults of udr.yaml's top-level keys.
const (
	DefaultControlSocket    = "/run/udr/udr.sock"
	DefaultMetricsAddress   = "127.0.0.1:9780"
	DefaultAnnounceInterval = 10 * time.Second
	MinAnnounceInterval     = time.Second
	MaxAnnounceInterval     = time.Hour
	DefaultCapacity         = 1 << 20
	MaxCapacity             = 1 << 28
	DefaultConnReuseMode    = 1 // the kernel's conn_reuse_mode default
	DefaultIO               = "auto"
	DefaultWorkers          = WorkersAuto
	MaxWorkers              = 256
	// WorkersAuto asks for one packet worker per CPU that udr may run on
	// but one (director.WorkersAuto): workers: auto, --workers auto.
	WorkersAuto = -1
)

// File is udr.yaml, udr run's configuration file, checked, with every
// default filled in. Every key is optional except interface; a key left out
// (or given no value) takes the default shown.
//
//	interface: eth0                  # the director's interface (required)
//	vip_mac: ""                      # the MAC that VIPs answer with: "" a virtual MAC,
//	                                 # "iface" the interface's own, or a unicast MAC
//	control_socket: /run/udr/udr.sock
//	state_file: ""                   # where SIGTERM leaves the connection table for the next
//	                                 # start: "" = udr.state next to the control socket, off = none
//	metrics_address: 127.0.0.1:9780  # host:port; "" or "off" disables the metrics
//	io: auto                         # how frames are received: ring (TPACKET_V3), ring-v2
//	                                 # (TPACKET_V2), socket (recvmmsg), or auto, the ring
//	                                 # when the kernel gives one
//	workers: auto                    # packet workers, 1..256 or auto (one per CPU udr may
//	                                 # run on but one), each with a socket of one
//	                                 # PACKET_FANOUT group and a share of the capacity
//	announce_interval: 10s           # gratuitous ARP / unsolicited NA period, 1s..1h
//	standby: false                   # start in standby (a VRRP pair's backup): no ARP/NDP
//	                                 # answers, no forwarding, until `udr admin --active`
//	capacity: 1048576                # connection table entries
//	sloppy_tcp: false                # let any TCP packet (not only SYN) create an entry
//	conn_reuse_mode: 1               # the kernel's sysctls of that name: 0..3
//	expire_nodest_conn: false        # a deleted server's connections expire right after the delete
//	expire_quiescent_template: false # persistent clients leave a weight-0 server
//	drop_entry: 0                    # the kernel's defences: 0 off, 1 on while the connection
//	secure_tcp: 0                    # table is 7/8 full, 3 always on (conntrack's doc)
//	timeouts: {tcp: 0s, tcp_fin: 0s, udp: 0s}   # ipvsadm --set; whole seconds, 0s = kernel default (900s, 120s, 300s)
//	sync: {...}                      # the connection sync daemons (Sync); absent = none
//	rules: ""                        # an `ipvsadm -S -n` rules file, relative to this file's directory
//	services:                        # or the services themselves; not both
//	  - protocol: tcp                # tcp (default) or udp
//	    address: 192.0.2.100         # the VIP (required)
//	    port: 80                     # required; 0 = every port, only with persistence
//	    scheduler: wlc               # an IPVS scheduler name
//	    flags: []                    # ipvsadm -b: flag-1..3, sh-fallback, sh-port, mh-fallback, mh-port
//	    persistence: {timeout: 360s, netmask: 32}   # ipvsadm -p -M; absent = not persistent,
//	                                 # {} = the defaults; netmask: a prefix length, or an IPv4 mask
//	    one_packet: false            # ipvsadm -o, udp only
//	    health_check: {...}          # the default check of its servers; absent = none
//	    sorry_server: {address: 192.0.2.20, port: 0, inhibit: false}   # keepalived's sorry_server:
//	                                 # the only server (weight 1) while below quorum; absent = none;
//	                                 # port as a server's; inhibit: in the table at weight 0 otherwise
//	                                 # (sorry_server_inhibit) instead of out of it
//	    quorum: 1                    # keepalived's: the weights of the available servers must sum
//	    hysteresis: 0                # to quorum+hysteresis to be up, and fall below
//	                                 # quorum-hysteresis (or to 0) to be down
//	    servers:                     # ipvsadm -a, in this order: the first listed ends up last
//	      - address: 192.0.2.11      # required; the VIP's address family
//	        port: 0                  # 0 = the service port; any other is ignored, with a
//	                                 # warning: direct routing forwards to the service port
//	        weight: 1                # 0..65535; 0 quiesces
//	        upper_threshold: 0       # ipvsadm -x; 0 = none
//	        lower_threshold: 0       # ipvsadm -y; at most upper_threshold
//	        health_check: {...}      # overrides the service's field by field;
//	                                 # one of another kind inherits nothing; {kind: none} = no check
//	bgp: {...}                       # announce the VIPs to routers (bgpDoc in configbgp.go); absent = no BGP
//
// A health_check mapping, with its defaults (health.CheckConfig's):
//
//	kind: tcp            # tcp, http, https, udp, dns, misc, or none (keepalived's TCP_CHECK,
//	                     # HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK, MISC_CHECK)
//	port: 0              # 0 = the real server's port; required when the service port is 0;
//	                     # not for misc (keepalived's connect_port)
//	source: ""           # the director's address checks come from (keepalived's bindto);
//	                     # "" = the kernel's choice; not for misc nor mode dr
//	path: /              # http, https only
//	host: ""             # http, https only; "" = the real server's address; https: also the
//	                     # TLS server name (SNI) unless an address; certificates are not verified
//	status: 200          # http, https only, 100..599; or statuses and ranges, as keepalived's
//	                     # status_code: "200-299 304" or [200, "301-302"]
//	digest: ""           # http, https only: the MD5 the body must have, 32 hex digits
//	                     # (keepalived's url { digest }); the body is read up to 1 MiB
//	dns_name: ""         # dns only, required
//	dns_type: A          # dns only: A, AAAA, NS, SOA, MX, TXT, CNAME, PTR, SRV or 1..65535
//	payload: ""          # udp only: the datagram sent
//	script: ""           # misc only, required: "/path arg ..." run directly (no shell), '…' "…"
//	                     # quoting; exit 0 = up, else down; killed with its process group at
//	                     # timeout (a failure) (keepalived's misc_path, misc_timeout)
//	misc_dynamic: false  # misc only: exit 0 = up at the configured weight, 1 = down,
//	                     # 2..255 = up at weight status-2 (keepalived's misc_dynamic)
//	interval: 2s         # 100ms..1h (keepalived's delay_loop)
//	timeout: 1s          # shorter than interval (keepalived's connect_timeout); misc: any,
//	                     # default the interval (keepalived's misc_timeout)
//	rise: 2              # 1..1000
//	fall: 3              # 1..1000
//	retry_interval: 0s   # 0s = interval; else 100ms..1h: after a failure that leaves the
//	                     # server up, the next check comes this long after it
//	                     # (keepalived's delay_before_retry; its retry N is fall N+1, rise 1)
//	initial_down: false  # start down, in service only after rise successes (keepalived's alpha)
//	mode: ""             # "" to the server's address; dr (tcp only) to the VIP via the server's MAC
//	on_failure: quiesce  # quiesce (weight 0) or remove
type File struct {
	Interface        string
	VIPMAC           string // "" (a virtual MAC), "iface", or a unicast MAC address
	ControlSocket    string
	StateFile        string // "" = udr.state next to the control socket; "off" = none
	MetricsAddress   string // host:port, or "" when disabled
	IO               string // ring, ring-v2, socket or auto
	Workers          int    // 1..MaxWorkers, or WorkersAuto
	AnnounceInterval time.Duration
	Capacity         int
	SloppyTCP        bool
	Timeouts         service.Timeouts // in seconds; 0 = the kernel default
	// Standby starts the director in standby, the state of an
	// active/backup pair's backup (forwarder.Options.Standby), until
	// `udr admin --active` switches it.
	Standby bool

	// The kernel's IPVS sysctls that change what happens to a connection
	// (Documentation/networking/ipvs-sysctl.rst), with its defaults.
	ConnReuseMode           int  // 0..3, default 1
	ExpireNodestConn        bool // default false
	ExpireQuiescentTemplate bool // default false
	DropEntry               int  // 0..3, default 0
	SecureTCP               int  // 0..3, default 0

	// Sync is the sync block: the connection sync daemons to run
	// (DefaultSync when the block is absent).
	Sync Sync

	// Rules is the rules file, joined to the directory of udr.yaml when
	// relative, or "". Its services are not in Services.
	Rules    string
	Services []Service

	// BGP is the bgp section: the VIPs are announced to routers; nil
	// when it is absent (configbgp.go has its keys).
	BGP *bgp.Config
}

// Service is one service of udr.yaml.
type Service struct {
	service.Key
	Scheduler   string
	Flags       service.SchedFlags
	Persistence *Persistence // nil: not persistent
	OnePacket   bool
	HealthCheck *health.CheckConfig // the service's own, the default of its servers; nil: none
	Servers     []Server

	// SorryServer, when set, is the only server while the service is
	// below its quorum; nil: none.
	SorryServer *SorryServer
	// Quorum and Hysteresis (keepalived's): the service is up while
	// the weights of its available servers (not down after their
	// checks) sum to at least Quorum-Hysteresis and not 0, and is up
	// again once they reach Quorum+Hysteresis. Quorum 1..2^31-1,
	// default 1; Hysteresis 0.., default 0.
	Quorum     int64
	Hysteresis int64
}

// SorryServer is a service's sorry server (keepalived's sorry_server,
// sorry_server_inhibit): while the service is below its quorum its
// available servers leave the table (quiesced or removed as their
// check's on_failure says; quiesced without a check) and the sorry server
// is in it with weight 1; above, it is out of the table, or in with weight
// 0 when Inhibit. It is not checked. Direct routing forwards to it at the
// service port, so it must be on the segment like any real server.
type SorryServer struct {
	Addr    netip.Addr
	Port    uint16 // the service port
	Inhibit bool
	asked   uint16 // the port as written, 0: none
}

// Persistence is a service's persistence (ipvsadm -p and -M).
type Persistence struct {
	Timeout time.Duration // whole seconds, default 360s
	Netmask int           // prefix length, default 32 (IPv4) or 128 (IPv6)
}

// Server is one real server of a service, in file order.
type Server struct {
	Addr           netip.Addr
	Port           uint16 // always the service port: direct routing forwards to it
	Weight         int32
	UpperThreshold uint32
	LowerThreshold uint32
	HealthCheck    *health.CheckConfig // after inheritance from the service; nil: none
}

// Load reads udr.yaml at path and returns it, the virtual server
// table it defines, and warnings (real server ports that direct routing
// ignores). The table comes from the rules file, or from the services,
// which are applied as the equivalent ipvsadm -A and -a commands through
// Apply, so that every rule of a rules file holds (the kernel's list order
// too: the server listed first ends up last in Dests). A scheduler exists
// when udr's sched package has it (sched.Valid).
//
// Every problem is reported, joined, each as "path:line: field: message",
// for example
//
//	udr.yaml:12: services[0].servers[1].weight: 70000 out of range 0..65535
//
// except that a YAML syntax error or an unknown or misshapen key stops the
// reading at once. On error the File and Config are nil.
func Load(path string) (*File, *service.Config, []string, error) {
	data, err := readLimited(path, "udr.yaml", MaxFileSize)
	if err != nil {
		return nil, nil, nil, err
	}
	return parseConfig(data, path, filepath.Dir(path))
}

// Parse is Load of data, a udr.yaml named name in its messages, whose
// relative rules path is relative to dir: for a udr.yaml that is not a
// file, such as the translation of a keepalived.conf.
func Parse(data []byte, name, dir string) (*File, *service.Config, []string, error) {
	if len(data) > MaxFileSize {
		return nil, nil, nil, fmt.Errorf("%s: larger than %d bytes, the most udr reads of a udr.yaml", name, MaxFileSize)
	}
	return parseConfig(data, name, dir)
}

// parseConfig is Load of data, named name, whose relative rules path
// is relative to dir.
func parseConfig(data []byte, name, dir string) (*File, *service.Config, []string, error) {
	doc, d, err := decodeDoc(data, name)
	if err != nil {
		return nil, nil, nil, err
	}
	fc, cfg, warnings := d.config(doc, dir)
	if len(d.errs) > 0 {
		return nil, nil, warnings, d.err()
	}
	return fc, cfg, warnings, nil
}

// HealthChecks returns the health check of every real server that has one,
// by service and by the real server's address and port, with Port set to
// the real server's port when the check gives none.
func (fc *File) HealthChecks() map[service.Key]map[netip.AddrPort]health.CheckConfig {
	m := make(map[service.Key]map[netip.AddrPort]health.CheckConfig)
	for _, s := range fc.Services {
		for _, d := range s.Servers {
			if d.HealthCheck == nil {
				continue
			}
			hc := *d.HealthCheck
			if hc.Port == 0 {
				hc.Port = d.Port
			}
			if m[s.Key] == nil {
				m[s.Key] = make(map[netip.AddrPort]health.CheckConfig)
			}
			m[s.Key][netip.AddrPortFrom(d.Addr, d.Port)] = hc
		}
	}
	return m
}

// Check loads udr.yaml at path as Load does, for `udr
// config check`. The summary is the warnings, one a line, then a line such
// as "udr.yaml: 2 services, 5 real servers, 3 health checks: ok".
func Check(path string) (string, error) {
	fc, cfg, warnings, err := Load(path)
	if err != nil {
		return "", err
	}
	servers := 0
	for _, s := range cfg.Services {
		servers += len(s.Dests)
	}
	checks := 0
	for _, m := range fc.HealthChecks() {
		checks += len(m)
	}
	summary := ""
	for _, w := range warnings {
		summary += w + "\n"
	}
	return summary + fmt.Sprintf("%s: %s, %s, %s: ok", path,
		plural(len(cfg.Services), "service"), plural(servers, "real server"), plural(checks, "health check")), nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
