// Package dest owns the live state of udr's real servers: the part that
// outlives configuration snapshots and that the packet path shares with the
// control plane. An ID names a real server of one virtual service (a Key)
// for as long as anything refers to it; a State holds its connection counts,
// flags and statistics as atomics; a Registry hands out IDs and owns the
// State behind each. The packet path reads a State by ID without a lock or
// an allocation. The package imports the standard library only, so the
// data-plane packages (sched, conntrack, stats, forwarder) depend on it and
// not on the configuration.
//
// IDs are a bounded resource (the director's registry holds 65,536), so
// they are freed, as the kernel frees a deleted dest from its trash: only
// Compile assigns them (Registry.Assign), read-only code looks them up
// (Registry.Lookup), and Registry.Reap frees the ID of a server that left
// the table once the packet workers have passed the table swap, no
// connection entry or persistence template counts on it, and it has been
// unreferenced for TrashPeriod (sooner when IDs run short). A server added
// back before then gets its old ID, State and statistics again, as
// ip_vs_trash_get_dest revives a dest; one added back later starts from
// zero, as a new kernel dest does. A freed slot comes back under a new ID
// (its generation), so an ID kept where nothing counts it (a scheduler's
// cache, the fragment table) never names the slot's next server.
package dest
