package admin

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/udr-lb/udr/service"
)

// Op is the command of an ipvsadm command line. The values from OpAddService
// to OpZero follow ipvsadm's CMD_ numbering (ipvsadm.c), which indexes its
// table of legal options.
type Op uint8

// Commands, as ipvsadm names them in its messages (cmdnames[]).
const (
	OpNone          Op = iota
	OpAddService       // -A, --add-service
	OpEditService      // -E, --edit-service
	OpDeleteService    // -D, --delete-service
	OpClear            // -C, --clear ("flush")
	OpList             // -L, -l, --list; also no arguments at all
	OpAddServer        // -a, --add-server
	OpDeleteServer     // -d, --delete-server
	OpEditServer       // -e, --edit-server
	OpSet              // --set tcp tcpfin udp
	OpStartDaemon      // --start-daemon master|backup
	OpStopDaemon       // --stop-daemon master|backup
	OpRestore          // -R, --restore
	OpSave             // -S, --save
	OpZero             // -Z, --zero
	OpHelp             // -h, --help
	OpVersion          // -v, --version
)

var opNames = [...]string{
	OpNone:          "none",
	OpAddService:    "add-service",
	OpEditService:   "edit-service",
	OpDeleteService: "delete-service",
	OpClear:         "flush",
	OpList:          "list",
	OpAddServer:     "add-server",
	OpDeleteServer:  "delete-server",
	OpEditServer:    "edit-server",
	OpSet:           "set",
	OpStartDaemon:   "start-daemon",
	OpStopDaemon:    "stop-daemon",
	OpRestore:       "restore",
	OpSave:          "save",
	OpZero:          "zero",
	OpHelp:          "help",
	OpVersion:       "version",
}

var opFlags = [...]string{
	OpAddService:    "-A",
	OpEditService:   "-E",
	OpDeleteService: "-D",
	OpClear:         "-C",
	OpList:          "-L",
	OpAddServer:     "-a",
	OpDeleteServer:  "-d",
	OpEditServer:    "-e",
	OpSet:           "--set",
	OpStartDaemon:   "--start-daemon",
	OpStopDaemon:    "--stop-daemon",
	OpRestore:       "-R",
	OpSave:          "-S",
	OpZero:          "-Z",
	OpHelp:          "-h",
	OpVersion:       "-v",
}

// String returns the command's name as ipvsadm's messages spell it, e.g.
// "add-service" or "flush".
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Flag returns the option that selects the command, e.g. "-A" or "--set".
func (o Op) Flag() string {
	if o != OpNone && int(o) < len(opFlags) {
		return opFlags[o]
	}
	return o.String()
}

// Option is a set of ipvsadm options, with ipvsadm's OPT_ bit values
// (ipvsadm.c), plus OptJSON, udr's own.
type Option uint64

// Options in ipvsadm's bit order; the order decides which message a
// command line with several faults gets.
const (
	OptNumeric Option = 1 << iota
	OptConnection
	OptService
	OptScheduler
	OptPersistent
	OptNetmask
	OptServer
	OptForward
	OptWeight
	OptUThreshold
	OptLThreshold
	OptMcast
	OptTimeout
	OptDaemon
	OptStats
	OptRate
	OptThresholds
	OptPersistentConn
	OptNoSort
	OptSyncID
	OptExact
	OptOnePacket
	OptPersistenceEngine
	OptSchedFlags
	OptMcastGroup
	OptMcastPort
	OptMcastTTL
	OptSyncMaxLen
	OptTunInfo
	OptTunType
	OptTunPort
	OptTunNoCsum
	OptTunCsum
	OptTunRemCsum
	// OptJSON is udr's -j/--json: list the table as JSON.
	OptJSON

	numOptions = iota
)

// optNames are ipvsadm's optnames[], used in its messages.
var optNames = [numOptions]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
	"json",
}

