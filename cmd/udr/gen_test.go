package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/internal/checksum"
)

// This file builds the input captures of the golden replay cases
// (golden_test.go): deterministic frames from gopacket layers, with fixed
// timestamps, IP IDs, ports and sequence numbers, so that
// `go test -update` writes the same bytes every time.
//
// The lab (RFC 5737 and RFC 3849 addresses only): one LAN 192.0.2.0/24
// with the director, three real servers and local clients; routed clients
// in 198.51.100.0/24 and 203.0.113.0/24 arrive through a router.

var (
	routerMAC   = [6]byte{2, 0, 0, 0, 0, 0x01}
	directorMAC = [6]byte{2, 0, 0, 0, 0, 0x02}
	rs1MAC      = [6]byte{2, 0, 0, 0, 0, 0x11}
	rs2MAC      = [6]byte{2, 0, 0, 0, 0, 0x12}
	rs3MAC      = [6]byte{2, 0, 0, 0, 0, 0x13}
	clientMAC   = [6]byte{2, 0, 0, 0, 0, 0x50}
	strangerMAC = [6]byte{2, 0, 0, 0, 0, 0x66} // a host that wrongly claims the VIP
	otherMAC    = [6]byte{2, 0, 0, 0, 0, 0x99} // a host frames are flooded to
	broadcast   = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	directorIP = netip.MustParseAddr("192.0.2.2")
	vip        = netip.MustParseAddr("192.0.2.100")
	vip6       = netip.MustParseAddr("2001:db8::100")
	rs1        = netip.MustParseAddr("192.0.2.11")
	rs2        = netip.MustParseAddr("192.0.2.12")
	rs3        = netip.MustParseAddr("192.0.2.13")
	rs1v6      = netip.MustParseAddr("2001:db8::11")
	rs2v6      = netip.MustParseAddr("2001:db8::12")
	client     = netip.MustParseAddr("192.0.2.50")
	client6    = netip.MustParseAddr("2001:db8::50")
	routerIP   = netip.MustParseAddr("198.51.100.1")

	// rsMACs are the MACs a forwarded frame may be sent to.
	rsMACs = map[[6]byte]bool{rs1MAC: true, rs2MAC: true, rs3MAC: true}
)

// captureStart is the timestamp of every capture's first frame.
var captureStart = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// frameGap separates consecutive frames: every frame of a capture has its
// own timestamp, which golden_test.go uses to pair output with input.
const frameGap = time.Millisecond

type genFrame struct {
	ts   time.Time
	data []byte
}

// genCapture collects the frames of one input pcap.
type genCapture struct {
	now    time.Time
	ipID   uint16
	vipMAC [6]byte // the MAC udr answers ARP for the case's VIPs with
	frames []genFrame
}

func newCapture(vipMAC [6]byte) *genCapture {
	return &genCapture{now: captureStart, ipID: 0x1000, vipMAC: vipMAC}
}

// pause leaves a gap in the capture, as between two connections.
func (c *genCapture) pause(d time.Duration) { c.now = c.now.Add(d) }

// raw appends b as a frame, unchanged.
func (c *genCapture) raw(b []byte) {
	c.frames = append(c.frames, genFrame{ts: c.now, data: bytes.Clone(b)})
	c.now = c.now.Add(frameGap)
}

// ether is a frame's Ethernet header; a non-zero vlan adds an 802.1Q tag.
type ether struct {
	src, dst [6]byte
	vlan     uint16
}

// build serializes e and ls with correct lengths and checksums.
func build(e ether, typ layers.EthernetType, ls ...gopacket.SerializableLayer) []byte {
	eth := &layers.Ethernet{SrcMAC: e.src[:], DstMAC: e.dst[:], EthernetType: typ}
	all := []gopacket.SerializableLayer{eth}
	if e.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		all = append(all, &layers.Dot1Q{VLANIdentifier: e.vlan, Type: typ})
	}
	all = append(all, ls...)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, all...); err != nil {
		panic(fmt.Sprintf("serialize frame: %v", err))
	}
	return buf.Bytes()
}

func (c *genCapture) emit(e ether, typ layers.EthernetType, ls ...gopacket.SerializableLayer) {
	c.raw(build(e, typ, ls...))
}

