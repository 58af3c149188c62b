package forwarder

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/udr-lb/udr/internal/udrtest"
)

// fanoutVM runs the fanout program, in its form for bpf.VM, over frames.
func fanoutVM(t *testing.T, v4, v6 int) func(frame []byte) int {
	t.Helper()
	prog, err := fanoutProgram(v4, v6, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	return func(frame []byte) int {
		n, err := vm.Run(frame)
		if err != nil {
			t.Fatalf("fanout program: %v", err)
		}
		return n
	}
}

func eth4() *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: udrtest.ClientMAC, DstMAC: udrtest.DirectorMAC, EthernetType: layers.EthernetTypeIPv4}
}

// laterFragment4 is a later fragment of a datagram from client to the
// VIP: no transport header.
func laterFragment4(client netip.Addr) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: 7, FragOffset: 100,
		SrcIP: client.AsSlice(), DstIP: udrtest.VIP.AsSlice()}
	return udrtest.Serialize(eth4(), ip, gopacket.Payload(make([]byte, 64)))
}

// icmpError4 is a router's "fragmentation needed" to the VIP about the
// real server's reply to client (VIP:80 → client:cport).
func icmpError4(client netip.Addr, router netip.Addr) []byte {
	inner := udrtest.Serialize(&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: udrtest.VIP.AsSlice(), DstIP: client.AsSlice()}, gopacket.Payload([]byte{0, 80, 0x9c, 0x40, 0, 0, 0, 1}))
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, IHL: 6, Options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}},
		SrcIP: router.AsSlice(), DstIP: udrtest.VIP.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(icmpDestUnreach, 4)}
	return udrtest.Serialize(eth4(), ip, icmp, gopacket.Payload(inner))
}

func icmpError6(client netip.Addr, router netip.Addr) []byte {
	inner := udrtest.Serialize(&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
		SrcIP: udrtest.VIP6.AsSlice(), DstIP: client.AsSlice()}, gopacket.Payload([]byte{0, 80, 0x9c, 0x40, 0, 0, 0, 1}))
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: router.AsSlice(), DstIP: udrtest.VIP6.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(icmp6PacketTooBig, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	return udrtest.Serialize(&layers.Ethernet{SrcMAC: udrtest.ClientMAC, DstMAC: udrtest.DirectorMAC, EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, gopacket.Payload([]byte{0, 0, 5, 0}), gopacket.Payload(inner))
}

// The fanout program gives every frame of a client one value: its TCP
// and UDP flows whatever the ports, the later fragments of its datagrams,
// the ICMP errors about its connections; ARP gets 0. Masked to a
// persistence netmask, the clients of one template share it.
func TestFanoutHashesTheClient(t *testing.T) {
	run := fanoutVM(t, 32, 128)
	eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: udrtest.DirectorMAC}
	a, b := udrtest.Client, netip.MustParseAddr("198.51.100.7")
	router := netip.MustParseAddr("203.0.113.1")
	sameA := map[string][]byte{
		"tcp":            udrtest.TCP(eth, netip.AddrPortFrom(a, 1000), vip80, udrtest.SYN, nil),
		"tcp other port": udrtest.TCP(eth, netip.AddrPortFrom(a, 40000), netip.AddrPortFrom(udrtest.VIP, 443), udrtest.ACK, nil),
		"udp":            udrtest.UDP(eth, netip.AddrPortFrom(a, 5353), vip53, nil),
		"later fragment": laterFragment4(a),
		"icmp error":     icmpError4(a, router),
	}
	want := run(sameA["tcp"])
	for name, f := range sameA {
		if got := run(f); got != want {
			t.Errorf("%s of client %v: fanout value %d, want %d as its TCP flow", name, a, got, want)
		}
	}
	if run(udrtest.TCP(eth, netip.AddrPortFrom(b, 1000), vip80, udrtest.SYN, nil)) == want {
		t.Errorf("clients %v and %v: same fanout value", a, b)
	}
	if got := run(icmpError4(b, router)); got == want {
		t.Errorf("an ICMP error about %v's connection has %v's value", b, a)
	}
	arp := udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, a, udrtest.VIP)
	if got := run(arp); got != 0 {
		t.Errorf("ARP: fanout value %d, want 0 (the first worker)", got)
	}

	// IPv6: fragments (the first with ports, the later without) and a
	// "packet too big" about a connection of the client.
	c6 := netip.MustParseAddr("2001:db8::50")
	frags := fragments6(eth, 5000, 9, make([]byte, 200))
	want6 := run(frags[0])
	for i, f := range frags[1:] {
		if got := run(f); got != want6 {
			t.Errorf("IPv6 fragment %d: fanout value %d, want %d as the first", i+1, got, want6)
		}
	}
	if got := run(icmpError6(c6, netip.MustParseAddr("2001:db8::1"))); got != want6 {
		t.Errorf("ICMPv6 packet too big about %v's connection: fanout value %d, want %d", c6, got, want6)
	}
	if got := run(icmpError6(netip.MustParseAddr("2001:db8::51"), netip.MustParseAddr("2001:db8::1"))); got == want6 {
		t.Errorf("ICMPv6 error about another client: same value %d", got)
	}

	// -M 255.255.255.0 and an IPv6 /64: one value per template.
	wide := fanoutVM(t, 24, 64)
	b2 := netip.MustParseAddr("198.51.100.200")
	if x, y := wide(udrtest.TCP(eth, netip.AddrPortFrom(b, 1), vip80, udrtest.SYN, nil)), wide(udrtest.TCP(eth, netip.AddrPortFrom(b2, 2), vip80, udrtest.SYN, nil)); x != y {
		t.Errorf("/24: clients %v and %v of one template: fanout values %d and %d", b, b2, x, y)
	}
	if x, y := wide(udrtest.TCP(eth, netip.AddrPortFrom(a, 1), vip80, udrtest.SYN, nil)), wide(udrtest.TCP(eth, netip.AddrPortFrom(b, 2), vip80, udrtest.SYN, nil)); x == y {
		t.Errorf("/24: clients %v and %v of two /24s share fanout value %d", a, b, x)
	}
	if x, y := wide(icmpError6(netip.MustParseAddr("2001:db8::51"), netip.MustParseAddr("2001:db8::1"))), wide(frags[0]); x != y {
		t.Errorf("/64: clients 2001:db8::51 and ::50: fanout values %d and %d", x, y)
	}
	if _, err := BuildFanout(32, 128); err != nil {
		t.Errorf("BuildFanout: %v", err)
	}
	if _, err := BuildFanout(33, 128); err == nil {
		t.Error("BuildFanout(33, 128): no error")
	}
}

// FanoutMasks is the widest persistence netmask per family.
func TestFanoutMasks(t *testing.T) {
	h := newHarness(t, workersRules, 64)
	if v4, v6 := FanoutMasks(h.cur.Load()); v4 != 32 || v6 != 128 {
		t.Errorf("FanoutMasks = /%d, /%d, want /32, /128", v4, v6)
	}
	h.reload(t, workersRules+"-A -t 192.0.2.100:25 -s rr -p 60 -M 255.255.0.0\n-a -t 192.0.2.100:25 -r 192.0.2.11:25 -g -w 1\n"+
		"-A -t [2001:db8::100]:25 -s rr -p 60 -M 48\n-a -t [2001:db8::100]:25 -r [2001:db8::12]:25 -g -w 1\n")
	if v4, v6 := FanoutMasks(h.cur.Load()); v4 != 16 || v6 != 48 {
		t.Errorf("FanoutMasks = /%d, /%d, want /16, /48", v4, v6)
	}
}
