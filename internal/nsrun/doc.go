// Package nsrun runs code in a network namespace: the director's control
// changes, the health checker's probes and the test labs' setup all open
// sockets and query netlink in a namespace that may not be the one of the
// thread that asks. Where there are no namespaces (not Linux), it just runs
// the code.
package nsrun
