package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
// ipvsadm-restore does. -R applies its lines as one change, all or none
// (see restore). The sync daemon commands are carried out by a
// DaemonBackend; any other Backend answers them as a director that has no
// sync daemon.
func Run(args []string, b Backend, stdin io.Reader, stdout, stderr io.Writer, opts Options) int {
	r := &runner{b: b, stdin: stdin, out: bufio.NewWriter(stdout), stderr: stderr, resolver: opts.Resolver}
	if r.resolver == nil {
		r.resolver = &SystemResolver{}
	}
	code := r.run(args)
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

// run carries out one command line and returns the exit status.
func (r *runner) run(args []string) int {
	cmd, err := ParseCommand(args)
	if err != nil {
		return r.failed(err)
	}
	switch cmd.Op {
	case OpHelp:
		writeUsage(r.out, "ipvsadm")
		return ExitOK
	case OpVersion:
		fmt.Fprintln(r.out, Version)
		return ExitOK
	case OpList:
		return r.list(cmd)
	case OpSave:
		return r.save(cmd)
	case OpRestore:
		return r.restore()
	case OpStartDaemon:
		return r.startDaemon(cmd)
	case OpStopDaemon:
		return r.stopDaemon(cmd)
	}
	if err := r.b.Apply(cmd); err != nil {
		return r.failed(err)
	}
	if w := cmd.ForcedPortWarning(); w != "" {
		r.errorln("udr: warning: " + w)
	}
	return ExitOK
}

// errStartDaemon is the answer of a Backend that runs no sync daemon (not
// a DaemonBackend) to --start-daemon.
const errStartDaemon = "udr has no connection sync daemon here: --start-daemon is not supported"

// failed prints err as ipvsadm would and returns its exit status.
func (r *runner) failed(err error) int {
	var ue *UsageError
	var ke *KernelError
	switch {
	case errors.As(err, &ue):
		r.errorln(ue.Msg)
		return ue.Code
	case errors.As(err, &ke):
		r.errorln(ke.Msg)
		return ExitKernel
	}
	r.errorln("udr: " + err.Error())
	return ExitKernel
}
