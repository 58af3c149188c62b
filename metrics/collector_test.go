package metrics

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/bounded"
	"github.com/udr-lb/udr/service"
	"github.com/udr-lb/udr/stats"
)

// fakeSnapshot is a director with one IPv4 service of two real servers
// (one health-checked and down, one unchecked) and one IPv6 service.
func fakeSnapshot() Snapshot {
	var frames forwarder.Stats
	frames.Verdicts[forwarder.VerdictForward] = 1000
	frames.Verdicts[forwarder.VerdictReply] = 7
	frames.Verdicts[forwarder.VerdictNoConn] = 3
	frames.Verdicts[forwarder.VerdictTableFull] = 2
	return Snapshot{
		Services: []Service{
			{
				Key: service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80},
				Stats: stats.Snapshot{
					Counters:   stats.Counters{Conns: 1}, // after -Z: not exported
					Cumulative: stats.Counters{Conns: 30, InPkts: 300, InBytes: 30000},
					Rates:      stats.Rates{CPS: 2, InPPS: 15, InBPS: 1200},
				},
				Servers: []Server{
					{
						Addr: netip.MustParseAddrPort("192.0.2.11:80"), Weight: 1, Active: 3, Inactive: 12, Persist: 1,
						Stats:  stats.Snapshot{Cumulative: stats.Counters{Conns: 20, InPkts: 200, InBytes: 20000}, Rates: stats.Rates{CPS: 1, InPPS: 7, InBPS: 560}},
						Health: &Health{Up: false, Transitions: 2},
					},
					{
						Addr: netip.MustParseAddrPort("192.0.2.12:80"), Weight: 2, Active: 5, Inactive: 20,
						Stats: stats.Snapshot{Cumulative: stats.Counters{Conns: 10, InPkts: 100, InBytes: 10000}},
					},
				},
			},
			{
				Key: service.Key{Proto: service.UDP, Addr: netip.MustParseAddr("2001:db8::100"), Port: 53},
				Servers: []Server{
					{Addr: netip.MustParseAddrPort("[2001:db8::11]:53"), Inactive: 4, Health: &Health{Up: true, Unknown: 7}},
				},
				QuorumUp: new(false),
			},
		},
		Frames:    frames,
		Conntrack: Conntrack{Entries: 40, Capacity: 1 << 20, Expired: 100, Evicted: 5, Full: 2, Dropped: 11, Defending: 1},
		Socket:    forwarder.ConnStats{RxKernelDrops: 9, TxNoBuffers: 1, RxFrames: 1234},
	}
}

// gather registers c in a pedantic registry (which checks every metric
// against its description), gathers once and returns the families called
// names, in that order, in the text exposition format (series sorted by
// label values, as Gather sorts them). It is the first half of
// testutil.CollectAndCompare, whose comparison needs a module that udr's
// go.mod does not require.
func gather(t *testing.T, c prometheus.Collector, names ...string) string {
	t.Helper()
	byName := make(map[string]*dto.MetricFamily)
	for _, mf := range gatherFamilies(t, c) {
		byName[mf.GetName()] = mf
	}
	var b strings.Builder
	for _, name := range names {
		mf, ok := byName[name]
		if !ok {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatalf("format %s: %v", name, err)
		}
	}
	return b.String()
}