// ip returns an IPv4 (DF set, TTL 64, the next IP ID) or IPv6 header.
func (c *genCapture) ip(src, dst netip.Addr, proto layers.IPProtocol) (layers.EthernetType, gopacket.NetworkLayer) {
	if src.Is4() {
		c.ipID++
		return layers.EthernetTypeIPv4, &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: c.ipID,
			Flags: layers.IPv4DontFragment, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	return layers.EthernetTypeIPv6, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// seg is one TCP segment: flags in tcpdump's letters (S, A, P, F, R).
type seg struct {
	flags    string
	seq, ack uint32
	data     []byte
}

func (c *genCapture) tcpFrame(e ether, src, dst netip.AddrPort, s seg) []byte {
	typ, ip := c.ip(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
	t := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: s.seq, Ack: s.ack, Window: 502,
		SYN: strings.Contains(s.flags, "S"), ACK: strings.Contains(s.flags, "A"),
		PSH: strings.Contains(s.flags, "P"), FIN: strings.Contains(s.flags, "F"),
		RST: strings.Contains(s.flags, "R")}
	if t.SYN {
		// What Linux sends: MSS 1460, window scale 7.
		t.Window = 64240
		t.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}
	}
	if err := t.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	return build(e, typ, ip.(gopacket.SerializableLayer), t, gopacket.Payload(s.data))
}

func (c *genCapture) tcp(e ether, src, dst netip.AddrPort, s seg) {
	c.raw(c.tcpFrame(e, src, dst, s))
}

// serverISN is every real server's initial sequence number; DR directors
// never see it, only the client's acknowledgements of it.
const serverISN = 0x5eed0000

// responseLen is the length of the real server's HTTP response the
// client acknowledges.
const responseLen = 612

func httpRequest(dst netip.AddrPort) []byte {
	host := dst.Addr().String()
	if dst.Addr().Is6() {
		host = "[" + host + "]"
	}
	if dst.Port() != 80 {
		host = fmt.Sprintf("%s:%d", host, dst.Port())
	}
	return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
}

// httpConn is the client's half of one HTTP connection, as a DR director
// sees it: SYN, ACK, the request, FIN after the response, and the last ACK.
func (c *genCapture) httpConn(e ether, src, dst netip.AddrPort, isn uint32) {
	req := httpRequest(dst)
	n := uint32(len(req))
	c.tcp(e, src, dst, seg{flags: "S", seq: isn})
	c.tcp(e, src, dst, seg{flags: "A", seq: isn + 1, ack: serverISN + 1})
	c.tcp(e, src, dst, seg{flags: "PA", seq: isn + 1, ack: serverISN + 1, data: req})
	c.tcp(e, src, dst, seg{flags: "FA", seq: isn + 1 + n, ack: serverISN + 1 + responseLen})
	c.tcp(e, src, dst, seg{flags: "A", seq: isn + 2 + n, ack: serverISN + 2 + responseLen})
}

// openConn is a connection the client keeps open: SYN, ACK, request.
func (c *genCapture) openConn(e ether, src, dst netip.AddrPort, isn uint32) {
	c.tcp(e, src, dst, seg{flags: "S", seq: isn})
	c.tcp(e, src, dst, seg{flags: "A", seq: isn + 1, ack: serverISN + 1})
	c.tcp(e, src, dst, seg{flags: "PA", seq: isn + 1, ack: serverISN + 1, data: httpRequest(dst)})
}

// isn returns a fixed initial sequence number per connection number.
func isn(i int) uint32 { return 0x10000000 + uint32(i)*0x01010101 }

func (c *genCapture) udp(e ether, src, dst netip.AddrPort, payload []byte) {
	typ, ip := c.ip(src.Addr(), dst.Addr(), layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := u.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	c.emit(e, typ, ip.(gopacket.SerializableLayer), u, gopacket.Payload(payload))
}

// arp appends an ARP packet (RFC 826).
func (c *genCapture) arp(e ether, op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) {
	c.emit(e, layers.EthernetTypeARP, &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: sha[:], SourceProtAddress: spa.AsSlice(),
		DstHwAddress: tha[:], DstProtAddress: tpa.AsSlice(),
	})
}

// rsARP appends the real servers' ARP replies to the director, from which
// the replay learns their MACs.
func (c *genCapture) rsARP(servers ...netip.Addr) {
	macs := map[netip.Addr][6]byte{rs1: rs1MAC, rs2: rs2MAC, rs3: rs3MAC}
	for _, rs := range servers {
		c.arp(ether{src: macs[rs], dst: directorMAC}, layers.ARPReply, macs[rs], rs, directorMAC, directorIP)
	}
}

// whoHas appends a broadcast ARP request from mac/ip for target.
func (c *genCapture) whoHas(mac [6]byte, ip, target netip.Addr, vlan uint16) {
	c.arp(ether{src: mac, dst: broadcast, vlan: vlan}, layers.ARPRequest, mac, ip, [6]byte{}, target)
}

// lan is the usual start of a capture: the real servers' ARP replies and
// the client's ARP request for the VIP.
func (c *genCapture) lan(servers ...netip.Addr) {
	c.rsARP(servers...)
	c.whoHas(clientMAC, client, vip, 0)
}

// toVIP is the Ethernet header of a frame from mac to the VIP MAC.
func (c *genCapture) toVIP(mac [6]byte) ether { return ether{src: mac, dst: c.vipMAC} }

// solicitedNode returns a's solicited-node multicast address and its MAC
// (RFC 4291 2.7.1, RFC 2464 7).
func solicitedNode(a netip.Addr) (netip.Addr, [6]byte) {
	b := a.As16()
	g := [16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return netip.AddrFrom16(g), [6]byte{0x33, 0x33, 0xff, b[13], b[14], b[15]}
}

// neighborSolicit appends an NS for target from mac/src to target's
// solicited-node group, with a source link-layer address option.
func (c *genCapture) neighborSolicit(mac [6]byte, src, target netip.Addr, vlan uint16) {
	group, gmac := solicitedNode(target)
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: src.AsSlice(), DstIP: group.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(), Options: layers.ICMPv6Options{
		{Type: layers.ICMPv6OptSourceAddress, Data: mac[:]},
	}}
	c.emit(ether{src: mac, dst: gmac, vlan: vlan}, layers.EthernetTypeIPv6, ip, icmp, ns)
}

// icmpError appends an ICMPv4 error from a router to dst about the packet
// embedded (its IP header and at least 8 bytes of its payload).
func (c *genCapture) icmpError(e ether, from, dst netip.Addr, tc layers.ICMPv4TypeCode, seq uint16, embedded []byte) {
	typ, ip := c.ip(from, dst, layers.IPProtocolICMPv4)
	c.emit(e, typ, ip.(gopacket.SerializableLayer), &layers.ICMPv4{TypeCode: tc, Seq: seq}, gopacket.Payload(embedded))
}

// replyHeader returns the start of a real server's reply as a router on
// the way to the client quotes it: a 1500-byte datagram from the VIP whose
// IP header and TCP header are embedded.
func replyHeader(vipPort, clientPort netip.AddrPort) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Id: 0x4242, Flags: layers.IPv4DontFragment, Length: 1500,
		Protocol: layers.IPProtocolTCP, SrcIP: vipPort.Addr().AsSlice(), DstIP: clientPort.Addr().AsSlice()}
	t := &layers.TCP{SrcPort: layers.TCPPort(vipPort.Port()), DstPort: layers.TCPPort(clientPort.Port()),
		Seq: serverISN + 1, Ack: isn(0) + 1, DataOffset: 5, ACK: true, PSH: true, Window: 509}
	if err := t.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, t); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// udpFragments appends one UDP datagram of size payload bytes as IPv4
