package admin

import (
	"fmt"
	"strings"

	"github.com/udr-lb/udr/service"
)

// process is the part of ipvsadm's process_options that runs before the
// kernel is asked: the table of legal options, then the defaults and the
// checks of each command.
func (p *parser) process() error {
	c := &p.cmd
	if err := p.checkOptions(); err != nil {
		return err
	}
	svc := &c.Service
	switch c.Op {
	case OpAddService, OpEditService:
		if svc.Port == 0 && !svc.Persistent {
			return failf("Zero port specified for non-persistent service")
		}
		if svc.OnePacket && svc.Proto != service.UDP {
			return failf("One-Packet Scheduling is only for UDP virtual services")
		}
		if svc.Scheduler == "" {
			svc.Scheduler = service.DefaultScheduler
		}
		if err := CheckVIP(svc.Addr); err != nil {
			return udrRefusal(err.Error())
		}
	case OpAddServer, OpEditServer:
		// The destination port must equal the service port in direct
		// routing (and tunneling); ipvsadm changes it silently.
		c.AskedPort = c.Dest.Port
		if !p.hasPort {
			c.AskedPort = svc.Port // -r came before -t: nothing was asked
		}
		c.Dest.Port = svc.Port
		c.PortForced = c.AskedPort != c.Dest.Port
		if p.destAF != p.af {
			return failf("Different address family is allowed only for tunneling servers")
		}
		if c.Options&(OptTunType|OptTunPort|OptTunNoCsum|OptTunCsum|OptTunRemCsum) != 0 {
			return failf("Tunnel options conflict with forward method")
		}
		if err := CheckRealServer(svc.Addr, c.Dest.Addr); err != nil {
			return udrRefusal(err.Error())
		}
	case OpDeleteServer:
		c.AskedPort = c.Dest.Port
	case OpList:
		o := c.Options
		if (o&(OptConnection|OptTimeout|OptDaemon) != 0 && o&(OptStats|OptRate|OptThresholds) != 0) ||
			(o&(OptTimeout|OptDaemon) != 0 && o&OptPersistentConn != 0) {
			return failf("options conflicts in the list command")
		}
	case OpStartDaemon:
		if c.Daemon.McastInterface == "" {
			c.Daemon.McastInterface = "eth0"
		}
	}

	svc.Netmask = int(p.netmask)
	if p.af != 6 {
		plen, ok := MaskPrefix(p.netmask)
		if !ok && (c.Op == OpAddService || c.Op == OpEditService) {
			return udrRefusal(fmt.Sprintf("udr supports persistence masks that are a prefix only: -M %s is not one",
				formatMask(p.netmask)))
		}
		svc.Netmask = plen
	}
	return nil
}

// checkOptions is ipvsadm's generic_opt_check: options missing ('+'),
// illegal ('x') or conflicting ('1') for the command, in option bit order.
func (p *parser) checkOptions() error {
	op := p.cmd.Op
	if op < OpAddService || op > OpZero {
		return nil
	}
	legal := &legalOptions[op-1]
	last := -1
	for j := range numOptions {
		given := p.cmd.Options&(1<<j) != 0
		switch {
		case !given && legal[j] == '+':
			return failf("You need to supply the '%s' option for the '%s' command", optNames[j], op)
		case given && legal[j] == 'x':
			return failf("Illegal '%s' option with the '%s' command", optNames[j], op)
		case given && legal[j] == '1':
			if last >= 0 {
				return failf("The option '%s' conflicts with the '%s' option in the '%s' command",
					optNames[j], optNames[last], op)
			}
			last = j
		}
	}
	return nil
}

func udrRefusal(msg string) *UsageError { return &UsageError{Msg: msg, Code: ExitUsage} }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// number is string_to_number with ipvsadm's message on failure and udr's
// detail naming the value and the range.
func number(a string, min, max int64, what, msg string) (int64, error) {
	v, ok := stringToNumber(a, min, max)
	if ok {
		return v, nil
	}
	detail := fmt.Sprintf("%s %q is not a number", what, a)
	if _, n, _ := strtol(a); n == len(a) && n > 0 {
		detail = fmt.Sprintf("%s %s out of range %d..%d", what, strings.TrimSpace(a), min, max)
	}
	return 0, &UsageError{Msg: msg, Detail: detail, Code: ExitUsage}
}

// parseTimeout is ipvsadm's parse_timeout for -p (min 1) and --set (min 0).
func parseTimeout(a string, min int64) (uint32, error) {
	v, err := number(a, min, service.MaxTimeout, "timeout", "")
	if err != nil {
		e := err.(*UsageError)
		e.Msg = fmt.Sprintf("invalid timeout value `%s' specified", a)
		return 0, e
	}
	return uint32(v), nil
}

// ParseSchedFlags is ipvsadm's parse_sched_flags: a comma list checked
// against the final scheduler (wlc when none was given).
func ParseSchedFlags(sched, arg string) (service.SchedFlags, error) {
	if sched == "" {
		sched = service.DefaultScheduler
	}
	var f service.SchedFlags
	names := strings.FieldsFunc(arg, func(r rune) bool { return r == ',' })
	if len(names) == 0 {
		// ipvsadm passes strtok's NULL to strcmp here and crashes.
		return 0, failf("invalid scheduler flag `%s'", arg)
	}
	for _, name := range names {
		want := ""
		switch name {
		case "flag-1":
			f |= service.SchedFlag1
		case "flag-2":
			f |= service.SchedFlag2
		case "flag-3":
			f |= service.SchedFlag3
		case "sh-fallback", "mh-fallback":
			f |= service.SchedFlag1
			want = name[:2]
		case "sh-port", "mh-port":
			f |= service.SchedFlag2
			want = name[:2]
		default:
			return 0, failf("invalid scheduler flag `%s'", name)
		}
		if want != "" && sched != want {
			return 0, &UsageError{
				Msg:    fmt.Sprintf("incompatible scheduler flag `%s'", name),
				Detail: fmt.Sprintf("%s needs -s %s, the scheduler is %s", name, want, sched),
				Code:   ExitUsage,
			}
		}
	}
	return f, nil
}
