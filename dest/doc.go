// Package dest owns the live state of udr's real servers: the part that
// outlives configuration snapshots and that the packet path shares with the
// control plane. An ID names a real server of one virtual service (a Key)
// for as long as anything refers to it; a State holds its connection counts,
// flags and statistics as atomics; a Registry hands out IDs and owns the
// State behind each. The packet path reads a State by ID without a lock or
// an allocation. The package imports the standard library only, so the
// data-plane packages (sched, conntrack, stats, forwarder) depend on it and
// not on the configuration.
package dest
