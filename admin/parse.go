package admin

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/udr-lb/udr/service"
)

// Limits of ipvsadm.c.
const (
	maxSchedName = 15 // IP_VS_SCHEDNAME_MAXLEN - 1
	maxPEName    = 32 // IP_VS_PENAME_MAXLEN
	maxIfName    = 15 // IP_VS_IFNAME_MAXLEN - 1
	maxSchedArg  = 127
	intMax       = 1<<31 - 1
)

// ParseCommand parses one ipvsadm command line (the arguments without the
// program name) exactly as ipvsadm 1.31 does (parse_options and the checks
// of process_options), and returns it with ipvsadm's defaults applied. No
// arguments at all mean -L, as for ipvsadm. -h and -v return OpHelp and
// OpVersion without looking at the rest.
//
// Errors are *UsageError with ipvsadm's message and exit status. udr adds
// refusals of its own, in the same form (exit status 2), for what a
// direct-routing director cannot do: -m, -i, -f, --sctp-service, and
// persistence masks that are not a prefix.
func ParseCommand(args []string) (*Command, error) {
	cmd, err := parseCommand(args)
	if err != nil {
		return nil, err
	}
	return cmd, nil
}

// parser is ipvsadm's struct ipvs_command_entry during parsing.
type parser struct {
	cmd        Command
	af         int    // 0 unset, 4 or 6: the service's address family
	netmask    uint32 // raw: an IPv4 mask, or an IPv6 prefix length
	destAF     int
	fwdSet     bool
	schedFlags string
	hasPort    bool
}

// parseCommand parses args; on error the returned command still carries the
// Op when the first option was a command, so that ParseRules can name it.
func parseCommand(args []string) (*Command, error) {
	p := &parser{netmask: 0xffffffff}
	p.cmd.Dest.Weight = service.DefaultWeight
	if len(args) == 0 {
		p.cmd.Op = OpList
		p.cmd.Service.Netmask = 32
		return &p.cmd, nil
	}
	err := p.parse(args)
	return &p.cmd, err
}

func (p *parser) parse(args []string) error {
	po := &popt{args: args}
	opt, arg, perr := po.nextOpt()
	if perr != poptOK {
		return &UsageError{Msg: tryHelp, Detail: "the first option must be a command", Code: ExitKernel}
	}
	if err := p.command(opt, arg); err != nil {
		return err
	}
	if p.cmd.Op == OpHelp || p.cmd.Op == OpVersion {
		return nil
	}
	for {
		opt, arg, perr = po.nextOpt()
		if perr != poptOK {
			break
		}
		if err := p.option(opt, arg, po); err != nil {
			return err
		}
	}
	if perr != poptDone {
		return &UsageError{Msg: po.badOption() + ": " + perr.String(), Code: ExitKernel}
	}
	if p.cmd.Op == OpSet {
		var t [3]uint32
		for i := range t {
			a, ok := po.arg()
			if !ok {
				return failf("--set option requires 3 timeout values")
			}
			v, err := parseTimeout(a, 0)
			if err != nil {
				return err
			}
			t[i] = v
		}
		p.cmd.Timeouts = service.Timeouts{TCP: t[0], TCPFin: t[1], UDP: t[2]}
	}
	if a, ok := po.arg(); ok {
		return failf("unexpected argument %s", a)
	}
	if p.schedFlags != "" {
		f, err := ParseSchedFlags(p.cmd.Service.Scheduler, p.schedFlags)
		if err != nil {
			return err
		}
		p.cmd.Service.Flags = f
	}
	return p.process()
}

// command handles the first option, which must be a command.
func (p *parser) command(opt *optDef, arg *string) error {
	var op Op
	switch opt.id {
	case 'A':
		op = OpAddService
	case 'E':
		op = OpEditService
	case 'D':
		op = OpDeleteService
	case 'a':
		op = OpAddServer
	case 'e':
		op = OpEditServer
	case 'd':
		op = OpDeleteServer
	case 'C':
		op = OpClear
	case 'L', 'l':
		op = OpList
	case 'Z':
		op = OpZero
	case tagSet:
		op = OpSet
	case 'R':
		op = OpRestore
	case 'S':
		op = OpSave
	case tagStartDaemon, tagStopDaemon:
		op = OpStartDaemon
		if opt.id == tagStopDaemon {
			op = OpStopDaemon
		}
		p.cmd.Op = op
		switch *arg {
		case "master", "backup":
			p.cmd.Daemon.State = *arg
		default:
			if op == OpStartDaemon {
				return failf("illegal start-daemon parameter specified")
			}
			return failf("illegal start_daemon specified") // sic
		}
	case 'h':
		op = OpHelp
	case 'v':
		op = OpVersion
	default:
		return &UsageError{Msg: tryHelp, Detail: "the first option must be a command", Code: ExitKernel}
	}
	p.cmd.Op = op
	return nil
}

