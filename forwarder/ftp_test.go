package forwarder

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/internal/udrtest"
)

// TestFTPDataNotScheduled: a packet from client port 20 (FTP data) that
// has no connection entry is never scheduled, TCP or UDP, whatever the
// scheduler (ip_vs_schedule: "Not scheduling FTPDATA"); it leaves no entry
// and no count.
func TestFTPDataNotScheduled(t *testing.T) {
	h := newHarness(t, rules2+`-A -u 192.0.2.100:54 -s rr -o
-a -u 192.0.2.100:54 -r 192.0.2.11:54 -g -w 1
-A -t 192.0.2.100:81 -s sh
-a -t 192.0.2.100:81 -r 192.0.2.11:81 -g -w 1
-A -t 192.0.2.100:82 -s rr -p 60
-a -t 192.0.2.100:82 -r 192.0.2.11:82 -g -w 1
`, 1024)
	vip := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(udrtest.VIP, port) }
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"tcp syn", udrtest.TCP(h.toVIP(), client(20), vip80, udrtest.SYN, nil)},
		{"tcp syn+ack", udrtest.TCP(h.toVIP(), client(20), vip80, udrtest.SYN|udrtest.ACK, nil)},
		{"udp", udrtest.UDP(h.toVIP(), client(20), vip53, []byte("q"))},
		{"udp one-packet", udrtest.UDP(h.toVIP(), client(20), vip(54), []byte("q"))},
		{"sh mid-stream", udrtest.TCP(h.toVIP(), client(20), vip(81), udrtest.ACK, nil)},
		{"persistent", udrtest.TCP(h.toVIP(), client(20), vip(82), udrtest.SYN, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := h.p.Process(slices.Clone(tt.frame), epoch)
			if got := v.String(); got != "ftp-data" {
				t.Errorf("verdict %v, want ftp-data", v)
			}
			if n := h.p.Conns().Len(); n != 0 {
				t.Errorf("connection table holds %d entries, want 0", n)
			}
		})
	}
	// Any other client port is scheduled as usual.
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(21), vip80, udrtest.SYN, nil), epoch); v != VerdictForward {
		t.Errorf("SYN from port 21: %v, want forward", v)
	}
}

const rulesFTP = `-A -t 192.0.2.100:21 -s rr -p 300
-a -t 192.0.2.100:21 -r 192.0.2.11:21 -g -w 1
-a -t 192.0.2.100:21 -r 192.0.2.12:21 -g -w 1
-A -t 192.0.2.100:8080 -s rr
-a -t 192.0.2.100:8080 -r 192.0.2.11:8080 -g -w 1
`

// TestFTPDataFollowsControl: with a persistent TCP service on port 21, a
// packet to the VIP's port 20 or to a port from 1024 up that has no service
// of its own is looked up in the port-21 service (ip_vs_service_find), and
// the template <caddr, 0, vaddr, 0> sends the client's control and data
// connections to one real server (ip_vs_sched_persist), whichever comes
// first. The template and the data connections list as the kernel's
// /proc/net/ip_vs_conn does: template ports 0, data ports the packet's.
func TestFTPDataFollowsControl(t *testing.T) {
	h := newHarness(t, rulesFTP, 1024)
	vip := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(udrtest.VIP, port) }
	clientB := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(udrtest.Client.Next(), port) }
	for _, tt := range []struct {
		name     string
		frame    []byte
		want     Verdict
		wantMAC  []byte
		wantPers bool
	}{
		// rr over [rs2, rs1]: A's control connection goes to rs2.
		{"A control", udrtest.TCP(h.toVIP(), client(40000), vip(21), udrtest.SYN, nil), VerdictForward, udrtest.RS2MAC, false},
		{"A passive data", udrtest.TCP(h.toVIP(), client(40001), vip(50000), udrtest.SYN, nil), VerdictForward, udrtest.RS2MAC, true},
		{"A active data (SYN+ACK to port 20)", udrtest.TCP(h.toVIP(), client(40002), vip(20), udrtest.SYN|udrtest.ACK, nil), VerdictForward, udrtest.RS2MAC, true},
		{"A data port 1024", udrtest.TCP(h.toVIP(), client(40003), vip(1024), udrtest.SYN, nil), VerdictForward, udrtest.RS2MAC, true},
		// B's data connection comes first: the scheduler picks, and
		// the control connection follows it.
		{"B data first", udrtest.TCP(h.toVIP(), clientB(40000), vip(40000), udrtest.SYN, nil), VerdictForward, udrtest.RS1MAC, false},
		{"B control", udrtest.TCP(h.toVIP(), clientB(40001), vip(21), udrtest.SYN, nil), VerdictForward, udrtest.RS1MAC, true},
		// A service of its own wins.
		{"own service", udrtest.TCP(h.toVIP(), client(40004), vip(8080), udrtest.SYN, nil), VerdictForward, udrtest.RS1MAC, false},
		// Privileged ports other than 20, and UDP, are not FTP data.
		{"port 1023", udrtest.TCP(h.toVIP(), client(40005), vip(1023), udrtest.SYN, nil), VerdictNoService, nil, false},
		{"port 22", udrtest.TCP(h.toVIP(), client(40006), vip(22), udrtest.SYN, nil), VerdictNoService, nil, false},
		{"udp", udrtest.UDP(h.toVIP(), client(40007), vip(50000), []byte("q")), VerdictNoService, nil, false},
	} {
		v, out := h.p.Process(slices.Clone(tt.frame), epoch)
		if v != tt.want {
			t.Errorf("%s: verdict %v, want %v", tt.name, v, tt.want)
			continue
		}
		if v != VerdictForward {
			continue
		}
		if !bytes.Equal(out[:6], tt.wantMAC) {
			t.Errorf("%s: sent to %x, want %x", tt.name, out[:6], tt.wantMAC)
		}
		if d := h.p.Decision(); d.Persist != tt.wantPers {
			t.Errorf("%s: from a template = %v, want %v", tt.name, d.Persist, tt.wantPers)
		}
	}

	var got []string
	for _, c := range admin.Conns(h.p.Conns(), h.reg, h.p.Ticks(epoch)) {
		got = append(got, fmt.Sprintf("%s %v %v %v template=%v", c.Proto, c.Client, c.Virtual, c.Dest, c.Template))
	}
	slices.Sort(got)
	want := []string{
		"TCP 192.0.2.50:0 192.0.2.100:0 192.0.2.12:0 template=true",
		"TCP 192.0.2.50:40000 192.0.2.100:21 192.0.2.12:21 template=false",
		"TCP 192.0.2.50:40001 192.0.2.100:50000 192.0.2.12:50000 template=false",
		"TCP 192.0.2.50:40002 192.0.2.100:20 192.0.2.12:20 template=false",
		"TCP 192.0.2.50:40003 192.0.2.100:1024 192.0.2.12:1024 template=false",
		"TCP 192.0.2.50:40004 192.0.2.100:8080 192.0.2.11:8080 template=false",
		"TCP 192.0.2.51:0 192.0.2.100:0 192.0.2.11:0 template=true",
		"TCP 192.0.2.51:40000 192.0.2.100:40000 192.0.2.11:40000 template=false",
		"TCP 192.0.2.51:40001 192.0.2.100:21 192.0.2.11:21 template=false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ipvsadm -L -c (-want +got):\n%s", diff)
	}
}

