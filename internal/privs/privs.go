//go:build linux

package privs

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Set is a set of capabilities, bit n for capability n.
type Set uint64

// Of returns the set of caps.
func Of(caps ...int) Set {
	var s Set
	for _, c := range caps {
		s |= 1 << c
	}
	return s
}

// Has reports whether s holds capability c.
func (s Set) Has(c int) bool { return s&(1<<c) != 0 }

// String lists the set by the names capabilities(7) gives, lower case and
// comma separated, or "none".
func (s Set) String() string {
	if s == 0 {
		return "none"
	}
	var names []string
	for s != 0 {
		c := bits.TrailingZeros64(uint64(s))
		s &^= 1 << c
		if c < len(capNames) {
			names = append(names, "cap_"+capNames[c])
		} else {
			names = append(names, fmt.Sprintf("cap_%d", c))
		}
	}
	return strings.Join(names, ",")
}

// capNames are the capabilities of include/uapi/linux/capability.h, by
// number.
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
	"setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
	"net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
	"sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
	"sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
	"audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// State is the calling thread's capability sets and no_new_privs flag.
type State struct {
	Effective, Permitted, Inheritable, Ambient, Bounding Set
	NoNewPrivs                                           bool
}

func (st State) String() string {
	return fmt.Sprintf("effective=%s permitted=%s inheritable=%s ambient=%s bounding=%s no_new_privs=%v",
		st.Effective, st.Permitted, st.Inheritable, st.Ambient, st.Bounding, st.NoNewPrivs)
}

// Within reports whether st holds no capability outside keep that it could
// use or regain: none in its effective, permitted, inheritable and ambient
// sets, no_new_privs set, and none outside keep in its bounding set unless
// it cannot drop them (without CAP_SETPCAP; no_new_privs then keeps execve
// from granting them).
func (st State) Within(keep Set) bool {
	return (st.Effective|st.Permitted|st.Inheritable|st.Ambient)&^keep == 0 && st.NoNewPrivs &&
		(st.Bounding&^keep == 0 || !st.Effective.Has(unix.CAP_SETPCAP))
}

// Read returns the calling thread's State.
func Read() (State, error) {
	var st State
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return st, fmt.Errorf("capget: %w", err)
	}
	st.Effective = Set(data[0].Effective) | Set(data[1].Effective)<<32
	st.Permitted = Set(data[0].Permitted) | Set(data[1].Permitted)<<32
	st.Inheritable = Set(data[0].Inheritable) | Set(data[1].Inheritable)<<32
	for c := 0; c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the kernel's last capability
		}
		if err != nil {
			return st, fmt.Errorf("read the bounding set: %w", err)
		}
		if in == 1 {
			st.Bounding |= 1 << c
		}
		amb, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0)
		if err == nil && amb == 1 {
			st.Ambient |= 1 << c
		}
	}
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return st, fmt.Errorf("read no_new_privs: %w", err)
	}
	st.NoNewPrivs = nnp == 1
	return st, nil
}

// reexecMark is set in the environment of the re-executed program, so that
// it never re-executes itself a second time; Restrict removes it.
const reexecMark = "UDR_PRIVS_REEXEC"

// Restrict leaves the process with the capabilities of keep that it has,
// none other, and no_new_privs set. When the process holds more, Restrict
// restricts one thread and re-executes the program from it: it does not
// return then, unless that fails. It returns the State in force. Call it
// early, before the program opens anything it would lose by the execve
// (descriptors without close-on-exec stay open, others close).
//
// beforeExec, if not nil, runs just before the execve: for what must not
// cross it, such as a CPU profiler's interval timer (setitimer survives
// execve, and its SIGPROF would kill the new image before its runtime
// installs a handler).
func Restrict(keep Set, beforeExec func()) (State, error) {
	_, again := os.LookupEnv(reexecMark)
	os.Unsetenv(reexecMark)
	st, err := Read()
	if err != nil {
		return st, err
	}
	if st.Within(keep) {
		return st, nil
	}
	if again {
		return st, fmt.Errorf("capabilities after re-executing with fewer: %s; want none outside %s and no_new_privs", st, keep)
	}
	runtime.LockOSThread() // this thread execs, or the process exits with an error
	if err := restrictThread(st, keep); err != nil {
		return st, err
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return st, fmt.Errorf("find the program to re-execute with fewer capabilities: %w", err)
	}
	if beforeExec != nil {
		beforeExec()
	}
	err = syscall.Exec("/proc/self/exe", os.Args, append(os.Environ(), reexecMark+"=1"))
	return st, fmt.Errorf("re-execute %s with fewer capabilities: %w", exe, err)
}

// restrictThread restricts the calling thread's sets to keep: the bounding
// set first (dropping needs CAP_SETPCAP, which the capset then gives up),
// the ambient set, then effective, permitted and inheritable, and sets
// no_new_privs.
func restrictThread(st State, keep Set) error {
	if st.Effective.Has(unix.CAP_SETPCAP) {
		for c := 0; c < 64; c++ {
			if st.Bounding.Has(c) && !keep.Has(c) {
				if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
					return fmt.Errorf("drop %s from the bounding set: %w", Of(c), err)
				}
			}
		}
	}
	if st.Ambient != 0 {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
			return fmt.Errorf("clear the ambient set: %w", err)
		}
	}
	// Only when there is something to give up: a seccomp filter such as
	// systemd's SystemCallFilter=~@privileged refuses capset.
	if (st.Effective|st.Permitted|st.Inheritable)&^keep != 0 {
		p := st.Permitted & keep
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{
			{Effective: uint32(p), Permitted: uint32(p)},
			{Effective: uint32(p >> 32), Permitted: uint32(p >> 32)},
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capset %s: %w", p, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}