// set is ipvsadm's set_option.
func (p *parser) set(o Option) error {
	if p.cmd.Options&o != 0 {
		return failf("multiple '%s' options specified", o)
	}
	p.cmd.Options |= o
	return nil
}

// option handles every option after the command, in the order given.
func (p *parser) option(opt *optDef, arg *string, po *popt) error {
	a := ""
	if arg != nil {
		a = *arg
	}
	o, ok := optionOf[opt.id]
	if ok {
		if err := p.set(o); err != nil {
			return err
		}
	}
	svc := &p.cmd.Service
	switch opt.id {
	case 't', 'u':
		svc.Proto = service.TCP
		if opt.id == 'u' {
			svc.Proto = service.UDP
		}
		addr, port, _, ok := parseService(a)
		if !ok {
			return &UsageError{Msg: "illegal virtual server address[:port] specified", Detail: fmt.Sprintf("%q", a), Code: ExitUsage}
		}
		svc.Addr, svc.Port = addr, port
		p.af = 4
		if addr.Is6() {
			p.af, p.netmask = 6, 128
		}
	case tagSCTP:
		return udrRefusal("udr forwards TCP and UDP only: --sctp-service is not supported")
	case 'f':
		if v, n, overflow := strtol(a); n == 0 || n != len(a) || overflow || v <= 0 || v > 0xffffffff {
			return failf("invalid fwmark value `%s' specified", a)
		}
		return udrRefusal("udr forwards by protocol, address and port: -f (firewall mark services) is not supported")
	case 's':
		svc.Scheduler = truncate(a, maxSchedName)
	case 'p':
		svc.Persistent = true
		svc.Timeout = service.DefaultPersistentTimeout
		if arg != nil {
			v, err := parseTimeout(a, 1)
			if err != nil {
				return err
			}
			svc.Timeout = v
		}
	case 'M':
		if p.af != 6 {
			m, ok := inetAton(a)
			if !ok {
				return &UsageError{Msg: "illegal virtual server persistent mask specified", Detail: fmt.Sprintf("%q", a), Code: ExitUsage}
			}
			p.netmask = m
		} else {
			p.netmask = uint32(atoi(a))
			if p.netmask < 1 || p.netmask > 128 {
				return &UsageError{Msg: "illegal ipv6 netmask specified", Detail: fmt.Sprintf("%q: want a prefix length 1..128", a), Code: ExitUsage}
			}
		}
	case 'r':
		addr, port, hasPort, ok := parseService(a)
		if !ok {
			return &UsageError{Msg: "illegal real server address[:port] specified", Detail: fmt.Sprintf("%q", a), Code: ExitUsage}
		}
		p.cmd.Dest.Addr, p.cmd.Dest.Port = addr, port
		p.destAF = 4
		if addr.Is6() {
			p.destAF = 6
		}
		p.hasPort = hasPort
		if !hasPort {
			p.cmd.Dest.Port = svc.Port // copy vport to dport if not specified
		}
	case 'g':
		p.fwdSet = true
	case 'm':
		return udrRefusal("udr forwards by direct routing only: -m (masquerading) is not supported")
	case 'i':
		return udrRefusal("udr forwards by direct routing only: -i (tunneling) is not supported")
	case 'w':
		v, err := number(a, 0, 65535, "weight", "illegal weight specified")
		if err != nil {
			return err
		}
		p.cmd.Dest.Weight = int32(v)
	case 'x':
		v, err := number(a, 0, intMax, "upper threshold", "illegal u_threshold specified")
		if err != nil {
			return err
		}
		p.cmd.Dest.UThreshold = uint32(v)
	case 'y':
		v, err := number(a, 0, intMax, "lower threshold", "illegal l_threshold specified")
		if err != nil {
			return err
		}
		p.cmd.Dest.LThreshold = uint32(v)
	case tagMcastInterface:
		p.cmd.Daemon.McastInterface = truncate(a, maxIfName)
	case tagSyncID:
		v, err := number(a, 0, 255, "syncid", "illegal syncid specified")
		if err != nil {
			return err
		}
		p.cmd.Daemon.SyncID = int(v)
	case '6':
		return failf("-6 used before -f\n") // sic: fail() adds a second newline
	case 'o':
		svc.OnePacket = true
	case tagPE:
		p.cmd.PE = truncate(a, maxPEName)
	case 'b':
		p.schedFlags = truncate(a, maxSchedArg)
	case tagMcastGroup:
		g, err := netip.ParseAddr(a)
		switch {
		case strings.Contains(a, ":"):
			if _, ok := inetPton6(a); !ok || !g.IsMulticast() {
				return failf("invalid IPv6 mcast-group `%s'", a)
			}
		case err != nil || !g.Is4() || !g.IsMulticast():
			return failf("invalid IPv4 mcast-group `%s'", a)
		}
		p.cmd.Daemon.McastGroup = g
	case tagMcastPort:
		v, err := number(a, 1, 65535, "mcast-port", "illegal mcast-port specified")
		if err != nil {
			return err
		}
		p.cmd.Daemon.McastPort = int(v)
	case tagMcastTTL:
		v, err := number(a, 1, 255, "mcast-ttl", "illegal mcast-ttl specified")
		if err != nil {
			return err
		}
		p.cmd.Daemon.McastTTL = int(v)
	case tagSyncMaxLen:
		v, err := number(a, 1, 65535-20-8, "sync-maxlen", "illegal sync-maxlen specified")
		if err != nil {
			return err
		}
		p.cmd.Daemon.SyncMaxLen = int(v)
	case tagTunType:
		if a != "ipip" && a != "gue" && a != "gre" {
			return failf("illegal tunnel type specified")
		}
	case tagTunPort:
		if _, err := number(a, 1, 65535, "tun-port", "illegal tunnel port specified"); err != nil {
			return err
		}
	case tagSort, 'n', 'c', tagTimeout, tagDaemon, tagStats, tagRate, tagThresholds,
		tagPersistentConn, tagNoSort, 'X', tagTunInfo, tagTunNoCsum, tagTunCsum, tagTunRemCsum, 'j':
		// Flags only: recorded in Options by set above.
	default:
		// A second command, -h or -v after the first option.
		return failf("invalid option `%s'", po.badOption())
	}
	return nil
}

