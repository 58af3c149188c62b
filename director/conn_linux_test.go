//go:build linux

package director_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// rrRules is rr over rs1 and rs2, added in that order: the first pick is
// rs2.
var rrRules = []string{
	"-A -t " + vipPort + " -s rr",
	"-a -t " + vipPort + " -r " + rs1 + ":80 -g -w 1",
	"-a -t " + vipPort + " -r " + rs2 + ":80 -g -w 1",
}

// TestPrivilegedLongLivedConnection: one keep-alive connection stays on its
// real server, through a slow response too, while new connections rotate
// around it.
func TestPrivilegedLongLivedConnection(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "long", drlab.Options{})
	l.start(2, rrRules...)
	c := drlab.HTTPClient(l.Client, requestTimeout)

	long := dialKeepAlive(t, l.Client, vipPort)
	var onLong, short []string
	get := func(path string) {
		t.Helper()
		body, err := long.get(path)
		if err != nil {
			t.Fatal(err)
		}
		onLong = append(onLong, body)
	}
	get("/")
	for range 5 {
		short = append(short, gets(t, c, "http://192.0.2.100/", 2)...)
		get("/")
	}

	// A response that takes 2 s, while new connections go on.
	type answer struct {
		body string
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		body, err := long.get("/slow")
		slow <- answer{body, err}
	}()
	short = append(short, gets(t, c, "http://192.0.2.100/", 4)...)
	a := <-slow
	if a.err != nil {
		t.Fatal(a.err)
	}
	onLong = append(onLong, a.body)
	get("/")

	if diff := cmp.Diff(strings.Fields("rs2 rs2 rs2 rs2 rs2 rs2 rs2 rs2"), onLong); diff != "" {
		t.Errorf("answers on the long-lived connection (-want +got):\n%s", diff)
	}
	want := strings.Fields("rs1 rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1 rs2")
	if diff := cmp.Diff(want, short); diff != "" {
		t.Errorf("answers on new connections (-want +got):\n%s", diff)
	}
}

// TestPrivilegedQuiesce: weight 0 takes a real server out of scheduling,
// while its established connections go on.
func TestPrivilegedQuiesce(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "quiesce", drlab.Options{})
	l.start(2, rrRules...)
	c := drlab.HTTPClient(l.Client, requestTimeout)

	long := dialKeepAlive(t, l.Client, vipPort)
	if body, err := long.get("/"); err != nil || body != "rs2" {
		t.Fatalf("first connection: %q, %v; want rs2", body, err)
	}

	// ipvsadm -e -t VIP:80 -r rs2:80 -w 0
	l.reload(
		"-A -t "+vipPort+" -s rr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 0",
	)
	for i := range 2 {
		if body, err := long.get("/"); err != nil || body != "rs2" {
			t.Errorf("request %d on the connection to rs2 after its weight became 0: %q, %v; want rs2", i+1, body, err)
		}
	}
	want := strings.Fields("rs1 rs1 rs1 rs1 rs1 rs1")
	if diff := cmp.Diff(want, gets(t, c, "http://192.0.2.100/", 6)); diff != "" {
		t.Errorf("new connections with rs2 at weight 0 (-want +got):\n%s", diff)
	}
}

// TestPrivilegedUDP: datagrams of one client flow stay on one real server;
// another flow goes to the next.
func TestPrivilegedUDP(t *testing.T) {
	netlab.Privileged(t)
	const vipUDP = "192.0.2.100:5300"
	l := newLab(t, "udp", drlab.Options{})
	for _, rs := range l.RS {
		serveUDPName(t, rs, vipUDP)
	}
	l.start(2,
		"-A -u "+vipUDP+" -s rr",
		"-a -u "+vipUDP+" -r "+rs1+":5300 -g -w 1",
		"-a -u "+vipUDP+" -r "+rs2+":5300 -g -w 1",
	)

	a := dialUDP(t, l.Client, vipUDP)
	b := dialUDP(t, l.Client, vipUDP)
	var gotA, gotB []string
	for i := range 4 {
		gotA = append(gotA, exchange(t, a, fmt.Sprintf("a%d", i)))
		gotB = append(gotB, exchange(t, b, fmt.Sprintf("b%d", i)))
	}
	if diff := cmp.Diff(strings.Fields("rs2 rs2 rs2 rs2"), gotA); diff != "" {
		t.Errorf("datagrams from %s (-want +got):\n%s", a.LocalAddr(), diff)
	}
	if diff := cmp.Diff(strings.Fields("rs1 rs1 rs1 rs1"), gotB); diff != "" {
		t.Errorf("datagrams from %s (-want +got):\n%s", b.LocalAddr(), diff)
	}
}

// serveUDPName answers every datagram to addr (the VIP, on rs's lo) with
// rs's name, from addr, as a DR real server must.
func serveUDPName(t *testing.T, rs *netlab.Host, addr string) {
	t.Helper()
	var pc net.PacketConn
	err := rs.Run(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("%s: listen on %s: %v", rs.Name(), addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			if _, err := pc.WriteTo([]byte(rs.Name()), from); err != nil {
				return
			}
		}
	}()
}

// dialUDP opens a UDP socket in h connected to addr: one client flow.
func dialUDP(t *testing.T, h *netlab.Host, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := h.Run(func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg on c and returns the answer.
func exchange(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("send %q from %s: %v", msg, c.LocalAddr(), err)
	}
	b := make([]byte, 64)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("answer to %q from %s: %v", msg, c.LocalAddr(), err)
	}
	return string(b[:n])
}
