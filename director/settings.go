//go:build linux

package director

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder"
	"golang.org/x/sys/unix"
)

// Settings are the settings of `udr run` that both a flag and a udr.yaml
// key give (the flag first, then the key). Resolve decides which applies.
type Settings struct {
	Iface string // --iface, interface: the interface clients and real servers are on
	// VIPMAC (--vip-mac, vip_mac) selects the MAC that answers ARP/NDP for
	// the VIPs: "" for the virtual MAC (arpresponder.VirtualMAC), "iface"
	// for the interface's own MAC, or a MAC address.
	VIPMAC string
	// AnnounceInterval (--garp-interval, announce_interval) is the period
	// of gratuitous ARP / unsolicited NA; 0 means
	// arpresponder.DefaultAnnounceInterval.
	AnnounceInterval time.Duration
	// Capacity (--capacity, capacity) bounds the connection table; 0
	// means forwarder.DefaultCapacity.
	Capacity int
	// The kernel's IPVS sysctls of the same names (forwarder.Options):
	// --sloppy-tcp, sloppy_tcp; --conn-reuse-mode, conn_reuse_mode;
	// --expire-nodest-conn, expire_nodest_conn;
	// --expire-quiescent-template, expire_quiescent_template.
	SloppyTCP               bool
	ConnReuseMode           forwarder.ConnReuse
	ExpireNodestConn        bool
	ExpireQuiescentTemplate bool
	// DropEntry (--drop-entry, drop_entry) and SecureTCP (--secure-tcp,
	// secure_tcp) are the modes of the kernel's defences of the same
	// names, driven by the connection table's fill
	// (conntrack.DefenseMode).
	DropEntry, SecureTCP conntrack.DefenseMode
	// ControlSocket (--control, control_socket) and MetricsAddress
	// (--metrics, metrics_address) are where udr run serves its control
	// API and its metrics; "off" disables either. The director itself
	// does not use them.
	ControlSocket  string
	MetricsAddress string
	// StateFile (--state, state_file) is where a stopping udr leaves its
	// connection table and scheduler positions, and where a starting one
	// takes them from: "" for udr.state next to the control socket (none
	// when that is off), "off" for none (StatePath).
	StateFile string
	// IO (--io, io) selects how frames are received: forwarder.IORing,
	// forwarder.IORingV2, forwarder.IOSocket, or forwarder.IOAuto, the
	// V2 ring when the kernel gives one. The zero value is IOSocket; udr
	// run's default is IOAuto.
	IO forwarder.IO
	// Workers (--workers, workers) is the number of packet workers, each
	// with its own socket of one PACKET_FANOUT group, pipeline and share
	// of Capacity (forwarder.ListenGroup, forwarder.Workers); 0 means 1,
	// WorkersAuto one per CPU that udr may run on but one (udr run's
	// default).
	Workers int
	// Standby (--standby, standby) starts the director in standby
	// (forwarder.Options.Standby): the backup of an active/backup pair,
	// until SetStandby(false) (udr admin --active). Only the start: a
	// reload leaves the state as it is, which belongs to whatever drives
	// the pair (keepalived).
	Standby bool
	// Sync (the --sync* flags, the sync block) are the connection sync
	// daemons started at Run, and started, stopped or restarted by a
	// Reload that changes them; its Interface "" is Iface.
	Sync config.Sync
}

// Equal reports whether s and o are the same settings.
func (s Settings) Equal(o Settings) bool {
	if !s.Sync.Equal(o.Sync) {
		return false
	}
	s.Sync, o.Sync = config.Sync{}, config.Sync{}
	return reflect.DeepEqual(s, o) // comparable but for Sync, which is equal
}

// WorkersAuto asks for one packet worker per CPU in the process's affinity
// mask (sched_getaffinity) but one, at least one and at most
// config.MaxWorkers: the CPU left over runs the kernel's share of every
// frame, the softirq that receives it and the transmit path that sends it
// on, which CPU profiles of udr under a flood put at about 80 % of the
// cost (bench/README.md). On the project's 2-core machine one worker
// forwarded the 64-byte floods faster than two with every receive backend,
// and HTTP at the same rate.
const WorkersAuto = config.WorkersAuto