// optionOf maps an option to its ipvsadm OPT_ bit; options without one
// (--sort, -6, the commands) are absent.
var optionOf = map[optID]Option{
	'n': OptNumeric, 'c': OptConnection, 't': OptService, 'u': OptService,
	tagSCTP: OptService, 'f': OptService, 's': OptScheduler, 'p': OptPersistent,
	'M': OptNetmask, 'r': OptServer, 'g': OptForward, 'm': OptForward, 'i': OptForward,
	'w': OptWeight, 'x': OptUThreshold, 'y': OptLThreshold, tagMcastInterface: OptMcast,
	tagTimeout: OptTimeout, tagDaemon: OptDaemon, tagStats: OptStats, tagRate: OptRate,
	tagThresholds: OptThresholds, tagPersistentConn: OptPersistentConn, tagNoSort: OptNoSort,
	tagSyncID: OptSyncID, 'X': OptExact, 'o': OptOnePacket, tagPE: OptPersistenceEngine,
	'b': OptSchedFlags, tagMcastGroup: OptMcastGroup, tagMcastPort: OptMcastPort,
	tagMcastTTL: OptMcastTTL, tagSyncMaxLen: OptSyncMaxLen, tagTunInfo: OptTunInfo,
	tagTunType: OptTunType, tagTunPort: OptTunPort, tagTunNoCsum: OptTunNoCsum,
	tagTunCsum: OptTunCsum, tagTunRemCsum: OptTunRemCsum, 'j': OptJSON,
}
