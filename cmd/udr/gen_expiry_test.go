package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/capture"
	"github.com/udr-lb/udr/forwarder"
)

// The connection timers' golden cases (issue: expiry is on time, in
// 10 ms ticks).
func init() {
	goldenCases = append(goldenCases,
		goldenCase{
			// UDP connections expire at their deadline with no packet:
			// lc sees the counts drop (C goes to rs1 because B expired
			// unseen), and the listing at the last frame, an ARP request
			// 700.5 s in, shows only D.
			name: "expiry_no_traffic",
			rules: "-A -u 192.0.2.100:53 -s lc\n" +
				"-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1\n" +
				"-a -u 192.0.2.100:53 -r 192.0.2.12:53 -g -w 1\n",
			args:  macArgs + " --conns",
			build: expiryNoTraffic,
		},
		goldenCase{
			// The CLOSE timer is 10 s from the RST, to the 10 ms: an ACK
			// 9.6 s after the RST is forwarded (and restarts the timer),
			// one 10.1 s after that ACK finds no connection.
			name: "close_timer_subsecond",
			rules: "-A -t 192.0.2.100:80 -s rr\n" +
				"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n",
			args:  macArgs + " --conns",
			build: closeTimerSubsecond,
		},
	)
}

// at moves the capture's clock to d after its first frame.
func (c *genCapture) at(d time.Duration) { c.now = captureStart.Add(d) }

var dns53 = netip.AddrPortFrom(vip, 53)

func expiryNoTraffic(c *genCapture) {
	c.lan(rs1, rs2)
	e := c.toVIP(clientMAC)
	query := []byte("udr expiry test query")
	c.udp(e, clientPort(client, 0), dns53, query) // A: rs2 (the list is [rs2, rs1])
	c.udp(e, clientPort(client, 1), dns53, query) // B: rs1, expires at 300 s
	c.at(100 * time.Second)
	c.udp(e, clientPort(client, 0), dns53, query) // A again: expires at 400 s
	c.at(310 * time.Second)
	c.udp(e, clientPort(client, 2), dns53, query) // C: rs1 (0) rather than rs2 (1)
	c.at(650 * time.Second)
	c.udp(e, clientPort(client, 3), dns53, query) // D: A and C expired too
	c.at(700*time.Second + 500*time.Millisecond)
	c.whoHas(clientMAC, client, vip, 0) // the listing's time: D has 249.5 s left
}

func closeTimerSubsecond(c *genCapture) {
	c.lan(rs1)
	e := c.toVIP(clientMAC)
	src := clientPort(client, 0)
	c.tcp(e, src, vip80, seg{flags: "S", seq: isn(0)})
	c.tcp(e, src, vip80, seg{flags: "A", seq: isn(0) + 1, ack: serverISN + 1})
	c.at(1500 * time.Millisecond)
	c.tcp(e, src, vip80, seg{flags: "R", seq: isn(0) + 1})
	c.at(11100 * time.Millisecond) // 9.6 s after the RST: alive
	c.tcp(e, src, vip80, seg{flags: "A", seq: isn(0) + 1, ack: serverISN + 1})
	c.at(21201 * time.Millisecond) // 10.1 s after that ACK: expired
	c.tcp(e, src, vip80, seg{flags: "A", seq: isn(0) + 1, ack: serverISN + 1})
}

// TestReplayExpiryCounts: at the end of the expiry_no_traffic replay, the
// real servers' counts hold only the connection still listed.
func TestReplayExpiryCounts(t *testing.T) {
	dir := pcapDir
	cfg, err := loadRules(filepath.Join(dir, "expiry_no_traffic.rules"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(filepath.Join(dir, "expiry_no_traffic.in.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	opts := forwarder.Options{IfMAC: directorMAC, VIPMAC: arpresponder.VirtualMAC(directorMAC)}
	res, err := capture.Replay(capture.ReplayConfig{Config: cfg, Options: opts, In: in})
	if err != nil {
		t.Fatal(err)
	}
	reg := res.Pipeline.Registry()
	svc := cfg.Services[0]
	for _, d := range svc.Dests {
		id, ok := reg.Lookup(svc.DestKey(d))
		if !ok {
			t.Fatalf("%v not in the registry", d.Addr)
		}
		st := reg.State(id)
		want := int32(0)
		if d.Addr == rs2 {
			want = 1 // D
		}
		if a, i := st.Active.Load(), st.Inactive.Load(); a != 0 || i != want {
			t.Errorf("%v: ActiveConn %d InActConn %d at the end, want 0 and %d", d.Addr, a, i, want)
		}
	}
	if n := res.Pipeline.Conns().Len(); n != 1 {
		t.Errorf("%d entries at the end, want 1", n)
	}
}