// TestFTPServiceNotPersistent: a port-21 service that is not persistent
// still takes the TCP packets to port 20 and to unprivileged ports without
// a service of their own, but does not schedule them (ip_vs_schedule: the
// port is not the service's; ip_vs_leave passes them on), so that a port-0
// service of the VIP does not get them either.
func TestFTPServiceNotPersistent(t *testing.T) {
	h := newHarness(t, `-A -t 192.0.2.100:21 -s rr
-a -t 192.0.2.100:21 -r 192.0.2.11:21 -g -w 1
-A -t 192.0.2.100:0 -s rr -p 60
-a -t 192.0.2.100:0 -r 192.0.2.12:0 -g -w 1
`, 1024)
	vip := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(udrtest.VIP, port) }
	for _, tt := range []struct {
		port uint16
		want Verdict
		mac  []byte
	}{
		{21, VerdictForward, udrtest.RS1MAC},
		{20, VerdictNoService, nil},
		{50000, VerdictNoService, nil},
		{22, VerdictForward, udrtest.RS2MAC}, // privileged: the port-0 service
	} {
		v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(40000+tt.port), vip(tt.port), udrtest.SYN, nil), epoch)
		if v != tt.want || tt.mac != nil && !bytes.Equal(out[:6], tt.mac) {
			t.Errorf("SYN to port %d: %v, want %v to %x", tt.port, v, tt.want, tt.mac)
		}
	}
}

// TestFTPServiceMadeNotPersistent: the connections a persistent FTP
// service made on other ports go on after -E drops the persistence (the
// kernel finds connections before services); new ones are not scheduled.
func TestFTPServiceMadeNotPersistent(t *testing.T) {
	h := newHarness(t, rulesFTP, 1024)
	data := netip.AddrPortFrom(udrtest.VIP, 50000)
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(40000), data, udrtest.SYN, nil), epoch); v != VerdictForward {
		t.Fatalf("SYN to port 50000: %v, want forward", v)
	}
	h.reload(t, strings.Replace(rulesFTP, "-s rr -p 300", "-s rr", 1))
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(40000), data, udrtest.ACK, nil), epoch); v != VerdictForward {
		t.Errorf("ACK of the data connection: %v, want forward", v)
	}
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(40001), data, udrtest.SYN, nil), epoch); v != VerdictNoService {
		t.Errorf("new SYN to port 50000: %v, want no-service", v)
	}
}

// TestFTPDataNoBackend: with no real server available, a packet that came
// to the FTP service for another port is dropped without the ICMP port
// unreachable the control port gets (ip_vs_leave).
func TestFTPDataNoBackend(t *testing.T) {
	h := newHarness(t, `-A -t 192.0.2.100:21 -s rr -p 300
-a -t 192.0.2.100:21 -r 192.0.2.11:21 -g -w 0
`, 1024)
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(40000), netip.AddrPortFrom(udrtest.VIP, 50000), udrtest.SYN, nil), epoch); v != VerdictNoBackend || out != nil {
		t.Errorf("SYN to port 50000: %v with a reply %v, want no-backend and no reply", v, out != nil)
	}
	if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(40001), netip.AddrPortFrom(udrtest.VIP, 21), udrtest.SYN, nil), epoch); v != VerdictNoBackend || out == nil {
		t.Errorf("SYN to port 21: %v with a reply %v, want no-backend and ICMP port unreachable", v, out != nil)
	}
}
