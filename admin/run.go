package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Options are the settings of Run. The zero value resolves names with a
// SystemResolver.
type Options struct {
	// Resolver names addresses and ports in listings without -n; nil
	// means a SystemResolver reading /etc/services.
	Resolver Resolver
}

// Exit statuses of Run besides ExitUsage (2, ipvsadm's fail()) and
// ExitKernel (255, kernel and popt errors, tryhelp_exit).
const (
	ExitOK       = 0
	ExitListFail = 1 // a listing failed, e.g. -L -t of a missing service
)

// Run is ipvsadm's main() against a running director: it parses args (the
// command line without the program name; none at all means -L), carries the
// command out on b, writes what ipvsadm 1.31 writes on stdout and stderr, and
// returns ipvsadm's exit status. stdin is read by -R only and may be nil.
//
// udr adds three things to ipvsadm's behaviour: a warning on stderr when
// direct routing ignored a real server port (the command still succeeds),
// -j/--json for listings, and -R skipping lines that start with '#', as
// ipvsadm-restore does. The sync daemon commands are answered as by a
// director that has no sync daemon.
func Run(args []string, b Backend, stdin io.Reader, stdout, stderr io.Writer, opts Options) int {
	r := &runner{b: b, stdin: stdin, out: bufio.NewWriter(stdout), stderr: stderr, resolver: opts.Resolver}
	if r.resolver == nil {
		r.resolver = &SystemResolver{}
	}
	code, _ := r.run(args, false)
	r.out.Flush()
	return code
}

type runner struct {
	b        Backend
	stdin    io.Reader
	out      *bufio.Writer
	stderr   io.Writer
	resolver Resolver
}

// errorln writes one line on stderr, after what stdout holds so far, so
// that both keep their order when they share a terminal.
func (r *runner) errorln(msg string) {
	r.out.Flush()
	io.WriteString(r.stderr, msg+"\n")
}

// run carries out one command line. done reports that ipvsadm would have
// exited there (fail(), tryhelp_exit, a failed listing, -h, -v), which
// also ends a restore.
func (r *runner) run(args []string, restoring bool) (code int, done bool) {
	cmd, err := ParseCommand(args)
	if err != nil {
		return r.failed(err)
	}
	switch cmd.Op {
	case OpHelp:
		writeUsage(r.out, "ipvsadm")
		return ExitOK, true
	case OpVersion:
		fmt.Fprintln(r.out, Version)
		return ExitOK, true
	case OpList:
		return r.list(cmd)
	case OpSave:
		return r.save(cmd)
	case OpRestore:
		if restoring {
			// restore_table refuses to nest ("avoid infinite loop").
			r.errorln(tryHelp)
			return ExitKernel, true
		}
		return r.restore()
	case OpStartDaemon:
		r.errorln("udr has no connection sync daemon: --start-daemon is not supported")
		return ExitUsage, true
	case OpStopDaemon:
		// What ipvsadm prints when no daemon runs (ESRCH), which is true.
		r.errorln("No daemon is running")
		return ExitKernel, false
	}
	if err := r.b.Apply(cmd); err != nil {
		return r.failed(err)
	}
	if w := cmd.ForcedPortWarning(); w != "" {
		r.errorln("udr: warning: " + w)
	}
	return ExitOK, false
}

// failed prints err as ipvsadm would and returns its exit status: fail()
// and tryhelp_exit end ipvsadm; popt and kernel errors end only the command.
func (r *runner) failed(err error) (code int, done bool) {
	var ue *UsageError
	var ke *KernelError
	switch {
	case errors.As(err, &ue):
		r.errorln(ue.Msg)
		return ue.Code, ue.Code == ExitUsage || ue.Msg == tryHelp
	case errors.As(err, &ke):
		r.errorln(ke.Msg)
		return ExitKernel, false
	}
	r.errorln("udr: " + err.Error())
	return ExitKernel, false
}

// restore is ipvsadm's restore_table: each line of stdin is a command line,
// split on blanks with every word "ipvsadm" dropped. A fail() error ends
// the restore with status 2; kernel errors are printed and the restore goes
// on; the status is that of the last command. Blank lines and, as in
// ipvsadm-restore, lines starting with '#' are skipped.
func (r *runner) restore() (code int, done bool) {
	if r.stdin == nil {
		return ExitOK, false
	}
	br := bufio.NewReader(r.stdin)
	for {
		line, err := br.ReadString('\n')
		if t := strings.TrimLeft(line, " \t\r\n"); t != "" && t[0] != '#' {
			if args := Fields(line); len(args) > 0 {
				c, d := r.run(args, true)
				if d {
					return c, true
				}
				code = c
			}
		}
		if err == io.EOF {
			return code, false
		}
		if err != nil {
			r.errorln(fmt.Sprintf("udr: read the rules from stdin: %v", err))
			return ExitKernel, true
		}
	}
}