// fragments of at most mtu bytes; the first carries the UDP header.
func (c *genCapture) udpFragments(e ether, src, dst netip.AddrPort, size, mtu int) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	// The datagram, with its checksum over the whole payload.
	c.ipID++
	id := c.ipID
	whole := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := u.SetNetworkLayerForChecksum(whole); err != nil {
		panic(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, u, gopacket.Payload(payload)); err != nil {
		panic(err)
	}
	datagram := buf.Bytes()
	step := (mtu - 20) &^ 7 // fragment offsets count 8-byte units (RFC 791)
	for off := 0; off < len(datagram); off += step {
		end := min(off+step, len(datagram))
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: id, FragOffset: uint16(off / 8),
			Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		if end < len(datagram) {
			ip.Flags = layers.IPv4MoreFragments
		}
		c.emit(e, layers.EthernetTypeIPv4, ip, gopacket.Payload(datagram[off:end]))
	}
}

// patchIPv4 changes the IPv4 header of frame b (untagged) with fn and
// then sets a correct header checksum, unless keepSum.
func patchIPv4(b []byte, keepSum bool, fn func(ip []byte)) []byte {
	b = bytes.Clone(b)
	ip := b[14:]
	fn(ip)
	if !keepSum {
		ihl := max(int(ip[0]&0x0f)*4, 20)
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip[:ihl]))
	}
	return b
}

// pcapBytes writes frames as a classic pcap (microsecond timestamps).
func pcapBytes(frames []genFrame) []byte {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		panic(err)
	}
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: f.ts, CaptureLength: len(f.data), Length: len(f.data)}
		if err := w.WritePacket(ci, f.data); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// generated is what the generator writes for one case.
type generated struct {
	in    []byte // <case>.in.pcap
	rules []byte // <case>.rules
	args  []byte // <case>.args
}

// generate builds the input files of case gc.
func generate(gc goldenCase) (generated, error) {
	_, _, err := admin.ParseRules(strings.NewReader(gc.rules), gc.name+".rules")
	if err != nil {
		return generated{}, err
	}
	c := newCapture(arpresponder.VirtualMAC(directorMAC))
	gc.build(c)
	return generated{
		in:    pcapBytes(c.frames),
		rules: []byte(gc.rules),
		args:  []byte(gc.args + "\n"),
	}, nil
}

