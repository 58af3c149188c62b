// Package stats keeps the statistics that ipvsadm --stats and --rate show:
// per real server and per service counters (connections, packets, bytes),
// the zero point that -Z sets, and the kernel's rate estimator
// (net/netfilter/ipvs/ip_vs_est.c) with its exact fixed-point arithmetic.
//
// An Estimator is a value that allocates nothing and is not safe for
// concurrent use. A Table reads the live dest.State counters when
// the director's 2-second ticker calls Tick, accumulates each service's
// counters from its real servers' deltas (so the counts of a deleted real
// server stay in its service, as the kernel keeps service counters apart),
// and answers the admin's and the metrics' queries; it is safe for
// concurrent use. Nothing here reads the clock: the caller passes the time.
package stats
