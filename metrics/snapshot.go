package metrics

import (
	"net/netip"

	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/service"
	"github.com/udr-lb/udr/stats"
)

// Snapshot is the state a scrape reports, copied by the director.
type Snapshot struct {
	Services []Service
	// Total are the statistics of the whole director (stats.Table.Total,
	// the kernel's /proc/net/ip_vs_stats): the node_ipvs_* totals.
	Total stats.Snapshot
	// Frames are the forwarder's verdict counters, summed over workers.
	Frames forwarder.Stats
	// Conntrack describes the connection table.
	Conntrack Conntrack
	// Socket are the AF_PACKET socket's counters; only the kernel's drops
	// are exported.
	Socket forwarder.ConnStats
	// Standby: the director is the standby one of an active/backup pair
	// (forwarder.Options.Standby).
	Standby bool
	// Sync are the connection sync daemons' counters.
	Sync Sync
}

// Sync are the connection sync daemons' state and counters.
type Sync struct {
	Master, Backup bool // which daemons run
	// Messages and connections sent by the master (resyncs included) and
	// received by the backup (hellos apart).
	SentMessages, SentConns, ReceivedMessages, ReceivedConns uint64
	// Hellos sent by a starting backup and received from starting peers.
	HellosSent, HellosReceived uint64
	// Resyncs are the whole tables sent in answer to hellos, and
	// ResyncConns the connections they held.
	Resyncs, ResyncConns uint64
	// Dropped counts messages or connections dropped, by reason.
	Dropped map[string]uint64
}

// Service is one virtual service and its real servers.
type Service struct {
	Key service.Key
	// Stats are the service's statistics (stats.Table.Service). The
	// exported counters are Stats.Cumulative, which ipvsadm -Z does not
	// reset: Prometheus counters must not go back.
	Stats   stats.Snapshot
	Servers []Server
	// QuorumUp says whether the service has its quorum (keepalived's
	// quorum: without it, its sorry server serves), or is nil when its
	// quorum is not kept (no sorry server, quorum or hysteresis).
	QuorumUp *bool
}

// Server is one real server of a service.
type Server struct {
	Addr   netip.AddrPort
	Weight int32
	// Connection counts (dest.State).
	Active, Inactive, Persist int32
	// Stats are the server's statistics (stats.Table.Dest).
	Stats stats.Snapshot
	// Health is the state of the server's health check, or nil when it has
	// none.
	Health *Health
}

// Health is the state of a real server's health check.
type Health struct {
	Up          bool
	Transitions uint64 // up→down and down→up changes since the check started
	Unknown     uint64 // checks that could not run for the director's own want of resources
}

// Conntrack is a copy of the connection table's size and counters
// (conntrack.Table Len, Cap and Stats), taken by the goroutine that owns
// the table.
type Conntrack struct {
	Entries  int
	Capacity int
	Expired  uint64 // entries removed because their timer had fired
	Evicted  uint64 // live entries removed to make room
	Full     uint64 // inserts refused because the table was full
	Dropped  uint64 // entries the drop_entry and secure_tcp defences removed
	// Defending is how many workers' tables have a defence on.
	Defending int
}

// serviceLabel names a service as ipvsadm -L -n does: "TCP 192.0.2.100:80",
// "UDP [2001:db8::1]:53".
func serviceLabel(k service.Key) string {
	return k.Proto.String() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}