func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }

// goldenCase is one replay scenario: its rules (ipvsadm -S -n form unless
// handRules), the replay flags besides --rules/--in/--out, and its frames.
type goldenCase struct {
	name      string
	rules     string
	args      string
	handRules bool // the rules file is not what ipvsadm -S -n would print
	pcapng    bool // the output is written as pcapng with comments
	build     func(c *genCapture)
}

const (
	rulesHTTP = "-A -t 192.0.2.100:80 -s rr\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"
	macArgs = "--mac 02:00:00:00:00:02"
)

var (
	vip80   = netip.AddrPortFrom(vip, 80)
	vip6_80 = netip.AddrPortFrom(vip6, 80)
)

func clientPort(a netip.Addr, i int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(40000+i)) }

// sequential is n HTTP connections, one after the other, from one client.
func sequential(n int, to netip.AddrPort) func(c *genCapture) {
	return func(c *genCapture) {
		c.lan(rs1, rs2)
		for i := range n {
			c.httpConn(c.toVIP(clientMAC), clientPort(client, i), to, isn(i))
			c.pause(200 * time.Millisecond)
		}
	}
}

var goldenCases = []goldenCase{
	{
		// IPVS.md 1.1: rs1 then rs2 added, the list is [rs2, rs1], rr starts
		// at the head: rs2 rs1 rs2 rs1 ...
		name:  "walkthrough_rr",
		rules: rulesHTTP,
		args:  macArgs + " --conns",
		build: sequential(8, vip80),
	},
	{
		// IPVS.md 1.2, "A w=2, B w=1": the list is [rs2, rs1] and cw starts
		// at 1, so rs2 rs1 rs1, rs2 rs1 rs1, ...: 9 connections, 6 to rs1.
		name: "walkthrough_wrr_2_1",
		rules: "-A -t 192.0.2.100:80 -s wrr\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 2\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n",
		args:  macArgs + " --conns",
		build: sequential(9, vip80),
	},
	{
		// IPVS.md 4.3: -g forces the real server port to the service port;
		// replay warns and the frames go unchanged to port 8099.
		name: "walkthrough_port_8099",
		rules: "-A -t 192.0.2.100:8099 -s rr\n" +
			"-a -t 192.0.2.100:8099 -r 192.0.2.11:80 -g -w 1\n" +
			"-a -t 192.0.2.100:8099 -r 192.0.2.12:80 -g -w 1\n",
		handRules: true,
		args:      macArgs + " --conns",
		build:     sequential(4, netip.AddrPortFrom(vip, 8099)),
	},
	{
		name:  "arp_vip",
		rules: rulesHTTP,
		args:  macArgs,
		build: func(c *genCapture) {
			c.whoHas(clientMAC, client, vip, 0)
			c.whoHas(clientMAC, client, vip, 10) // 802.1Q VLAN 10: the reply keeps the tag
			c.whoHas(routerMAC, netip.MustParseAddr("192.0.2.1"), vip, 0)
		},
	},
	{
		// A director in standby (the backup of a keepalived pair): it
		// learns the real servers' MACs, answers no ARP/NDP for the VIPs
		// and takes the other director's announcements for no conflict,
		// and forwards nothing to a VIP; the rest is as when active.
		name: "standby",
		rules: rulesHTTP +
			"-A -t [2001:db8::100]:80 -s rr\n" +
			"-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1\n",
		args: macArgs + " --standby --conns",
		build: func(c *genCapture) {
			c.lan(rs1, rs2)
			c.neighborSolicit(clientMAC, client6, vip6, 0)
			c.whoHas(clientMAC, client, rs2, 0) // not a VIP: as when active
			// The active director's gratuitous ARP for the VIP.
			c.arp(ether{src: strangerMAC, dst: broadcast}, layers.ARPRequest, strangerMAC, vip, [6]byte{}, vip)
			c.openConn(c.toVIP(clientMAC), clientPort(client, 0), vip80, isn(0))
			c.udp(c.toVIP(clientMAC), clientPort(client, 1), netip.AddrPortFrom(vip, 53), []byte("q"))
			c.tcp(c.toVIP(clientMAC), clientPort(client, 2), netip.AddrPortFrom(netip.MustParseAddr("192.0.2.200"), 80), seg{flags: "S", seq: isn(2)})
		},
	},
	{
		name:  "arp_other",
		rules: rulesHTTP,
		args:  macArgs,
		build: func(c *genCapture) {
			c.rsARP(rs1)                                                       // a reply to the director: learnt, not answered
			c.whoHas(clientMAC, client, netip.MustParseAddr("192.0.2.200"), 0) // not a VIP
			c.whoHas(clientMAC, client, rs2, 0)                                // a real server answers for itself
			// Gratuitous ARP (RFC 5227 3) from another host claiming the VIP.
			c.arp(ether{src: strangerMAC, dst: broadcast}, layers.ARPRequest, strangerMAC, vip, [6]byte{}, vip)
			c.arp(ether{src: strangerMAC, dst: broadcast}, layers.ARPReply, strangerMAC, vip, broadcast, vip)
		},
	},
	{
		name:  "ndp_vip6",
		rules: "-A -t [2001:db8::100]:80 -s rr\n-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1\n",
		args:  macArgs,
		build: func(c *genCapture) {
			c.neighborSolicit(clientMAC, client6, vip6, 0)
			c.neighborSolicit(clientMAC, client6, vip6, 10)
			c.neighborSolicit(clientMAC, client6, netip.MustParseAddr("2001:db8::99"), 0)
		},
	},
	{
		name: "tcp6_service",
		rules: "-A -t [2001:db8::100]:80 -s rr\n" +
			"-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1\n" +
			"-a -t [2001:db8::100]:80 -r [2001:db8::12]:80 -g -w 1\n",
		args: macArgs + " --neigh 2001:db8::11=02:00:00:00:00:11 --neigh 2001:db8::12=02:00:00:00:00:12 --conns",
		build: func(c *genCapture) {
			c.neighborSolicit(clientMAC, client6, vip6, 0)
			for i := range 4 {
				c.httpConn(c.toVIP(clientMAC), clientPort(client6, i), vip6_80, isn(i))
				c.pause(200 * time.Millisecond)
			}
		},
	},
	{
		// IPVS.md 3: the scheduler runs only for a client without a
		// template. :80 rr per client address; :443 wlc per /24 (-M).
		name: "persistence",
		rules: "-A -t 192.0.2.100:80 -s rr -p 300\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n" +
			"-A -t 192.0.2.100:443 -s wlc -p 300 -M 255.255.255.0\n" +
			"-a -t 192.0.2.100:443 -r 192.0.2.11:443 -g -w 1\n" +
			"-a -t 192.0.2.100:443 -r 192.0.2.12:443 -g -w 1\n",
		args:   macArgs + " --conns",
		pcapng: true,
		build: func(c *genCapture) {
			c.lan(rs1, rs2)
			client2 := netip.MustParseAddr("192.0.2.51")
			client2MAC := [6]byte{2, 0, 0, 0, 0, 0x51}
			n := 0
			for _, cl := range []struct {
				mac  [6]byte
				addr netip.Addr
			}{{clientMAC, client}, {client2MAC, client2}} {
				for range 5 {
					c.httpConn(c.toVIP(cl.mac), clientPort(cl.addr, n), vip80, isn(n))
					n++
				}
			}
			https := netip.AddrPortFrom(vip, 443)
			for _, a := range []string{"198.51.100.7", "198.51.100.8", "203.0.113.9", "198.51.100.7"} {
				c.openConn(c.toVIP(routerMAC), clientPort(netip.MustParseAddr(a), n), https, isn(n))
				n++
			}
		},
	},
	{
		// IPVS.md 1.0, 2.8: weight 0 takes no new connection. What happens
		// to connections open when the weight drops is in replay_test.go
		// (a rules file cannot change during a replay).
		name: "quiesced",
		rules: "-A -t 192.0.2.100:80 -s rr\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 0\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n",
		args:  macArgs + " --conns",
		build: sequential(4, vip80),
	},
	{
		// IPVS.md 2.1 step 2: an ICMP error about a connection's reply goes
		// to that connection's real server.
		name:  "icmp_frag_needed",
		rules: rulesHTTP,
		args:  macArgs + " --conns",
		build: func(c *genCapture) {
			c.rsARP(rs1, rs2)
			far := netip.MustParseAddr("198.51.100.20")
			for i := range 2 {
				c.openConn(c.toVIP(routerMAC), clientPort(far, i), vip80, isn(i))
			}
			fragNeeded := layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded)
			for i := range 2 {
				c.icmpError(c.toVIP(routerMAC), routerIP, vip, fragNeeded, 1400, replyHeader(vip80, clientPort(far, i)))
			}
			c.icmpError(c.toVIP(routerMAC), routerIP, vip, fragNeeded, 1400, replyHeader(vip80, clientPort(far, 7)))
			// An echo request to the VIP is not udr's business.
			typ, ip := c.ip(far, vip, layers.IPProtocolICMPv4)
			c.emit(c.toVIP(routerMAC), typ, ip.(gopacket.SerializableLayer),
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1},
				gopacket.Payload(bytes.Repeat([]byte{0xa5}, 56)))
		},
	},
	{
		// Fragments are forwarded one by one; the later ones follow the first.
		name: "udp_fragments",
		rules: "-A -u 192.0.2.100:5000 -s rr\n" +
			"-a -u 192.0.2.100:5000 -r 192.0.2.11:5000 -g -w 1\n" +
			"-a -u 192.0.2.100:5000 -r 192.0.2.12:5000 -g -w 1\n",
		args: macArgs + " --conns",
		build: func(c *genCapture) {
			c.lan(rs1, rs2)
			svc := netip.AddrPortFrom(vip, 5000)
			c.udp(c.toVIP(clientMAC), clientPort(client, 0), svc, []byte("small datagram"))
			c.udpFragments(c.toVIP(clientMAC), clientPort(client, 1), svc, 3000, 1500)
			c.udp(c.toVIP(clientMAC), clientPort(client, 1), svc, []byte("same flow, whole"))
			// The second fragment of a datagram whose first never came.
			ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x7777, FragOffset: 185, Flags: layers.IPv4MoreFragments,
				Protocol: layers.IPProtocolUDP, SrcIP: client.AsSlice(), DstIP: vip.AsSlice()}
			c.emit(c.toVIP(clientMAC), layers.EthernetTypeIPv4, ip, gopacket.Payload(bytes.Repeat([]byte{'z'}, 64)))
		},
	},
	{
		// One frame per drop verdict that a static replay can produce;
		// dest-removed and table-full need a configuration change or a
		// tiny table, and no-neighbor a MAC lost mid-connection:
		// replay_test.go and the forwarder's tests cover them through the
		// API.
		name: "drop_reasons",
		rules: rulesHTTP +
			"-A -t 192.0.2.100:81 -s rr\n" +
			"-a -t 192.0.2.100:81 -r 192.0.2.11:81 -g -w 0\n" +
			"-A -t 192.0.2.100:82 -s rr\n" +
			"-a -t 192.0.2.100:82 -r 192.0.2.13:82 -g -w 1\n",
		args:  macArgs + " --conns",
		build: dropReasons,
	},
	{
		name: "garbage",
		rules: "-A -t 192.0.2.100:80 -s rr\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n" +
			"-A -u 192.0.2.100:53 -s rr\n" +
			"-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1\n" +
			"-a -u 192.0.2.100:53 -r 192.0.2.12:53 -g -w 1\n",
		args:  macArgs,
		build: garbage,
	},
	{
		// IPVS.md 2.6: a packet from the client's port 20 (FTP data) is
		// never scheduled (ip_vs_schedule), TCP or UDP; an ACK without an
		// entry is no-conn before that; other ports are scheduled.
		name: "ftp_data_client_port",
		rules: rulesHTTP +
			"-A -u 192.0.2.100:53 -s rr\n" +
			"-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1\n",
		args: macArgs + " --conns",
		build: func(c *genCapture) {
			c.lan(rs1, rs2)
			ftpData := netip.AddrPortFrom(client, 20)
			c.tcp(c.toVIP(clientMAC), ftpData, vip80, seg{flags: "S", seq: isn(0)})
			c.tcp(c.toVIP(clientMAC), ftpData, vip80, seg{flags: "A", seq: isn(0) + 1, ack: serverISN + 1})
			c.udp(c.toVIP(clientMAC), ftpData, netip.AddrPortFrom(vip, 53), []byte("from port 20"))
			c.openConn(c.toVIP(clientMAC), clientPort(client, 1), vip80, isn(1))
			c.udp(c.toVIP(clientMAC), clientPort(client, 2), netip.AddrPortFrom(vip, 53), []byte("from port 40002"))
		},
	},
	{
		// IPVS.md 2.6, 3: a persistent FTP service (port 21) takes the
		// TCP packets to port 20 and to unprivileged ports without a
		// service of their own (ip_vs_service_find); one template
		// <caddr, 0, vaddr, 0> per client sends its control and data
		// connections to one real server, whichever comes first.
		name: "ftp_persistent",
		rules: "-A -t 192.0.2.100:21 -s rr -p 300\n" +
			"-a -t 192.0.2.100:21 -r 192.0.2.11:21 -g -w 1\n" +
			"-a -t 192.0.2.100:21 -r 192.0.2.12:21 -g -w 1\n",
		args: macArgs + " --conns",
		build: func(c *genCapture) {
			c.lan(rs1, rs2)
			ctl := netip.AddrPortFrom(vip, 21)
			// Client 1: control, then a passive data connection to the
			// port the server announced, then an active one (the
			// client's SYN+ACK to port 20).
			c.tcp(c.toVIP(clientMAC), clientPort(client, 0), ctl, seg{flags: "S", seq: isn(0)})
			c.tcp(c.toVIP(clientMAC), clientPort(client, 0), ctl, seg{flags: "A", seq: isn(0) + 1, ack: serverISN + 1})
			c.tcp(c.toVIP(clientMAC), clientPort(client, 0), ctl, seg{flags: "PA", seq: isn(0) + 1, ack: serverISN + 1, data: []byte("PASV\r\n")})
			c.openConn(c.toVIP(clientMAC), clientPort(client, 1), netip.AddrPortFrom(vip, 50000), isn(1))
			c.tcp(c.toVIP(clientMAC), clientPort(client, 2), netip.AddrPortFrom(vip, 20), seg{flags: "SA", seq: isn(2), ack: serverISN + 1})
			c.tcp(c.toVIP(clientMAC), clientPort(client, 2), netip.AddrPortFrom(vip, 20), seg{flags: "A", seq: isn(2) + 1, ack: serverISN + 1})
			// Client 2: its data connection comes first; the control
			// connection follows it.
			client2 := netip.MustParseAddr("192.0.2.51")
			client2MAC := [6]byte{2, 0, 0, 0, 0, 0x51}
			c.openConn(c.toVIP(client2MAC), clientPort(client2, 3), netip.AddrPortFrom(vip, 1024), isn(3))
			c.openConn(c.toVIP(client2MAC), clientPort(client2, 4), ctl, isn(4))
			// Privileged ports other than 20 have no service.
			c.tcp(c.toVIP(clientMAC), clientPort(client, 5), netip.AddrPortFrom(vip, 1023), seg{flags: "S", seq: isn(5)})
		},
	},
	{
		// DESIGN.md: sh and mh schedule a mid-stream TCP packet without an
		// entry (udr's deliberate difference from the kernel).
		name: "lb_sh",
		rules: "-A -t 192.0.2.100:80 -s sh\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n",
		args:  macArgs + " --conns",
		build: midStream,
	},
	{
		name: "lb_mh",
		rules: "-A -t 192.0.2.100:80 -s mh\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n",
		args:  macArgs + " --conns",
		build: midStream,
	},
}