func gatherFamilies(t *testing.T, c prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

func TestCollector(t *testing.T) {
	tests := []struct {
		name  string
		opts  *Options
		names []string
		want  string
	}{
		{
			name:  "connections",
			names: []string{"udr_service_connections", "udr_server_connections", "udr_server_weight"},
			want: `
# HELP udr_service_connections Connections of the service's configured real servers, by state (active, inactive, persistent templates).
# TYPE udr_service_connections gauge
udr_service_connections{service="TCP 192.0.2.100:80",state="active"} 8
udr_service_connections{service="TCP 192.0.2.100:80",state="inactive"} 32
udr_service_connections{service="TCP 192.0.2.100:80",state="persistent"} 1
udr_service_connections{service="UDP [2001:db8::100]:53",state="active"} 0
udr_service_connections{service="UDP [2001:db8::100]:53",state="inactive"} 4
udr_service_connections{service="UDP [2001:db8::100]:53",state="persistent"} 0
# HELP udr_server_connections Connections of the real server, by state (active, inactive, persistent templates).
# TYPE udr_server_connections gauge
udr_server_connections{server="192.0.2.11:80",service="TCP 192.0.2.100:80",state="active"} 3
udr_server_connections{server="192.0.2.11:80",service="TCP 192.0.2.100:80",state="inactive"} 12
udr_server_connections{server="192.0.2.11:80",service="TCP 192.0.2.100:80",state="persistent"} 1
udr_server_connections{server="192.0.2.12:80",service="TCP 192.0.2.100:80",state="active"} 5
udr_server_connections{server="192.0.2.12:80",service="TCP 192.0.2.100:80",state="inactive"} 20
udr_server_connections{server="192.0.2.12:80",service="TCP 192.0.2.100:80",state="persistent"} 0
udr_server_connections{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53",state="active"} 0
udr_server_connections{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53",state="inactive"} 4
udr_server_connections{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53",state="persistent"} 0
# HELP udr_server_weight Configured weight of the real server.
# TYPE udr_server_weight gauge
udr_server_weight{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 1
udr_server_weight{server="192.0.2.12:80",service="TCP 192.0.2.100:80"} 2
udr_server_weight{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53"} 0
`,
		},
		{
			name:  "traffic counters are cumulative, not net of -Z",
			names: []string{"udr_service_connections_total", "udr_service_bytes_total", "udr_server_packets_total"},
			want: `
# HELP udr_service_connections_total Connections scheduled to the service.
# TYPE udr_service_connections_total counter
udr_service_connections_total{service="TCP 192.0.2.100:80"} 30
udr_service_connections_total{service="UDP [2001:db8::100]:53"} 0
# HELP udr_service_bytes_total Client-to-server bytes (IP datagram lengths) forwarded for the service.
# TYPE udr_service_bytes_total counter
udr_service_bytes_total{service="TCP 192.0.2.100:80"} 30000
udr_service_bytes_total{service="UDP [2001:db8::100]:53"} 0
# HELP udr_server_packets_total Client-to-server packets forwarded to the real server.
# TYPE udr_server_packets_total counter
udr_server_packets_total{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 200
udr_server_packets_total{server="192.0.2.12:80",service="TCP 192.0.2.100:80"} 100
udr_server_packets_total{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53"} 0
`,
		},
		{
			name:  "health only for checked servers",
			names: []string{"udr_server_up", "udr_server_health_transitions_total", "udr_server_health_unknown_total"},
			want: `
# HELP udr_server_up Whether the real server's health check considers it up (1) or down (0).
# TYPE udr_server_up gauge
udr_server_up{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 0
udr_server_up{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53"} 1
# HELP udr_server_health_transitions_total Changes of the real server's health state.
# TYPE udr_server_health_transitions_total counter
udr_server_health_transitions_total{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 2
udr_server_health_transitions_total{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53"} 0
# HELP udr_server_health_unknown_total Health checks of the real server that could not run for the director's own want of resources (descriptors, buffers, memory): no result, the state stays.
# TYPE udr_server_health_unknown_total counter
udr_server_health_unknown_total{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 0
udr_server_health_unknown_total{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53"} 7
`,
		},
		{
			name:  "quorum only where it is kept",
			names: []string{"udr_service_quorum_up"},
			want: `
# HELP udr_service_quorum_up Whether the service has its quorum (1), or its sorry server, if any, serves in place of its real servers (0); only for services with a sorry server, quorum or hysteresis.
# TYPE udr_service_quorum_up gauge
udr_service_quorum_up{service="UDP [2001:db8::100]:53"} 0
`,
		},
		{
			name:  "rates when asked",
			opts:  &Options{Rates: true},
			names: []string{"udr_service_connections_per_second", "udr_server_bytes_per_second"},
			want: `
# HELP udr_service_connections_per_second The kernel estimator's connection rate of the service (ipvsadm --rate CPS).
# TYPE udr_service_connections_per_second gauge
udr_service_connections_per_second{service="TCP 192.0.2.100:80"} 2
udr_service_connections_per_second{service="UDP [2001:db8::100]:53"} 0
# HELP udr_server_bytes_per_second The kernel estimator's byte rate of the real server.
# TYPE udr_server_bytes_per_second gauge
udr_server_bytes_per_second{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 560
udr_server_bytes_per_second{server="192.0.2.12:80",service="TCP 192.0.2.100:80"} 0
udr_server_bytes_per_second{server="[2001:db8::11]:53",service="UDP [2001:db8::100]:53"} 0
`,
		},
		{
			name:  "no rates by default",
			names: []string{"udr_service_connections_per_second", "udr_server_bytes_per_second"},
		},
		{
			name:  "frames, conntrack and socket",
			names: []string{"udr_frames_forwarded_total", "udr_frames_replied_total", "udr_conntrack_entries", "udr_conntrack_capacity", "udr_conntrack_expired_total", "udr_conntrack_evictions_total", "udr_conntrack_full_total", "udr_conntrack_defense_dropped_total", "udr_conntrack_defending_workers", "udr_socket_kernel_drops_total"},
			want: `
# HELP udr_frames_forwarded_total Frames rewritten and sent to a real server.
# TYPE udr_frames_forwarded_total counter
udr_frames_forwarded_total 1000
# HELP udr_frames_replied_total Frames answered by udr (ARP replies, neighbor advertisements, ICMP unreachables).
# TYPE udr_frames_replied_total counter
udr_frames_replied_total 7
# HELP udr_conntrack_entries Entries in the connection table.
# TYPE udr_conntrack_entries gauge
udr_conntrack_entries 40
# HELP udr_conntrack_capacity Most entries the connection table holds.
# TYPE udr_conntrack_capacity gauge
udr_conntrack_capacity 1.048576e+06
# HELP udr_conntrack_expired_total Connection entries removed because their timer had fired.
# TYPE udr_conntrack_expired_total counter
udr_conntrack_expired_total 100
# HELP udr_conntrack_evictions_total Live connection entries evicted to make room.
# TYPE udr_conntrack_evictions_total counter
udr_conntrack_evictions_total 5
# HELP udr_conntrack_full_total New connections refused because the connection table was full.
# TYPE udr_conntrack_full_total counter
udr_conntrack_full_total 2
# HELP udr_conntrack_defense_dropped_total Connection entries the drop_entry and secure_tcp defences removed before their timer fired.
# TYPE udr_conntrack_defense_dropped_total counter
udr_conntrack_defense_dropped_total 11
# HELP udr_conntrack_defending_workers Workers whose connection table has the drop_entry or secure_tcp defence on.
# TYPE udr_conntrack_defending_workers gauge
udr_conntrack_defending_workers 1
# HELP udr_socket_kernel_drops_total Frames the kernel dropped at udr's packet socket: rx when the receive buffer was full, tx when the device queue was.
# TYPE udr_socket_kernel_drops_total counter
udr_socket_kernel_drops_total{direction="rx"} 9
udr_socket_kernel_drops_total{direction="tx"} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gather(t, NewCollector(fakeSnapshot, tt.opts), tt.names...)
			if diff := cmp.Diff(strings.TrimPrefix(tt.want, "\n"), got); diff != "" {
				t.Fatalf("metrics (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCollectorDrops checks that every verdict but forward and reply is a
// drop reason, named by Verdict.String.
func TestCollectorDrops(t *testing.T) {
	want := `# HELP udr_frames_dropped_total Frames dropped, by the forwarder's verdict.
# TYPE udr_frames_dropped_total counter
`
	var lines []string
	for _, v := range forwarder.Verdicts() {
		if v == forwarder.VerdictForward || v == forwarder.VerdictReply {
			continue
		}
		n := map[forwarder.Verdict]int{forwarder.VerdictNoConn: 3, forwarder.VerdictTableFull: 2}[v]
		lines = append(lines, fmt.Sprintf("udr_frames_dropped_total{reason=%q} %d\n", v.String(), n))
	}
	slices.Sort(lines) // Gather sorts series by label value
	want += strings.Join(lines, "")
	got := gather(t, NewCollector(fakeSnapshot, nil), "udr_frames_dropped_total")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("drops (-want +got):\n%s", diff)
	}
}

// TestCollectorLint runs promlint over every metric, rates included.
func TestCollectorLint(t *testing.T) {
	mfs := gatherFamilies(t, NewCollector(fakeSnapshot, &Options{Rates: true}))
	if len(mfs) != 45 { // udr_sync_dropped_total has no series without drops; 8 node_ipvs_*
		t.Fatalf("%d metric families, want 45", len(mfs))
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestCollectorSnapshotPerScrape checks that each scrape takes exactly one
// fresh snapshot.
func TestCollectorSnapshotPerScrape(t *testing.T) {
	calls := 0
	c := NewCollector(func() Snapshot {
		calls++
		s := fakeSnapshot()
		s.Conntrack.Entries = calls
		return s
	}, nil)
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf(`# HELP udr_conntrack_entries Entries in the connection table.
# TYPE udr_conntrack_entries gauge
udr_conntrack_entries %d
`, i)
		if got := gather(t, c, "udr_conntrack_entries"); got != want {
			t.Fatalf("scrape %d:\n%s\nwant:\n%s", i, got, want)
		}
		if calls != i {
			t.Fatalf("after scrape %d: %d snapshots taken", i, calls)
		}
	}
}

// TestCollectorListeners checks the bounded listeners' series.
func TestCollectorListeners(t *testing.T) {
	var control, metrics bounded.Counters
	control.Held.Store(3)
	metrics.Held.Store(64)
	metrics.IdleClosed.Store(1936)
	metrics.Waited.Store(2)
	c := NewCollector(fakeSnapshot, &Options{Listeners: map[string]*bounded.Counters{"control": &control, "metrics": &metrics}})
	want := `# HELP udr_listener_connections Connections the listener (control, metrics) holds; at most its cap.
# TYPE udr_listener_connections gauge
udr_listener_connections{listener="control"} 3
udr_listener_connections{listener="metrics"} 64
# HELP udr_listener_idle_closed_total Idle connections the listener closed, at its cap, to make room for a new one.
# TYPE udr_listener_idle_closed_total counter
udr_listener_idle_closed_total{listener="control"} 0
udr_listener_idle_closed_total{listener="metrics"} 1936
# HELP udr_listener_waited_total New connections that waited, at the listener's cap, for a busy one to end.
# TYPE udr_listener_waited_total counter
udr_listener_waited_total{listener="control"} 0
udr_listener_waited_total{listener="metrics"} 2
`
	got := gather(t, c, "udr_listener_connections", "udr_listener_idle_closed_total", "udr_listener_waited_total")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("listener metrics (-want +got):\n%s", diff)
	}
	mfs := gatherFamilies(t, c)
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestCollectorSync checks the sync daemons' series.
func TestCollectorSync(t *testing.T) {
	c := NewCollector(func() Snapshot {
		s := fakeSnapshot()
		s.Sync = Sync{Master: true, SentMessages: 7, SentConns: 250, ReceivedMessages: 3, ReceivedConns: 40,
			HellosSent: 1, HellosReceived: 2, Resyncs: 1, ResyncConns: 20, Dropped: map[string]uint64{"decode": 4, "no-service": 0}}
		return s
	}, nil)
	want := `# HELP udr_sync_connections_total Connections in the sync messages sent or received.
# TYPE udr_sync_connections_total counter
udr_sync_connections_total{direction="received"} 40
udr_sync_connections_total{direction="sent"} 250
# HELP udr_sync_daemon_running Whether the connection sync daemon of the state (master, backup) runs.
# TYPE udr_sync_daemon_running gauge
udr_sync_daemon_running{state="backup"} 0
udr_sync_daemon_running{state="master"} 1
# HELP udr_sync_dropped_total Sync messages or connections dropped, by reason (decode, syncid, skipped, fwmark, no-cport, no-server, insert, encode, send, queue).
# TYPE udr_sync_dropped_total counter
udr_sync_dropped_total{reason="decode"} 4
udr_sync_dropped_total{reason="no-service"} 0
# HELP udr_sync_hellos_total Hellos (sync messages without connections) sent by a starting backup, or received from a starting peer.
# TYPE udr_sync_hellos_total counter
udr_sync_hellos_total{direction="received"} 2
udr_sync_hellos_total{direction="sent"} 1
# HELP udr_sync_messages_total Connection sync messages sent by the master (resyncs included) or received by the backup (hellos apart).
# TYPE udr_sync_messages_total counter
udr_sync_messages_total{direction="received"} 3
udr_sync_messages_total{direction="sent"} 7
# HELP udr_sync_resync_connections_total Connections sent in resyncs.
# TYPE udr_sync_resync_connections_total counter
udr_sync_resync_connections_total 20
# HELP udr_sync_resyncs_total Whole connection tables sent in answer to a peer's hello.
# TYPE udr_sync_resyncs_total counter
udr_sync_resyncs_total 1
`
	got := gather(t, c, "udr_sync_connections_total", "udr_sync_daemon_running", "udr_sync_dropped_total", "udr_sync_hellos_total",
		"udr_sync_messages_total", "udr_sync_resync_connections_total", "udr_sync_resyncs_total")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("sync metrics (-want +got):\n%s", diff)
	}
}
