package arpresponder

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/mdlayher/ndp"
)

// TestHandleNDP maps IPv6 packets to Reasons, MetalLB layer2 style, and checks
// every field of each Neighbor Advertisement built.
func TestHandleNDP(t *testing.T) {
	r := testResponder()
	with := func(p ndpPacket, f func(*ndpPacket)) ndpPacket { f(&p); return p }
	slla := option(optSourceLLA, 1, clientMAC[:])
	dad := with(ns(vip6), func(p *ndpPacket) { p.src, p.body = zero6, ndBody(0, vip6, nil) })
	nonce := option(14, 1, []byte{1, 2, 3, 4, 5, 6}) // RFC 3971 Nonce

	tests := []struct {
		name   string
		vlan   VLAN
		ethSrc [6]byte // the frame's source; clientMAC if zero
		p      ndpPacket
		edit   func([]byte) []byte // byte-level change after serializing p
		want   Reason
		ethDst [6]byte // of the reply
	}{
		{name: "NS to solicited-node address", p: ns(vip6), want: ReasonNone, ethDst: clientMAC},
		{name: "NS tagged", vlan: tagged, p: ns(vip6), want: ReasonNone, ethDst: clientMAC},
		{name: "NS unicast to VIP (NUD) without source link-layer address", ethSrc: otherMAC, want: ReasonNone, ethDst: otherMAC,
			p: with(ns(vip6), func(p *ndpPacket) { p.dst, p.body = vip6, ndBody(0, vip6, nil) })},
		{name: "NS source link-layer address wins over frame source", ethSrc: otherMAC, p: ns(vip6), want: ReasonNone, ethDst: clientMAC},
		{name: "NS with nonce option before source link-layer address", want: ReasonNone, ethDst: clientMAC,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, append(nonce, slla...)) })},
		{name: "NS with duplicated source link-layer address: first wins", ethSrc: otherMAC, want: ReasonNone, ethDst: clientMAC,
			p: with(ns(vip6), func(p *ndpPacket) {
				p.body = ndBody(0, vip6, append(slla, option(optSourceLLA, 1, otherMAC[:])...))
			})},
		{name: "NS with Ethernet padding after payload", p: ns(vip6), want: ReasonNone, ethDst: clientMAC,
			edit: func(b []byte) []byte { return append(b, 0, 0, 0, 0) }},
		{name: "DAD NS", p: dad, want: ReasonNone, ethDst: allNodesMAC},
		{name: "DAD NS tagged", vlan: tagged, p: dad, want: ReasonNone, ethDst: allNodesMAC},

		{name: "NS for other address", p: ns(notVIP6), want: ReasonNotVIP},
		{name: "NS for IPv4-mapped VIP", p: ns(netip.AddrFrom16(vip4.As16())), want: ReasonNotVIP},

		{name: "NS from a host using a VIP", want: ReasonConflict,
			p: with(ns(vip6), func(p *ndpPacket) { p.src = vip6 })},
		{name: "NA for VIP with another MAC", ethSrc: otherMAC, want: ReasonConflict,
			p: na(vip6, option(optTargetLLA, 1, otherMAC[:])...)},
		{name: "NA for VIP without target link-layer address", ethSrc: otherMAC, want: ReasonConflict,
			p: na(vip6)},
		{name: "own NA looped back", ethSrc: vipMAC, want: ReasonLooped,
			p: with(na(vip6, option(optTargetLLA, 1, vipMAC[:])...), func(p *ndpPacket) { p.src = vip6 })},
		{name: "NA carrying VIP MAC from another frame source", ethSrc: otherMAC, want: ReasonLooped,
			p: na(vip6, option(optTargetLLA, 1, vipMAC[:])...)},
		{name: "NS from VIP MAC", ethSrc: vipMAC, p: ns(vip6), want: ReasonLooped},
		{name: "NS with VIP MAC as source link-layer address", want: ReasonLooped,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, option(optSourceLLA, 1, vipMAC[:])) })},

		{name: "NA for other address", p: na(notVIP6), want: ReasonNotNS},
		{name: "echo request", want: ReasonNotNS,
			p: with(ns(vip6), func(p *ndpPacket) { p.icmpType, p.body = 128, []byte{0, 1, 0, 1} })},
		{name: "router solicitation", want: ReasonNotNS,
			p: with(ns(vip6), func(p *ndpPacket) { p.icmpType, p.body = 133, make([]byte, 4) })},
		{name: "UDP", want: ReasonNotNS,
			p: with(ns(vip6), func(p *ndpPacket) { p.nextHeader = layers.IPProtocolUDP })},
		{name: "hop-by-hop options header", want: ReasonNotNS,
			p: with(ns(vip6), func(p *ndpPacket) { p.nextHeader = layers.IPProtocolIPv6HopByHop })},

		{name: "empty", p: ns(vip6), edit: func([]byte) []byte { return nil }, want: ReasonMalformed},
		{name: "shorter than an IPv6 header", p: ns(vip6), edit: func(b []byte) []byte { return b[:39] }, want: ReasonMalformed},
		{name: "IP version 4", p: ns(vip6), edit: func(b []byte) []byte { b[0] = 0x45; return b }, want: ReasonMalformed},
		{name: "payload length past the end", p: ns(vip6), edit: func(b []byte) []byte { return b[:len(b)-1] }, want: ReasonMalformed},
		{name: "ICMPv6 header cut", p: ns(vip6), want: ReasonMalformed,
			edit: func(b []byte) []byte { b[ipv6PayloadLen+1] = 1; return b[:41] }},
		{name: "hop limit 64 (RFC 4861 7.1.1)", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.hopLimit = 64 })},
		{name: "ICMPv6 code 1", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.icmpCode = 1 })},
		{name: "bad checksum", p: ns(vip6), want: ReasonMalformed,
			edit: func(b []byte) []byte { b[ipv6HdrLen+icmpChecksum] ^= 0x01; return b }},
		{name: "NS shorter than 24 bytes", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = p.body[:19] })},
		{name: "multicast target", want: ReasonMalformed,
			p: ns(netip.MustParseAddr("ff02::1:ff00:10"))},
		{name: "multicast source", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.src = allNodes6 })},
		{name: "loopback source", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.src = netip.IPv6Loopback() })},
		{name: "IPv4-mapped source", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.src = netip.AddrFrom16(client4.As16()) })},
		{name: "option length 0", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, option(optSourceLLA, 0, nil)) })},
		{name: "option past the end", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, option(optSourceLLA, 2, clientMAC[:])[:10]) })},
		{name: "lone option byte", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, []byte{optSourceLLA}) })},
		{name: "source link-layer address option of 16 bytes", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, option(optSourceLLA, 2, clientMAC[:])) })},
		{name: "multicast source link-layer address", want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, option(optSourceLLA, 1, groupMAC[:])) })},
		{name: "no source link-layer address and multicast frame source", ethSrc: groupMAC, want: ReasonMalformed,
			p: with(ns(vip6), func(p *ndpPacket) { p.dst, p.body = vip6, ndBody(0, vip6, nil) })},
		{name: "DAD NS to a unicast address", want: ReasonMalformed,
			p: with(dad, func(p *ndpPacket) { p.dst = vip6 })},
		{name: "DAD NS with source link-layer address", want: ReasonMalformed,
			p: with(dad, func(p *ndpPacket) { p.body = ndBody(0, vip6, slla) })},
		{name: "solicited NA to multicast (RFC 4861 7.1.2)", want: ReasonMalformed,
			p: with(na(vip6), func(p *ndpPacket) { p.body[0] |= naFlagSolicited })},
		{name: "NA hop limit 1", want: ReasonMalformed,
			p: with(na(vip6), func(p *ndpPacket) { p.hopLimit = 1 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.p.bytes(t)
			if tt.edit != nil {
				in = tt.edit(in)
			}
			ethSrc := tt.ethSrc
			if ethSrc == ([6]byte{}) {
				ethSrc = clientMAC
			}
			got, why := r.HandleNDP(make([]byte, 0, MaxReplyLen), tt.vlan, ethSrc, in)
			if why != tt.want {
				t.Fatalf("HandleNDP reason = %v, want %v", why, tt.want)
			}
			if why != ReasonNone {
				if got != nil {
					t.Fatalf("HandleNDP returned a frame with reason %v:\n% x", why, got)
				}
				return
			}
			ipDst, solicited := tt.p.src, true
			if tt.p.src == zero6 {
				ipDst, solicited = allNodes6, false
			}
			checkNA(t, got, naView{
				Len:    ethernetLen(tt.vlan) + 40 + 32,
				EthDst: mac(tt.ethDst).String(), EthSrc: mac(vipMAC).String(),
				VLAN: tt.vlan, EtherType: layers.EthernetTypeIPv6,
				Version: 6, PayloadLen: 32, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255,
				Src: vip6, Dst: ipDst,
				TypeCode:      layers.CreateICMPv6TypeCode(typeNA, 0),
				ChecksumValid: true,
				Solicited:     solicited, Override: true,
				Target:  vip6,
				Options: []string{"TargetAddress " + mac(vipMAC).String()},
			})
		})
	}
}

