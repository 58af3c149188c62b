//go:build !linux

package health

import "syscall"

// scriptAttr puts a misc check's script in a process group of its own;
// only Linux can also tie its life to udr's (PR_SET_PDEATHSIG).
func scriptAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
