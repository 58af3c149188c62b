package admin

import (
	"fmt"
	"syscall"
)

// Exit statuses of ipvsadm (ipvsadm.c): fail() exits 2; popt errors,
// tryhelp_exit and kernel errors on add/edit/delete/set exit 255 (-1).
const (
	ExitUsage  = 2
	ExitKernel = 255
)

// UsageError is an error ipvsadm reports before it asks the kernel anything:
// its fail() messages (exit status 2) and popt's errors (exit status 255).
// Msg is ipvsadm's text, byte for byte, so that udr admin prints what
// ipvsadm prints.
type UsageError struct {
	Msg    string
	Detail string // udr's explanation, e.g. "weight 70000 out of range 0..65535"; may be empty
	Code   int    // ExitUsage or ExitKernel
}

func (e *UsageError) Error() string { return e.Msg }

// ExitCode returns the status ipvsadm exits with.
func (e *UsageError) ExitCode() int { return e.Code }

func failf(format string, args ...any) *UsageError {
	return &UsageError{Msg: fmt.Sprintf(format, args...), Code: ExitUsage}
}

// KernelError is an error the kernel would return for a command, with the
// message ipvsadm prints for it (libipvs ipvs_strerror) and exit status 255.
type KernelError struct {
	Op    Op
	Errno syscall.Errno
	Msg   string
}

func (e *KernelError) Error() string { return e.Msg }

// ExitCode returns the status ipvsadm exits with: 255.
func (e *KernelError) ExitCode() int { return ExitKernel }

// Unwrap returns the errno, so that errors.Is(err, syscall.EEXIST) works.
func (e *KernelError) Unwrap() error { return e.Errno }

// kernelErr returns the error of op failing with errno, worded as libipvs's
// ipvs_strerror table words it; errnos it does not name get strerror's text
// (glibc's, spelled out so that it does not depend on the OS udr runs on).
func kernelErr(op Op, errno syscall.Errno) *KernelError {
	msg := ""
	switch errno {
	case syscall.EEXIST:
		switch op {
		case OpAddService:
			msg = "Service already exists"
		case OpAddServer:
			msg = "Destination already exists"
		case OpStartDaemon:
			msg = "Daemon has already run"
		}
	case syscall.ENOENT:
		switch op {
		case OpAddService, OpEditService:
			msg = "Scheduler or persistence engine not found"
		case OpEditServer, OpDeleteServer:
			msg = "No such destination"
		}
	case syscall.ESRCH:
		switch op {
		case OpEditService, OpDeleteService, OpZero, OpList:
			msg = "No such service"
		case OpAddServer, OpEditServer, OpDeleteServer:
			msg = "Service not defined"
		case OpStopDaemon:
			msg = "No daemon is running"
		}
	case syscall.EPERM:
		msg = "Permission denied (you must be root)"
	case syscall.EINVAL:
		msg = "Invalid operation.  Possibly wrong module version, address not unicast, ..."
	case syscall.EOPNOTSUPP:
		msg = "Operation not supported with IPv6"
	case syscall.EAFNOSUPPORT:
		msg = "Operation not supported with specified address family"
	}
	if msg == "" {
		msg = strerror[errno]
	}
	if msg == "" {
		msg = fmt.Sprintf("Unknown error %d", int(errno))
	}
	return &KernelError{Op: op, Errno: errno, Msg: msg}
}

// strerror is glibc's text for the errnos kernelErr can meet outside
// ipvs_strerror's table.
var strerror = map[syscall.Errno]string{
	syscall.ENOENT: "No such file or directory",
	syscall.ESRCH:  "No such process",
	syscall.EEXIST: "File exists",
	syscall.ERANGE: "Numerical result out of range",
	syscall.ENODEV: "No such device",
}
