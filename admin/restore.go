package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/udr-lb/udr/service"
)

// maxRestoreErrors bounds the error lines a refused restore prints; the
// summary line gives the count of all of them.
const maxRestoreErrors = 1000

// errRefused ends an Edit whose lines had errors; they are in the
// restorer.
var errRefused = errors.New("the restore has errors")

// restore is -R: each line of stdin is an ipvsadm command line, split on
// blanks with every word "ipvsadm" dropped (ipvsadm's config_stream_read);
// blank lines and, as in ipvsadm-restore, lines starting with '#' are
// skipped. Unlike ipvsadm, which runs each line as it reads it, udr reads,
// parses and applies every line to a copy of the running table first, and
// then makes the result the running table as one change (Backend.Edit):
// all of it, or, when any line fails, nothing. Every failing line is
// reported, by its number, with ipvsadm's message; the status is 2 when a
// line had a usage error (ipvsadm's fail()), 255 otherwise. Only the
// commands that change the table may be in a restore: -A -E -D -C -a -e -d
// --set -Z.
func (r *runner) restore() int {
	if r.stdin == nil {
		return ExitOK
	}
	rs := &restorer{failedAdd: make(map[service.Key]bool)}
	err := r.b.Edit(func(e *Editor) error { return rs.read(e, r.stdin) })
	switch {
	case err == nil:
		for _, w := range rs.warnings {
			r.errorln("udr: warning: " + w)
		}
		return ExitOK
	case errors.Is(err, errRefused):
		for i, msg := range rs.errs {
			if i == maxRestoreErrors {
				r.errorln(fmt.Sprintf("udr: ... and %d more errors", len(rs.errs)-i))
				break
			}
			r.errorln(msg)
		}
		r.errorln(fmt.Sprintf("udr: restore refused, the running table is unchanged: %d of %d lines failed", len(rs.errs), rs.commands))
		return rs.code
	case rs.readErr:
		r.errorln(fmt.Sprintf("udr: restore refused, the running table is unchanged: read the rules from stdin: %v", err))
		return ExitKernel
	}
	var ke *KernelError
	if errors.As(err, &ke) {
		err = errors.New(ke.Msg)
	}
	r.errorln(fmt.Sprintf("udr: restore refused, the running table is unchanged: %v", err))
	return ExitKernel
}

// restorer reads the lines of one restore into an Editor.
type restorer struct {
	commands  int      // command lines read
	errs      []string // "stdin:LINE: CONTEXT: MESSAGE", in line order
	code      int      // the exit status for errs
	warnings  []string
	readErr   bool
	failedAdd map[service.Key]bool // services whose -A line failed
}

func (rs *restorer) read(e *Editor, in io.Reader) error {
	br := bufio.NewReaderSize(in, MaxRulesLine+1)
	for n := 1; ; n++ {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// As in a rules file: a longer line is no ipvsadm line, and
			// the rest of the input is not read.
			rs.commands++
			rs.errs = append(rs.errs, fmt.Sprintf("stdin:%d: line longer than %d bytes: udr reads no longer line", n, MaxRulesLine))
			rs.code = ExitUsage
			return errRefused
		}
		if len(b) > 0 {
			rs.line(e, n, string(b))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rs.readErr = true
			return err
		}
	}
	if len(rs.errs) > 0 {
		return errRefused
	}
	return nil
}

// line applies line n to e, or records why it cannot be.
func (rs *restorer) line(e *Editor, n int, line string) {
	if t := strings.TrimLeft(line, " \t\r\n"); t == "" || t[0] == '#' {
		return
	}
	args := Fields(line)
	if len(args) == 0 {
		return // a line of "ipvsadm" words only
	}
	rs.commands++
	ctx := lineContext(args)
	fail := func(code int, msg string) {
		rs.errs = append(rs.errs, fmt.Sprintf("stdin:%d: %s: %s", n, ctx, msg))
		if rs.code != ExitUsage {
			rs.code = code
		}
	}
	cmd, err := parseCommand(args)
	if err != nil {
		var ue *UsageError
		switch {
		case !errors.As(err, &ue):
			fail(ExitKernel, err.Error())
		case ue.Msg == tryHelp:
			ctx = strings.Join(args, " ")
			fail(ue.Code, "the first option must be a command")
		default:
			fail(ue.Code, usageText(ue))
		}
		if cmd.Op == OpAddService {
			rs.failedAdd[cmd.Service.Key] = true
		}
		return
	}
	switch cmd.Op {
	case OpAddService, OpEditService, OpDeleteService, OpClear,
		OpAddServer, OpEditServer, OpDeleteServer, OpSet, OpZero:
	default:
		fail(ExitUsage, "cannot be in a restore, whose lines are applied as one change: "+
			"only -A -E -D -C -a -e -d --set and -Z can")
		return
	}
	err = e.Apply(cmd)
	if err == nil {
		if w := cmd.ForcedPortWarning(); w != "" {
			rs.warnings = append(rs.warnings, w)
		}
		return
	}
	k := cmd.Service.Key
	if errors.Is(err, syscall.ESRCH) && rs.failedAdd[k] {
		// The service's -A failed, and is reported: that this line
		// finds no service follows from it. Nothing is applied anyway.
		rs.errs = append(rs.errs, fmt.Sprintf("stdin:%d: %s: %s (its -A line failed)", n, ctx, err))
		return
	}
	if cmd.Op == OpAddService {
		rs.failedAdd[k] = true
	}
	var ke *KernelError
	if errors.As(err, &ke) {
		fail(ExitKernel, ke.Msg)
		return
	}
	fail(ExitKernel, err.Error())
}
