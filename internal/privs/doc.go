// Package privs gives up the privileges `udr run` does not need: every
// Linux capability outside a kept set, from the effective, permitted,
// inheritable, ambient and bounding sets, and the right to gain any back
// (no_new_privs).
//
// Capabilities belong to each thread, and a Go program has several threads
// before main runs, which capset(2) on one of them does not reach. Restrict
// therefore changes the sets of one locked thread and then re-executes the
// program from that thread (execve through /proc/self/exe, same pid,
// arguments, environment and descriptors): the kernel ends the other threads,
// and every thread the new image starts inherits the restricted sets. The
// re-executed program calls Restrict again, finds nothing to do and goes on.
// No cgo and no runtime.AllThreadsSyscall (which refuses to run in programs
// that link cgo, as any program using package net may) is needed.
package privs