// midStream: clients whose connections were established before the
// director (re)started: their next packets carry no SYN. Each client then
// opens a new connection, which must reach the same real server.
func midStream(c *genCapture) {
	c.rsARP(rs1, rs2)
	for i, a := range []string{"192.0.2.50", "192.0.2.51", "192.0.2.52", "192.0.2.53", "198.51.100.7", "203.0.113.9"} {
		addr := netip.MustParseAddr(a)
		mac := [6]byte{2, 0, 0, 0, 0, byte(0x50 + i)}
		if !netip.MustParsePrefix("192.0.2.0/24").Contains(addr) {
			mac = routerMAC
		}
		old := netip.AddrPortFrom(addr, uint16(50000+i))
		req := httpRequest(vip80)
		c.tcp(c.toVIP(mac), old, vip80, seg{flags: "PA", seq: isn(i) + 1000, ack: serverISN + 5000, data: req})
		c.tcp(c.toVIP(mac), old, vip80, seg{flags: "A", seq: isn(i) + 1000 + uint32(len(req)), ack: serverISN + 5000 + responseLen})
		c.openConn(c.toVIP(mac), clientPort(addr, i), vip80, isn(i))
	}
}

// dropReasons is one frame (at least) for each drop verdict of
// forwarder/verdict.go that a replay of a static rules file reaches.
func dropReasons(c *genCapture) {
	// arp-ignored (and learnt); rs3 never answers
	c.rsARP(rs1, rs2)
	toVIP := c.toVIP(clientMAC)
	from := clientPort(client, 0)
	syn := c.tcpFrame(toVIP, from, vip80, seg{flags: "S", seq: isn(0)})

	// truncated: not even an Ethernet header
	c.raw(syn[:10])
	// truncated: total length 1024 > frame
	c.raw(patchIPv4(syn, false, func(ip []byte) { ip[2], ip[3] = 4, 0 }))
	// malformed: IHL 4 (16 bytes)
	c.raw(patchIPv4(syn, false, func(ip []byte) { ip[0] = 0x44 }))
	// malformed: version 6 in an IPv4 ethertype
	c.raw(patchIPv4(syn, false, func(ip []byte) { ip[0] = 0x65 }))
	// malformed: header checksum wrong
	c.raw(patchIPv4(syn, true, func(ip []byte) { ip[10] ^= 0xff }))
	// malformed: total length 16 < IHL 20
	c.raw(patchIPv4(syn, false, func(ip []byte) { ip[2], ip[3] = 0, 16 }))
	// not-for-us
	c.tcp(ether{src: clientMAC, dst: otherMAC}, from, vip80, seg{flags: "S", seq: isn(0)})
	// ethertype: IEEE local experimental
	c.raw(build(toVIP, 0x88b5, gopacket.Payload(bytes.Repeat([]byte{0x5a}, 46))))
	qinq := build(ether{src: clientMAC, dst: c.vipMAC, vlan: 10}, layers.EthernetTypeDot1Q,
		&layers.Dot1Q{VLANIdentifier: 20, Type: layers.EthernetTypeIPv4}, gopacket.Payload(syn[14:]))
	// ethertype: two VLAN tags
	c.raw(qinq)
	// arp-ignored: not a VIP
	c.whoHas(clientMAC, client, netip.MustParseAddr("192.0.2.200"), 0)
	// arp-conflict
	c.arp(ether{src: strangerMAC, dst: broadcast}, layers.ARPReply, strangerMAC, vip, broadcast, vip)
	// ndp-ignored: no IPv6 VIP
	c.neighborSolicit(clientMAC, client6, netip.MustParseAddr("2001:db8::99"), 0)
	// not-vip
	c.tcp(toVIP, from, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.99"), 80), seg{flags: "S", seq: isn(0)})
	// no-service
	c.tcp(toVIP, from, netip.AddrPortFrom(vip, 443), seg{flags: "S", seq: isn(0)})
	typ, ip := c.ip(client, vip, layers.IPProtocolICMPv4)
	// proto: echo request
	c.emit(toVIP, typ, ip.(gopacket.SerializableLayer),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1},
		gopacket.Payload(bytes.Repeat([]byte{0xa5}, 56)))
	typ, ip = c.ip(client, vip, layers.IPProtocolGRE)
	// proto: GRE
	c.emit(toVIP, typ, ip.(gopacket.SerializableLayer), gopacket.Payload(make([]byte, 24)))
	// no-conn: ACK
	c.tcp(toVIP, from, vip80, seg{flags: "A", seq: isn(0) + 1, ack: serverISN + 1})
	// no-conn: RST
	c.tcp(toVIP, from, vip80, seg{flags: "R", seq: isn(0) + 1})
	// no-backend: weight 0 only
	c.tcp(toVIP, from, netip.AddrPortFrom(vip, 81), seg{flags: "S", seq: isn(1)})
	// no-backend too: rs3's MAC is unknown, so no scheduler picks it
	c.tcp(toVIP, from, netip.AddrPortFrom(vip, 82), seg{flags: "S", seq: isn(2)})
	frag := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x7777, FragOffset: 185,
		Protocol: layers.IPProtocolUDP, SrcIP: client.AsSlice(), DstIP: vip.AsSlice()}
	// fragment
	c.emit(toVIP, layers.EthernetTypeIPv4, frag, gopacket.Payload(bytes.Repeat([]byte{'z'}, 64)))
	// icmp-no-conn
	c.icmpError(c.toVIP(routerMAC), routerIP, vip,
		layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded),
		1400, replyHeader(vip80, from))
	// multicast: broadcast MAC
	c.tcp(ether{src: clientMAC, dst: broadcast}, from, vip80, seg{flags: "S", seq: isn(0)})
	// multicast: mDNS
	c.udp(ether{src: clientMAC, dst: [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}},
		netip.AddrPortFrom(client, 5353), netip.AddrPortFrom(netip.MustParseAddr("224.0.0.251"), 5353), []byte{0, 0, 0, 0})
	// reply
	c.whoHas(clientMAC, client, vip, 0)
	// forward
	c.httpConn(toVIP, clientPort(client, 9), vip80, isn(9))
}

