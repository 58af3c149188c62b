package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/udr-lb/udr/bgp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var now = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

func before(d time.Duration) time.Time { return now.Add(-d) }

// sample is a director with two workers, two VIPs, three real servers (one
// whose MAC is unknown), two health checks (one down), a sync master and
// some drops.
func sample() *Status {
	return &Status{
		Time: now, Started: before(3*time.Hour + 25*time.Minute + 7*time.Second),
		Iface:   Iface{Name: "eth0", Index: 2, MAC: "02:00:00:00:00:01", MTU: 1500},
		VIPMAC:  "02:00:00:00:01:02",
		Workers: 2, IO: "ring-v2",
		VIPs: []VIP{
			{Addr: netip.MustParseAddr("192.0.2.100"), Services: []string{"TCP 192.0.2.100:80", "UDP 192.0.2.100:53"}},
			{Addr: netip.MustParseAddr("2001:db8::100"), Services: []string{"TCP [2001:db8::100]:443"}},
		},
		Announce: Announce{Mode: "garp", IntervalSeconds: 10, Last: before(4 * time.Second), Sent: 1234},
		Neighbors: []Neighbor{
			{Addr: netip.MustParseAddr("192.0.2.11"), MAC: "02:00:00:00:00:11", Source: "arp", Learnt: before(3 * time.Hour), Seen: before(2 * time.Second)},
			{Addr: netip.MustParseAddr("192.0.2.12"), MAC: "02:00:00:00:00:12", Source: "kernel", Learnt: before(65 * time.Second), Seen: before(65 * time.Second)},
			{Addr: netip.MustParseAddr("192.0.2.13")},
			{Addr: netip.MustParseAddr("2001:db8::11"), MAC: "02:00:00:00:00:61", Source: "ndp", Learnt: before(time.Hour), Seen: before(1500 * time.Millisecond)},
		},
		Health: []Health{
			{Service: "TCP 192.0.2.100:80", Server: netip.MustParseAddrPort("192.0.2.11:80"), Check: "http", Up: true, Action: "quiesce", Last: before(time.Second), Checks: 6150, Transitions: 0},
			{Service: "TCP 192.0.2.100:80", Server: netip.MustParseAddrPort("192.0.2.12:80"), Check: "tcp", Up: false, Action: "quiesce", Last: before(time.Second), Reason: "dial tcp 192.0.2.12:80: connect: connection refused", Checks: 6150, Transitions: 1},
		},
		Table: Table{Entries: 1500, Capacity: 1048576, Expired: 98000, Evicted: 2, Full: 0, Dropped: 0,
			Workers: []WorkerTable{{Entries: 800, Capacity: 524288}, {Entries: 700, Capacity: 524288}}},
		Sync:      Sync{Daemons: []SyncDaemon{{State: "master", Iface: "eth0", SyncID: 7}}, SentConns: 4200, Dropped: map[string]uint64{"send": 3, "queue": 0}},
		Forwarded: 1234567, Replied: 3210,
		Drops:       []Drop{{Reason: "not-for-us", Frames: 120}, {Reason: "no-conn", Frames: 17}, {Reason: "no-neighbor", Frames: 2}},
		KernelDrops: 5,
	}
}

// quiet is a director just started in standby, with BGP, no checks, no
// drops, one worker.
func quiet() *Status {
	return &Status{
		Time: now, Started: before(9 * time.Second),
		Iface:   Iface{Name: "veth0", Index: 7, MAC: "02:00:00:00:00:01", MTU: 9000},
		VIPMAC:  "02:00:00:00:01:02",
		Standby: true, Workers: 1, IO: "socket",
		VIPs:     []VIP{{Addr: netip.MustParseAddr("203.0.113.10"), Services: []string{"TCP 203.0.113.10:80"}}},
		Announce: Announce{Mode: "standby", IntervalSeconds: 10},
		BGP: &bgp.Status{ASN: 65001, RouterID: netip.MustParseAddr("198.51.100.1"),
			Peers:  []bgp.PeerStatus{{Address: netip.MustParseAddr("198.51.100.254"), ASN: 65000, State: "Active"}},
			Routes: []bgp.RouteStatus{{Prefix: netip.MustParsePrefix("203.0.113.10/32"), Reason: "standby"}}},
		Neighbors: []Neighbor{{Addr: netip.MustParseAddr("203.0.113.21")}},
		Table:     Table{Capacity: 65536},
	}
}

// TestWriteText compares the text of udr status with goldens, for a busy
// director and a quiet one, at a fixed time.
func TestWriteText(t *testing.T) {
	for name, s := range map[string]*Status{"busy": sample(), "quiet": quiet()} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, s); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./status -update writes it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("udr status:\n%s\nwant (%s):\n%s", b.String(), path, want)
			}
		})
	}
}

// TestJSONRoundTrip checks that the text of a Status read back from its
// JSON, as udr status does with the daemon's answer, is the same.
func TestJSONRoundTrip(t *testing.T) {
	for _, s := range []*Status{sample(), quiet()} {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Status
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		var a, b bytes.Buffer
		WriteText(&a, s)
		WriteText(&b, &back)
		if a.String() != b.String() {
			t.Errorf("through JSON:\n%s\nwant:\n%s", b.String(), a.String())
		}
	}
}
