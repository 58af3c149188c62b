//go:build linux

package director_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/service"
)

const vipUDPExpiry = "192.0.2.100:5300"

var udpRules = []string{
	"-A -u " + vipUDPExpiry + " -s rr",
	"-a -u " + vipUDPExpiry + " -r " + rs1 + ":5300 -g -w 1",
	"-a -u " + vipUDPExpiry + " -r " + rs2 + ":5300 -g -w 1",
}

// udpConns returns the listed connections to the UDP service and the
// counts of the service's real servers, as ipvsadm -L -c and -L show them.
func udpConns(t *testing.T, d *director.Director, list bool) ([]admin.Conn, map[netip.AddrPort]admin.DestInfo) {
	t.Helper()
	st, err := d.State(list)
	if err != nil {
		t.Fatal(err)
	}
	var conns []admin.Conn
	for _, c := range st.Conns {
		if c.Virtual.String() == vipUDPExpiry {
			conns = append(conns, c)
		}
	}
	infos := make(map[netip.AddrPort]admin.DestInfo)
	for k, info := range st.Dests {
		if k.Service.String() == "UDP "+vipUDPExpiry || k.Service.Proto == service.UDP {
			infos[k.Dest] = info
		}
	}
	return conns, infos
}

// TestPrivilegedExpiryNoTraffic: with the UDP timeout at 2 s, a client's
// flow leaves the connection listing, and its real server's InActConn,
// 2 s after its last datagram (to the 10 ms tick, plus the test's polling
// on a loaded machine), with no traffic at all meanwhile.
func TestPrivilegedExpiryNoTraffic(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "expiry", drlab.Options{})
	for _, rs := range l.RS {
		serveUDPName(t, rs, vipUDPExpiry)
	}
	l.start(2, udpRules...)
	if err := l.d.Apply(&admin.Command{Op: admin.OpSet, Timeouts: service.Timeouts{UDP: 2}}); err != nil {
		t.Fatal(err)
	}
	c := dialUDP(t, l.Client, vipUDPExpiry)
	// The new timeout reaches the worker from the control loop: exchange
	// until the entry has it. The director saw the last datagram between
	// sent and last: its deadline is 2 s after a moment in between.
	var sent, last time.Time
	var dst netip.AddrPort
	for i := 0; ; i++ {
		sent = time.Now()
		rs := exchange(t, c, fmt.Sprintf("q%d", i))
		last = time.Now()
		dst = netip.MustParseAddrPort(map[string]string{"rs1": rs1, "rs2": rs2}[rs] + ":5300")
		// The entry and its count come from one reading, taken before
		// the timeout can have run out even on a loaded machine.
		conns, infos := udpConns(t, l.d, true)
		if len(conns) == 1 && conns[0].Expires <= 2 && time.Since(last) < time.Second {
			if infos[dst].InActConn != 1 {
				t.Fatalf("%s InActConn %d after the exchange, want 1", dst, infos[dst].InActConn)
			}
			break
		}
		if i == 50 {
			t.Fatalf("the entry did not take the 2 s UDP timeout: %+v", conns)
		}
		time.Sleep(50 * time.Millisecond)
	}
	earliest, latest := sent.Add(2*time.Second), last.Add(2*time.Second)
	for {
		asked := time.Now()
		_, infos := udpConns(t, l.d, false)
		read := time.Now() // the reading was taken between asked and read
		if infos[dst].InActConn == 0 && infos[dst].ActiveConn == 0 {
			if conns, _ := udpConns(t, l.d, true); len(conns) != 0 {
				t.Fatalf("%s InActConn 0 but %d entries listed", dst, len(conns))
			}
			if read.Before(earliest.Add(-20 * time.Millisecond)) {
				t.Fatalf("expired %v before the deadline", earliest.Sub(read))
			}
			t.Logf("gone at most %v after the deadline", read.Sub(earliest))
			return
		}
		// Still counted at a reading taken well after the deadline: late,
		// however slow the polls are. The lazy expiry this replaced left
		// the entry for minutes; the tick itself is checked with a fake
		// clock (forwarder.TestWorkerExpiresOnTimeIdle).
		if late := asked.Sub(latest); late > 500*time.Millisecond {
			conns, _ := udpConns(t, l.d, true)
			t.Fatalf("%v after the deadline: %d entries listed, %s InActConn %d", late.Round(time.Millisecond), len(conns), dst, infos[dst].InActConn)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPrivilegedExpireNodestFlush: with expire_nodest_conn=1, deleting a
// real server expires its connections right after, with no packet
// of theirs (ip_vs_expire_nodest_conn_flush); the other server's stay.
func TestPrivilegedExpireNodestFlush(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "nodest", drlab.Options{})
	for _, rs := range l.RS {
		serveUDPName(t, rs, vipUDPExpiry)
	}
	l.writeRules(udpRules...)
	l.startWith(2, director.Config{Settings: director.Settings{Iface: "eth0", ExpireNodestConn: true}, Rules: l.rules})
	a, b := dialUDP(t, l.Client, vipUDPExpiry), dialUDP(t, l.Client, vipUDPExpiry)
	if got := exchange(t, a, "a"); got != "rs2" {
		t.Fatalf("first flow on %s, want rs2", got)
	}
	if got := exchange(t, b, "b"); got != "rs1" {
		t.Fatalf("second flow on %s, want rs1", got)
	}
	if conns, _ := udpConns(t, l.d, true); len(conns) != 2 {
		t.Fatalf("%d entries listed, want 2", len(conns))
	}
	// ipvsadm -d -u VIP:5300 -r rs2:5300
	l.reload(udpRules[0], udpRules[1])
	deleted := time.Now()
	for {
		conns, _ := udpConns(t, l.d, true)
		if len(conns) == 1 {
			if want := rs1 + ":5300"; conns[0].Dest.String() != want {
				t.Fatalf("entry to %v left, want the one to %s", conns[0].Dest, want)
			}
			t.Logf("flushed %v after the delete", time.Since(deleted))
			return
		}
		if time.Since(deleted) > 3*time.Second {
			t.Fatalf("3 s after deleting rs2: %d entries listed: %+v", len(conns), conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