// workerCount resolves Settings.Workers to a number of workers.
func workerCount(n int) int {
	if n != WorkersAuto {
		return max(n, 1)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return min(max(set.Count()-1, 1), config.MaxWorkers)
}

// Check reports the first setting out of range, named by its flag: the
// checks of udr.yaml's decoder (config.CheckCapacity, ...), for values
// that came from flags or from a caller of New. A zero Capacity or
// AnnounceInterval means the default, except for the settings in explicit
// (flags given on the command line), where 0 is a value.
func (s Settings) Check(explicit Setting) error {
	if s.Capacity != 0 || explicit&SetCapacity != 0 {
		if err := config.CheckCapacity(s.Capacity); err != nil {
			return fmt.Errorf("--capacity %w", err)
		}
	}
	if s.AnnounceInterval != 0 || explicit&SetAnnounceInterval != 0 {
		if err := config.CheckAnnounceInterval(s.AnnounceInterval); err != nil {
			return fmt.Errorf("--garp-interval %w", err)
		}
	}
	if _, err := config.ParseVIPMAC(s.VIPMAC); err != nil {
		return fmt.Errorf("--vip-mac %w", err)
	}
	return nil
}

// Setting is a set of Settings' fields, one bit each.
type Setting uint32

// The fields of Settings.
const (
	SetIface Setting = 1 << iota
	SetVIPMAC
	SetAnnounceInterval
	SetCapacity
	SetSloppyTCP
	SetConnReuseMode
	SetExpireNodestConn
	SetExpireQuiescentTemplate
	SetControlSocket
	SetMetricsAddress
	SetIO
	SetWorkers
	SetStateFile
	SetDropEntry
	SetSecureTCP
	SetStandby
	SetSync
)

// reloadable are the settings that Reload applies. The others hold
// resources taken at New (the interface, its MAC memberships, the
// connection table, the announcer, the sockets of udr run) and change only
// with a restart.
const reloadable = SetSloppyTCP | SetConnReuseMode | SetExpireNodestConn | SetExpireQuiescentTemplate |
	SetDropEntry | SetSecureTCP | SetSync

// Resolve returns the settings in force: flags > file > defaults. Each
// setting in given (the flags given on the command line) comes from flags;
// any other from fc, the udr.yaml, which has every key it leaves out set to
// its default; without a file (fc nil), from flags, which then hold the
// flags' defaults.
//
// It is the one place where the two sources meet: udr run and the director
// (at New and at every Reload, which reads the file again) both use it.
func Resolve(flags Settings, given Setting, fc *config.File) (Settings, error) {
	if fc == nil {
		return flags, nil
	}
	reuse, err := forwarder.ConnReuseMode(fc.ConnReuseMode)
	if err != nil {
		return Settings{}, fmt.Errorf("conn_reuse_mode: %w", err)
	}
	io, err := forwarder.ParseIO(fc.IO)
	if err != nil {
		return Settings{}, err
	}
	metrics := fc.MetricsAddress
	if metrics == "" {
		metrics = "off"
	}
	file := Settings{
		Iface:                   fc.Interface,
		VIPMAC:                  fc.VIPMAC,
		AnnounceInterval:        fc.AnnounceInterval,
		Capacity:                fc.Capacity,
		SloppyTCP:               fc.SloppyTCP,
		ConnReuseMode:           reuse,
		ExpireNodestConn:        fc.ExpireNodestConn,
		ExpireQuiescentTemplate: fc.ExpireQuiescentTemplate,
		DropEntry:               conntrack.DefenseMode(fc.DropEntry), // 0..3, checked by config
		SecureTCP:               conntrack.DefenseMode(fc.SecureTCP),
		ControlSocket:           fc.ControlSocket,
		MetricsAddress:          metrics,
		IO:                      io,
		Workers:                 fc.Workers,
		StateFile:               fc.StateFile,
		Standby:                 fc.Standby,
		Sync:                    fc.Sync,
	}
	return merge(file, flags, given), nil
}

// merge returns s with the fields in which replaced by those of from.
func merge(s, from Settings, which Setting) Settings {
	if which&SetIface != 0 {
		s.Iface = from.Iface
	}
	if which&SetVIPMAC != 0 {
		s.VIPMAC = from.VIPMAC
	}
	if which&SetAnnounceInterval != 0 {
		s.AnnounceInterval = from.AnnounceInterval
	}
	if which&SetCapacity != 0 {
		s.Capacity = from.Capacity
	}
	if which&SetSloppyTCP != 0 {
		s.SloppyTCP = from.SloppyTCP
	}
	if which&SetConnReuseMode != 0 {
		s.ConnReuseMode = from.ConnReuseMode
	}
	if which&SetExpireNodestConn != 0 {
		s.ExpireNodestConn = from.ExpireNodestConn
	}
	if which&SetExpireQuiescentTemplate != 0 {
		s.ExpireQuiescentTemplate = from.ExpireQuiescentTemplate
	}
	if which&SetDropEntry != 0 {
		s.DropEntry = from.DropEntry
	}
	if which&SetSecureTCP != 0 {
		s.SecureTCP = from.SecureTCP
	}
	if which&SetControlSocket != 0 {
		s.ControlSocket = from.ControlSocket
	}
	if which&SetMetricsAddress != 0 {
		s.MetricsAddress = from.MetricsAddress
	}
	if which&SetIO != 0 {
		s.IO = from.IO
	}
	if which&SetWorkers != 0 {
		s.Workers = from.Workers
	}
	if which&SetStateFile != 0 {
		s.StateFile = from.StateFile
	}
	if which&SetStandby != 0 {
		s.Standby = from.Standby
	}
	if which&SetSync != 0 {
		s.Sync = from.Sync
	}
	return s
}

// settingKeys are the udr.yaml keys of the settings, for messages.
var settingKeys = []struct {
	set Setting
	key string
}{
	{SetIface, "interface"}, {SetVIPMAC, "vip_mac"}, {SetAnnounceInterval, "announce_interval"},
	{SetCapacity, "capacity"}, {SetSloppyTCP, "sloppy_tcp"}, {SetConnReuseMode, "conn_reuse_mode"},
	{SetExpireNodestConn, "expire_nodest_conn"}, {SetExpireQuiescentTemplate, "expire_quiescent_template"},
	{SetDropEntry, "drop_entry"}, {SetSecureTCP, "secure_tcp"},
	{SetControlSocket, "control_socket"}, {SetMetricsAddress, "metrics_address"}, {SetIO, "io"},
	{SetWorkers, "workers"}, {SetStateFile, "state_file"}, {SetStandby, "standby"}, {SetSync, "sync"},
}

// differ returns the settings in which a and b differ.
func differ(a, b Settings) Setting {
	var d Setting
	for _, k := range settingKeys {
		if !merge(a, b, k.set).Equal(a) {
			d |= k.set
		}
	}
	return d
}

// keys names the udr.yaml keys of s, comma-separated.
func (s Setting) keys() string {
	var names []string
	for _, k := range settingKeys {
		if s&k.set != 0 {
			names = append(names, k.key)
		}
	}
	return strings.Join(names, ", ")
}