// Has reports whether every option of x is in o.
func (o Option) Has(x Option) bool { return o&x == x }

// String returns the options' names, comma separated, e.g. "numeric,stats".
func (o Option) String() string {
	var names []string
	for i := range numOptions {
		if o&(1<<i) != 0 {
			names = append(names, optNames[i])
		}
	}
	return strings.Join(names, ",")
}

// legalOptions is ipvsadm's commands_v_options table, one string per command
// from OpAddService to OpZero, one column per option bit (plus udr's json):
// '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
var legalOptions = [OpZero][numOptions]byte{
	//                  -n-csvc-s-p-M-r fwd-w-x-y mc tot dmn st rt thr pc srt sid ex ops pe -b grp port ttl size tinf type tprt nocs csum remc json
	OpAddService - 1:    row("xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx" + "x"),
	OpEditService - 1:   row("xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx" + "x"),
	OpDeleteService - 1: row("xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
	OpClear - 1:         row("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
	OpList - 1:          row(" 11xxxxxxxxx11       xxxxxxx xxxxx" + " "),
	OpAddServer - 1:     row("xx+xxx+    xxxxxxxxxxxxxxxxxx     " + "x"),
	OpDeleteServer - 1:  row("xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
	OpEditServer - 1:    row("xx+xxx+    xxxxxxxxxxxxxxxxxx     " + "x"),
	OpSet - 1:           row("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
	OpStartDaemon - 1:   row("xxxxxxxxxxx xxxxxxx xxxx    xxxxxx" + "x"),
	OpStopDaemon - 1:    row("xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx" + "x"),
	OpRestore - 1:       row("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
	OpSave - 1:          row(" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
	OpZero - 1:          row("xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x"),
}

func row(s string) [numOptions]byte {
	if len(s) != numOptions {
		panic(fmt.Sprintf("legal options row has %d columns, want %d", len(s), numOptions))
	}
	var r [numOptions]byte
	copy(r[:], s)
	return r
}

// Command is one parsed ipvsadm command line, with ipvsadm's defaults
// applied (process_options): scheduler wlc on -A and -E, weight 1, direct
// routing, persistence 360 s when -p has no value, netmask /32 or /128, and
// the real server port forced to the service port on -a and -e.
type Command struct {
	Op      Op
	Options Option // the options given, for the listing and its checks

	// Service is the virtual service the command names. Key is set by
	// -t/-u; -A and -E also fill the scheduler, flags and persistence.
	// Dests is always nil.
	Service service.Service
	// PE is the --pe persistence engine name; udr has none.
	PE string

	// Dest is the real server of -a, -e and -d: address, port (forced to
	// the service port on -a and -e), weight and thresholds. LastWeight is
	// left zero: Apply sets it.
	Dest service.Dest
	// AskedPort is the real server port as given with -r (the service port
	// when -r has none), before direct routing forced it.
	AskedPort uint16
	// PortForced reports that Dest.Port differs from AskedPort because
	// direct routing forwards to the service port.
	PortForced bool

	// Timeouts are the --set values; zero leaves a timeout unchanged.
	Timeouts service.Timeouts

	// Daemon holds the sync daemon options, which udr parses only to
	// refuse them with ipvsadm's messages.
	Daemon Daemon
}

// Daemon are the options of --start-daemon and --stop-daemon.
type Daemon struct {
	State          string // "master" or "backup"
	McastInterface string // default eth0 on --start-daemon
	SyncID         int
	SyncMaxLen     int
	McastGroup     netip.Addr
	McastPort      int
	McastTTL       int
}

// ForcedPortWarning returns udr's one-line warning for a real server port
// that direct routing ignored, or "" when the port was not changed.
func (c *Command) ForcedPortWarning() string {
	if !c.PortForced {
		return ""
	}
	return fmt.Sprintf("real server port %d ignored: direct routing forwards to the service port %d",
		c.AskedPort, c.Dest.Port)
}
