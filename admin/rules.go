package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// Fields splits one line of a rules file as ipvsadm -R does
// (config_stream_read): on spaces, tabs and carriage returns, dropping every
// word equal to "ipvsadm", so that both `ipvsadm-save` output and shell
// lines `ipvsadm -A ...` read back.
func Fields(line string) []string {
	var f []string
	for _, w := range strings.FieldsFunc(line, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}) {
		if w != "ipvsadm" {
			f = append(f, w)
		}
	}
	return f
}

// ParseRules reads a rules file in `ipvsadm -S -n` syntax and applies each
// line to an empty Config, as `ipvsadm -C; ipvsadm -R` would. Only -A and
// -a lines are allowed; blank lines and lines starting with '#' are skipped.
// name is used in messages, which read like
//
//	rules:4: -a -t 192.0.2.100:80 -r 192.0.2.11: illegal weight specified (weight 70000 out of range 0..65535)
//
// Every faulty line is reported (errors.Join), and then the Config is nil.
// The warnings say which real server ports direct routing ignored.
func ParseRules(r io.Reader, name string) (*service.Config, []string, error) {
	rp := rulesParser{
		name:      name,
		ed:        NewEditor(&service.Config{}),
		svcLine:   make(map[service.Key]int),
		destLine:  make(map[dest.Key]int),
		failedSvc: make(map[service.Key]bool),
	}
	lr := &io.LimitedReader{R: r, N: MaxRulesSize + 1}
	br := bufio.NewReaderSize(lr, MaxRulesLine+1)
	for lineNo := 1; ; lineNo++ {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, rp.warnings, fmt.Errorf("%s:%d: line longer than %d bytes: udr reads no longer line", name, lineNo, MaxRulesLine)
		}
		if lr.N == 0 {
			return nil, rp.warnings, fmt.Errorf("%s: larger than %d bytes, the most udr reads of rules", name, MaxRulesSize)
		}
		if len(b) > 0 {
			rp.line(lineNo, string(b))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, rp.warnings, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if len(rp.errs) > 0 {
		errs := rp.errs
		if rp.more > 0 {
			errs = append(errs, fmt.Errorf("%s: %d more faulty lines", name, rp.more))
		}
		return nil, rp.warnings, errors.Join(errs...)
	}
	return rp.ed.Config(), rp.warnings, nil
}

// Bounds of what ParseRules reads, and of what it reports.
const (
	// MaxRulesSize is the most udr reads of a rules file, and of the
	// input of ipvsadm -R: 200,000 lines of ipvsadm-save take 10 MB.
	MaxRulesSize = 64 << 20
	// MaxRulesLine is the longest line of rules (ipvsadm-save's are
	// under 200 bytes).
	MaxRulesLine = 4096
	// maxRulesErrors is how many faulty lines are reported one by one;
	// the others are counted.
	maxRulesErrors = 100
)

type rulesParser struct {
	name      string
	ed        *Editor
	svcLine   map[service.Key]int  // line that defined each service
	destLine  map[dest.Key]int     // line that added each real server
	failedSvc map[service.Key]bool // services whose -A line failed
	errs      []error
	more      int // faulty lines beyond maxRulesErrors
	warnings  []string
}

func (rp *rulesParser) line(n int, line string) {
	if t := strings.TrimLeft(line, " \t\r\n"); t == "" || t[0] == '#' {
		return
	}
	args := Fields(line)
	if len(args) == 0 {
		return // a line of "ipvsadm" words only, which -R skips too
	}
	ctx := lineContext(args)
	errorf := func(format string, a ...any) {
		if len(rp.errs) == maxRulesErrors {
			rp.more++
			return
		}
		rp.errs = append(rp.errs, fmt.Errorf("%s:%d: %s: "+format, append([]any{rp.name, n, ctx}, a...)...))
	}

	cmd, err := parseCommand(args)
	if cmd.Op != OpAddService && cmd.Op != OpAddServer && cmd.Op != OpNone {
		errorf("command %s (%s) is not allowed in a rules file, want -A or -a", cmd.Op.Flag(), cmd.Op)
		return
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		if ue.Msg == tryHelp {
			ctx = strings.Join(args, " ")
			errorf("the first option must be a command, want -A or -a")
		} else {
			errorf("%s", usageText(ue))
		}
		if cmd.Op == OpAddService {
			rp.failedSvc[cmd.Service.Key] = true
		}
		return
	}
	if err != nil {
		errorf("%v", err)
		return
	}

	k := cmd.Service.Key
	dk := k.DestKey(cmd.Dest)

	err = rp.ed.Apply(cmd)
	var ke *KernelError
	switch {
	case err == nil:
		if cmd.Op == OpAddService {
			rp.svcLine[k] = n
		} else {
			rp.destLine[dk] = n
			if w := cmd.ForcedPortWarning(); w != "" {
				rp.warnings = append(rp.warnings, fmt.Sprintf("%s:%d: %s: %s", rp.name, n, ctx, w))
			}
		}
		return
	case !errors.As(err, &ke):
		errorf("%v", err)
	case cmd.Op == OpAddService && ke.Errno == syscall.EEXIST:
		errorf("%s (first defined on line %d)", ke.Msg, rp.svcLine[k])
	case cmd.Op == OpAddService && ke.Errno == syscall.ENOENT && !sched.Valid(cmd.Service.Scheduler):
		errorf("scheduler %q: unknown", cmd.Service.Scheduler)
	case cmd.Op == OpAddService && ke.Errno == syscall.ENOENT:
		errorf("persistence engine %q: not supported", cmd.PE)
	case cmd.Op == OpAddServer && ke.Errno == syscall.ESRCH:
		if rp.failedSvc[k] {
			return // its -A line is reported already
		}
		errorf("%s (no -A line for %s before this line)", ke.Msg, k)
	case cmd.Op == OpAddServer && ke.Errno == syscall.EEXIST:
		errorf("%s (real server %s first added on line %d)", ke.Msg,
			service.FormatAddrPort(cmd.Dest.Addr, cmd.Dest.Port), rp.destLine[dk])
	case ke.Errno == syscall.ERANGE:
		errorf("%s (lower threshold %d is above upper threshold %d)", ke.Msg, cmd.Dest.LThreshold, cmd.Dest.UThreshold)
	case ke.Errno == syscall.EINVAL:
		errorf("%s (real server %s is not a unicast address)", ke.Msg, service.FormatAddr(cmd.Dest.Addr))
	default:
		errorf("%s", ke.Msg)
	}
	if cmd.Op == OpAddService {
		rp.failedSvc[k] = true
	}
}

// usageText is ipvsadm's message with udr's detail, on one line.
func usageText(e *UsageError) string {
	msg := strings.TrimSpace(e.Msg)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// lineContext names what a line is about, as written: its command word, its
// service option and address, and its real server, e.g.
// "-a -t 192.0.2.100:80 -r 192.0.2.11".
func lineContext(args []string) string {
	parts := []string{args[0]}
	for _, want := range [][]string{
		{"-t", "-u", "-f", "--tcp-service", "--udp-service", "--sctp-service", "--fwmark-service"},
		{"-r", "--real-server"},
	} {
		for i := 1; i < len(args)-1; i++ {
			if contains(want, args[i]) {
				parts = append(parts, args[i], args[i+1])
				break
			}
		}
	}
	return strings.Join(parts, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WriteRules writes c as `ipvsadm -S -n` prints it (print_service_entry with
// FMT_RULE): services and real servers in ipvsadm's order, one line each:
//
//	-A -t 192.0.2.100:80 -s wrr -p 360 -M 255.255.255.0 -o -b flag-1
//	-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
//
// Thresholds are not written, as ipvsadm does not write them.
func WriteRules(w io.Writer, c *service.Config) error {
	bw := bufio.NewWriter(w)
	for _, s := range service.SortedServices(c) {
		name := s.Proto.Flag() + " " + service.FormatAddrPort(s.Addr, s.Port)
		fmt.Fprintf(bw, "-A %s -s %s", name, s.Scheduler)
		if s.Persistent {
			fmt.Fprintf(bw, " -p %d", s.Timeout)
			if s.Addr.Is4() && s.Netmask != 32 {
				fmt.Fprintf(bw, " -M %s", formatMask(prefixMask(s.Netmask)))
			}
			if s.Addr.Is6() && s.Netmask != 128 {
				fmt.Fprintf(bw, " -M %d", s.Netmask)
			}
		}
		if s.OnePacket {
			bw.WriteString(" -o")
		}
		if s.Flags&(service.SchedFlag1|service.SchedFlag2|service.SchedFlag3) != 0 {
			bw.WriteString(" -b " + service.SchedFlagsString(s.Scheduler, s.Flags))
		}
		bw.WriteString("\n")
		for _, d := range service.SortedDests(s) {
			fmt.Fprintf(bw, "-a %s -r %s -g -w %d\n", name, service.FormatAddrPort(d.Addr, d.Port), d.Weight)
		}
	}
	return bw.Flush()
}
