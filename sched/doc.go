// Package sched implements the Linux IPVS schedulers with the kernel's
// selection rules: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf,
// mh and twos (net/netfilter/ipvs/ip_vs_*.c; IPVS.md §1 in the design notes). New
// builds a Scheduler over a service's real servers in the kernel's list
// order, most recently added first, and every scheduler walks that list
// from the head, so ties and first picks match a kernel director. A server
// that is quiesced (weight 0) or carries the overload flag is skipped
// exactly where the kernel skips it; the connection overhead is the classic
// active×256 + inactive. Tables (sh, dh, mh) are built in New, off the
// packet path. Pick allocates nothing, reads the connection counts through
// dest.State atomics, and is safe for concurrent use; the state that
// New carries from the scheduler it replaces (rr position, wrr current
// weight, lblc/lblcr cache) can be read while the old scheduler still
// picks. Time (lblc/lblcr cache ageing) and randomness (twos) are inputs,
// so a replay picks the same servers.
package sched
