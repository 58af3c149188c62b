// Package health checks real servers as keepalived's checkers do for LVS:
// a TCP connect, an HTTP or HTTPS GET with an expected status and body
// digest, a UDP exchange, a DNS query or a program's exit status (misc.go),
// each target on its own interval and timeout, from an optional source
// address, with flap damping: a server goes down after Fall consecutive
// failures, retried RetryInterval apart when set, and comes back after
// Rise consecutive successes. A misc_dynamic check also sets the server's
// weight (Config.Weight). Transitions are reported through
// a callback and counted. A check the checker cannot run for want of its
// own resources (LocalError: out of descriptors, buffers, memory or local
// ports) has no result: it neither passes nor fails the server, and is
// counted as unknown.
//
// Checks go from the director to the real server's own address by
// default. In "dr" mode a TCP check is a raw SYN sent to the VIP at the
// real server's MAC, the path forwarded traffic takes, so that a server
// that lost the VIP from its lo fails its check while it still answers on
// its own address.
//
// New captures the network namespace of the calling thread: the packet
// socket of dr mode is opened there, and every probe socket is created
// there, whatever thread Run's goroutines happen to run on. A Checker is
// safe for concurrent use; the report callback is called from probe
// goroutines, one call at a time per target, and must not block for long.
package health