// naView holds the fields of a Neighbor Advertisement frame that RFC 4861
// 4.4 and 7.2.4 and udr's contract fix.
type naView struct {
	Len                         int
	EthDst, EthSrc              string
	VLAN                        VLAN
	EtherType                   layers.EthernetType
	Version, TrafficClass       uint8
	FlowLabel                   uint32
	PayloadLen                  uint16
	NextHeader                  layers.IPProtocol
	HopLimit                    uint8
	Src, Dst                    netip.Addr
	TypeCode                    layers.ICMPv6TypeCode
	ChecksumValid               bool
	Router, Solicited, Override bool
	Reserved                    []byte
	Target                      netip.Addr
	Options                     []string
}

// checkNA decodes frame with gopacket, verifies the ICMPv6 checksum with
// gopacket, parses the message again with mdlayher/ndp, and compares all
// fields with want.
func checkNA(t *testing.T, frame []byte, want naView) {
	t.Helper()
	d := decode(t, frame)
	if d.ip6 == nil || d.icmp == nil || d.na == nil {
		t.Fatalf("frame is not an IPv6 Neighbor Advertisement:\n% x", frame)
	}
	if err := d.icmp.SetNetworkLayerForChecksum(d.ip6); err != nil {
		t.Fatal(err)
	}
	err, cs := d.icmp.VerifyChecksum()
	if err != nil {
		t.Fatalf("VerifyChecksum: %v", err)
	}
	eth := ethernetLen(want.VLAN)
	got := naView{
		Len:    len(frame),
		EthDst: d.eth.DstMAC.String(), EthSrc: d.eth.SrcMAC.String(),
		VLAN:      d.vlanTag(),
		EtherType: layers.EthernetType(uint16(frame[eth-2])<<8 | uint16(frame[eth-1])),
		Version:   d.ip6.Version, TrafficClass: d.ip6.TrafficClass, FlowLabel: d.ip6.FlowLabel,
		PayloadLen: d.ip6.Length, NextHeader: d.ip6.NextHeader, HopLimit: d.ip6.HopLimit,
		Src: addr(t, d.ip6.SrcIP), Dst: addr(t, d.ip6.DstIP),
		TypeCode:      d.icmp.TypeCode,
		ChecksumValid: cs.Valid,
		Router:        d.na.Router(), Solicited: d.na.Solicited(), Override: d.na.Override(),
		Reserved: frame[eth+ipv6HdrLen+ndFlags+1 : eth+ipv6HdrLen+ndTarget],
		Target:   addr(t, d.na.TargetAddress),
	}
	for _, o := range d.na.Options {
		got.Options = append(got.Options, o.Type.String()+" "+mac([6]byte(o.Data)).String())
	}
	want.Reserved = []byte{0, 0, 0}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Fatalf("Neighbor Advertisement (-want +got):\n%s\n% x", diff, frame)
	}

	// An independent parser must agree.
	m, perr := ndp.ParseMessage(frame[eth+ipv6HdrLen:])
	if perr != nil {
		t.Fatalf("ndp.ParseMessage: %v", perr)
	}
	wantMsg := &ndp.NeighborAdvertisement{
		Solicited: want.Solicited, Override: want.Override, TargetAddress: want.Target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac(vipMAC)}},
	}
	if diff := cmp.Diff(ndp.Message(wantMsg), m, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Fatalf("ndp.ParseMessage (-want +got):\n%s", diff)
	}
}

