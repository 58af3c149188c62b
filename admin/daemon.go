package admin

import (
	"fmt"
	"io"
	"syscall"

	"github.com/udr-lb/udr/ipvssync"
)

// The kernel's defaults for a sync daemon, as package ipvssync has them
// from net/netfilter/ipvs/ip_vs_sync.c: the group IP_VS_SYNC_GROUP, the
// port IP_VS_SYNC_PORT, a TTL of 1, and a message of at most 1500 bytes
// less the IP and UDP headers.
var DefaultSyncGroup = ipvssync.DefaultGroup

const (
	DefaultSyncPort = ipvssync.DefaultPort
	DefaultSyncTTL  = ipvssync.DefaultTTL
	syncMTU         = 1500
)

// DaemonBackend is a Backend that runs the IPVS connection sync daemons
// (--start-daemon, --stop-daemon, -L --daemon). Without it Run answers as a
// director with no sync daemon: --start-daemon is refused and
// --stop-daemon says that none runs.
type DaemonBackend interface {
	Backend
	// StartDaemon starts the master or backup daemon d (d.State), whose
	// options are those ipvsadm sends, and which the backend completes
	// with CompleteDaemon. Errors are *KernelError: EEXIST when that
	// daemon runs already, ENODEV when the interface does not exist.
	StartDaemon(d Daemon) error
	// StopDaemon stops the "master" or "backup" daemon; ESRCH when it
	// does not run.
	StopDaemon(state string) error
	// Daemons returns the daemons that run, the master first, with every
	// option filled in as the kernel reports them.
	Daemons() []Daemon
}

// DaemonDefaults fills in the options whose defaults do not depend on the
// interface: the group 224.0.0.81, port 8848 and TTL 1 when they are not
// given.
func DaemonDefaults(d Daemon) Daemon {
	if !d.McastGroup.IsValid() {
		d.McastGroup = DefaultSyncGroup
	}
	if d.McastPort == 0 {
		d.McastPort = DefaultSyncPort
	}
	if d.McastTTL == 0 {
		d.McastTTL = DefaultSyncTTL
	}
	return d
}

// CompleteDaemon fills in what the kernel fills in when it starts a daemon
// (start_sync_thread): the group 224.0.0.81, port 8848 and TTL 1 when
// they are not given, and the message length: a given maxlen is bounded
// to 1..65535 less the headers (1024.. for a backup), and the default is
// 1500 less the IPv4 or IPv6 and UDP headers for a master, the
// interface's MTU (at least 1500) less them for a backup.
func CompleteDaemon(d Daemon, mtu int) Daemon {
	d = DaemonDefaults(d)
	hlen := 20 + 8
	if d.McastGroup.Is6() && !d.McastGroup.Is4In6() {
		hlen = 40 + 8
	}
	limit, floor := syncMTU, 1
	if d.State == "backup" {
		limit, floor = min(max(mtu, syncMTU), 65535), 1024
	}
	if d.SyncMaxLen != 0 {
		d.SyncMaxLen = min(max(d.SyncMaxLen, floor), 65535-hlen)
	} else {
		d.SyncMaxLen = limit - hlen
	}
	return d
}

// DaemonLine is how ipvsadm -L --daemon prints a running daemon
// (list_daemon), with a newline. As ipvsadm, it leaves the group out when
// there is none (a daemon of udr.yaml's that sends to its peers only).
func DaemonLine(d Daemon) string {
	group := ""
	if d.McastGroup.IsValid() {
		group = ", group=" + d.McastGroup.String()
	}
	return fmt.Sprintf("%s sync daemon (mcast=%s, syncid=%d, maxlen=%d%s, port=%d, ttl=%d)\n",
		d.State, d.McastInterface, d.SyncID, d.SyncMaxLen, group, d.McastPort, d.McastTTL)
}

// startDaemon is CMD_STARTDAEMON.
func (r *runner) startDaemon(cmd *Command) int {
	db, ok := r.b.(DaemonBackend)
	if !ok {
		r.errorln(errStartDaemon)
		return ExitUsage
	}
	if err := db.StartDaemon(cmd.Daemon); err != nil {
		return r.failed(err)
	}
	return ExitOK
}

// stopDaemon is CMD_STOPDAEMON.
func (r *runner) stopDaemon(cmd *Command) int {
	db, ok := r.b.(DaemonBackend)
	if !ok {
		// What ipvsadm prints when no daemon runs (ESRCH), which is true.
		r.errorln(kernelErr(OpStopDaemon, syscall.ESRCH).Msg)
		return ExitKernel
	}
	if err := db.StopDaemon(cmd.Daemon.State); err != nil {
		return r.failed(err)
	}
	return ExitOK
}

// listDaemons is ipvsadm -L --daemon: one line per running daemon.
func (r *runner) listDaemons(w io.Writer) {
	db, ok := r.b.(DaemonBackend)
	if !ok {
		return
	}
	for _, d := range db.Daemons() {
		io.WriteString(w, DaemonLine(d))
	}
}

// DaemonError returns the kernel's error for a daemon command, as ipvsadm
// prints it: EEXIST for a second --start-daemon of one state ("Daemon has
// already run"), ESRCH for --stop-daemon of one that does not run ("No
// daemon is running"), ENODEV for an interface that does not exist ("No
// such device").
func DaemonError(op Op, errno syscall.Errno) *KernelError { return kernelErr(op, errno) }
