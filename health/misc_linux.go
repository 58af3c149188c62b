package health

import "syscall"

// scriptAttr puts a misc check's script in a process group of its own, so
// that a timeout kills whatever it started too, and has the kernel send it
// SIGTERM if udr dies first (PR_SET_PDEATHSIG), so that no script outlives
// the director that runs it.
func scriptAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