// TestHandleNDPInPlace checks that a reply built over the solicitation's own
// frame, and one built over a dirty buffer, equal one built into a fresh
// buffer.
func TestHandleNDPInPlace(t *testing.T) {
	r := testResponder()
	for _, vlan := range []VLAN{{}, tagged} {
		req := ns(vip6).bytes(t)
		want, why := r.HandleNDP(nil, vlan, clientMAC, req)
		if why != ReasonNone {
			t.Fatalf("HandleNDP reason = %v", why)
		}

		frame := make([]byte, 256)
		eth := ethernetLen(vlan)
		putEthernet(frame, allNodesMAC, clientMAC, vlan, etherTypeIPv6)
		n := copy(frame[eth:], req)
		got, _ := r.HandleNDP(frame[:0], vlan, clientMAC, frame[eth:eth+n])
		if !bytes.Equal(got, want) {
			t.Errorf("vlan %+v: in-place reply\n% x\nwant\n% x", vlan, got, want)
		}

		dirty := bytes.Repeat([]byte{0xaa}, MaxReplyLen)
		got, _ = r.HandleNDP(dirty[:0], vlan, clientMAC, req)
		if !bytes.Equal(got, want) {
			t.Errorf("vlan %+v: reply into a dirty buffer\n% x\nwant\n% x", vlan, got, want)
		}
	}
}

func TestHandleNDPAllocs(t *testing.T) {
	r := testResponder()
	dst := make([]byte, 0, MaxReplyLen)
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"reply", ns(vip6).bytes(t)},
		{"not VIP", ns(notVIP6).bytes(t)},
		{"conflict", na(vip6).bytes(t)},
		{"malformed", ns(vip6).bytes(t)[:50]},
	} {
		if a := testing.AllocsPerRun(1000, func() { r.HandleNDP(dst, tagged, clientMAC, tt.in) }); a != 0 {
			t.Errorf("%s: HandleNDP allocs = %v, want 0", tt.name, a)
		}
	}
}

func BenchmarkHandleNDP(b *testing.B) {
	r := testResponder()
	in := ns(vip6).bytes(b)
	dst := make([]byte, 0, MaxReplyLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, why := r.HandleNDP(dst, VLAN{}, clientMAC, in); why != ReasonNone {
			b.Fatal(why)
		}
	}
}