// garbage is 200 frames of 0..200 random bytes, two thirds of them to the
// VIP MAC and half of those with a valid IPv4 header to the VIP (and often
// a service's port) before random bytes: whatever comes, the pipeline
// decides and counts, and whatever it forwards differs only in its MACs.
func garbage(c *genCapture) {
	c.lan(rs1, rs2)
	rng := rand.New(rand.NewPCG(2024, 5))
	protos := []uint8{6, 17, 1, 47}
	for range 200 {
		n := rng.IntN(201)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		kind := rng.IntN(3)
		if kind >= 1 && n >= 12 {
			copy(b[0:6], c.vipMAC[:])
			copy(b[6:12], clientMAC[:])
		}
		if kind == 2 && n >= 34 {
			binary.BigEndian.PutUint16(b[12:], 0x0800)
			ip := b[14:]
			ip[0] = 0x45
			ip[1] = 0
			binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
			ip[6], ip[7] = 0x40, 0 // DF, no fragment
			ip[8] = 64
			ip[9] = protos[rng.IntN(len(protos))]
			copy(ip[12:16], client.AsSlice())
			copy(ip[16:20], vip.AsSlice())
			binary.BigEndian.PutUint16(ip[10:], 0)
			binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip[:20]))
			if l4 := ip[20:]; len(l4) >= 4 && rng.IntN(2) == 0 {
				// To a service port, so that some frames get past the service lookup.
				binary.BigEndian.PutUint16(l4[2:], map[uint8]uint16{6: 80, 17: 53}[ip[9]])
			}
		}
		c.raw(b)
	}
}
