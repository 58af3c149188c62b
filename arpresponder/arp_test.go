package arpresponder

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

// tagged is an 802.1Q tag with priority 3, DEI set and VLAN 100.
var tagged = VLAN{Present: true, TCI: 3<<13 | 1<<12 | 100}

// TestHandleARP maps ARP packets to Reasons, MetalLB layer2 style, and checks
// every field of each reply.
func TestHandleARP(t *testing.T) {
	r := testResponder()
	with := func(p arpPacket, f func(*arpPacket)) arpPacket { f(&p); return p }
	probe := with(request(vip4), func(p *arpPacket) { p.spa = zero4 })
	announce := func(op uint16, sha [6]byte) arpPacket {
		return with(request(vip4), func(p *arpPacket) { p.op, p.sha, p.spa = op, sha, vip4 })
	}

	tests := []struct {
		name   string
		vlan   VLAN
		ethSrc [6]byte // the frame's source; clientMAC if zero
		p      arpPacket
		edit   func([]byte) []byte // byte-level change after serializing p
		want   Reason
	}{
		{name: "request for VIP", p: request(vip4), want: ReasonNone},
		{name: "request for second VIP", p: request(vip4b), want: ReasonNone},
		{name: "request for VIP tagged", vlan: tagged, p: request(vip4), want: ReasonNone},
		{name: "request for VIP with Ethernet padding", p: request(vip4),
			edit: func(b []byte) []byte { return append(b, make([]byte, 18)...) }, want: ReasonNone},
		{name: "request with target MAC filled in", want: ReasonNone,
			p: with(request(vip4), func(p *arpPacket) { p.tha = broadcastMAC })},
		{name: "request with hardware type IEEE 802", want: ReasonNone,
			p: with(request(vip4), func(p *arpPacket) { p.htype = hwTypeIEEE802 })},
		{name: "request relayed: frame source differs from sender MAC", ethSrc: otherMAC,
			p: request(vip4), want: ReasonNone},
		{name: "RFC 5227 probe for VIP", p: probe, want: ReasonNone},
		{name: "RFC 5227 probe for VIP tagged", vlan: tagged, p: probe, want: ReasonNone},

		{name: "request for other address", p: request(notVIP4), want: ReasonNotVIP},
		{name: "request for multicast address", p: request(netip.MustParseAddr("224.0.0.1")), want: ReasonNotVIP},
		{name: "probe for other address",
			p: with(probe, func(p *arpPacket) { p.tpa = notVIP4 }), want: ReasonNotVIP},

		{name: "reply", want: ReasonNotRequest,
			p: with(request(vip4), func(p *arpPacket) { p.op = layers.ARPReply })},
		{name: "RARP request op 3", want: ReasonNotRequest,
			p: with(request(vip4), func(p *arpPacket) { p.op = 3 })},
		{name: "op 0", want: ReasonNotRequest,
			p: with(request(vip4), func(p *arpPacket) { p.op = 0 })},

		{name: "gratuitous request from another host", p: announce(layers.ARPRequest, otherMAC), want: ReasonConflict},
		{name: "gratuitous reply from another host", p: announce(layers.ARPReply, otherMAC), want: ReasonConflict},
		{name: "request from a host using a VIP", want: ReasonConflict,
			p: with(request(client4), func(p *arpPacket) { p.spa = vip4b })},
		{name: "reply from a host using a VIP", want: ReasonConflict,
			p: with(request(client4), func(p *arpPacket) { p.op, p.spa, p.tha = layers.ARPReply, vip4, clientMAC })},

		{name: "own announcement looped back", ethSrc: vipMAC, p: announce(layers.ARPRequest, vipMAC), want: ReasonLooped},
		{name: "own reply looped back", ethSrc: vipMAC, p: announce(layers.ARPReply, vipMAC), want: ReasonLooped},
		{name: "frame from VIP MAC", ethSrc: vipMAC, p: request(vip4), want: ReasonLooped},
		{name: "sender MAC is VIP MAC", p: announce(layers.ARPRequest, vipMAC), want: ReasonLooped},

		{name: "empty", p: request(vip4), edit: func([]byte) []byte { return nil }, want: ReasonMalformed},
		{name: "truncated to 27 bytes", p: request(vip4),
			edit: func(b []byte) []byte { return b[:27] }, want: ReasonMalformed},
		{name: "hardware type InfiniBand", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.htype = 32 })},
		{name: "protocol type IPv6", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.ptype = uint16(layers.EthernetTypeIPv6) })},
		{name: "hardware address length 8", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.hlen = 8 })},
		{name: "protocol address length 16", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.plen = 16 })},
		{name: "multicast sender MAC", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.sha = groupMAC })},
		{name: "broadcast sender MAC", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.sha = broadcastMAC })},
		{name: "zero sender MAC", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.sha = [6]byte{} })},
		{name: "loopback sender IP", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.spa = netip.MustParseAddr("127.0.0.1") })},
		{name: "multicast sender IP", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.spa = netip.MustParseAddr("224.0.0.5") })},
		{name: "broadcast sender IP", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.spa = netip.MustParseAddr("255.255.255.255") })},
		{name: "sender IP in 0.0.0.0/8 but not 0.0.0.0", want: ReasonMalformed,
			p: with(request(vip4), func(p *arpPacket) { p.spa = netip.MustParseAddr("0.1.2.3") })},
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
			got, why := r.HandleARP(make([]byte, 0, MaxReplyLen), tt.vlan, ethSrc, in)
			if why != tt.want {
				t.Fatalf("HandleARP reason = %v, want %v", why, tt.want)
			}
			if why != ReasonNone {
				if got != nil {
					t.Fatalf("HandleARP returned a frame with reason %v:\n% x", why, got)
				}
				return
			}
			checkARPReply(t, got, tt.vlan, tt.p)
		})
	}
}

// arpReplyView holds the fields of a reply frame that RFC 826 and udr's
// contract fix.
type arpReplyView struct {
	Len            int
	EthDst, EthSrc string
	VLAN           VLAN
	EtherType      layers.EthernetType
	HType          layers.LinkType
	PType          layers.EthernetType
	HLen, PLen     uint8
	Op             uint16
	SHA, THA       string
	SPA, TPA       netip.Addr
	PaddingZero    bool
}

// checkARPReply decodes reply with gopacket and checks it answers req: from
// the VIP MAC to the requester's sender MAC, same tag, sender = VIP MAC and
// the requested VIP, target = the requester's sender addresses (RFC 826),
// padded with zeros to the 46-byte minimum Ethernet payload.
func checkARPReply(t *testing.T, reply []byte, vlan VLAN, req arpPacket) {
	t.Helper()
	d := decode(t, reply)
	if d.arp == nil {
		t.Fatalf("reply has no ARP layer:\n% x", reply)
	}
	eth := ethernetLen(vlan)
	got := arpReplyView{
		Len:    len(reply),
		EthDst: d.eth.DstMAC.String(), EthSrc: d.eth.SrcMAC.String(),
		VLAN:      d.vlanTag(),
		EtherType: layers.EthernetType(uint16(reply[eth-2])<<8 | uint16(reply[eth-1])),
		HType:     d.arp.AddrType, PType: d.arp.Protocol,
		HLen: d.arp.HwAddressSize, PLen: d.arp.ProtAddressSize,
		Op:  d.arp.Operation,
		SHA: mac([6]byte(d.arp.SourceHwAddress)).String(), THA: mac([6]byte(d.arp.DstHwAddress)).String(),
		SPA: addr(t, d.arp.SourceProtAddress), TPA: addr(t, d.arp.DstProtAddress),
		PaddingZero: bytes.Count(reply[eth+arpLen:], []byte{0}) == len(reply)-eth-arpLen,
	}
	want := arpReplyView{
		Len:    eth + 46,
		EthDst: mac(req.sha).String(), EthSrc: mac(vipMAC).String(),
		VLAN:      vlan,
		EtherType: layers.EthernetTypeARP,
		HType:     layers.LinkTypeEthernet, PType: layers.EthernetTypeIPv4,
		HLen: 6, PLen: 4,
		Op:  layers.ARPReply,
		SHA: mac(vipMAC).String(), THA: mac(req.sha).String(),
		SPA: req.tpa, TPA: req.spa,
		PaddingZero: true,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Fatalf("reply (-want +got):\n%s\n% x", diff, reply)
	}
}

// TestHandleARPInPlace checks that a reply built over the request's own
// frame, and one built over a dirty buffer, equal one built into a fresh
// buffer.
func TestHandleARPInPlace(t *testing.T) {
	r := testResponder()
	for _, vlan := range []VLAN{{}, tagged} {
		req := request(vip4).bytes(t)
		want, why := r.HandleARP(nil, vlan, clientMAC, req)
		if why != ReasonNone {
			t.Fatalf("HandleARP reason = %v", why)
		}

		frame := make([]byte, MaxReplyLen)
		eth := ethernetLen(vlan)
		putEthernet(frame, broadcastMAC, clientMAC, vlan, etherTypeARP)
		n := copy(frame[eth:], req)
		got, _ := r.HandleARP(frame[:0], vlan, clientMAC, frame[eth:eth+n])
		if !bytes.Equal(got, want) {
			t.Errorf("vlan %+v: in-place reply\n% x\nwant\n% x", vlan, got, want)
		}

		dirty := bytes.Repeat([]byte{0xaa}, MaxReplyLen)
		got, _ = r.HandleARP(dirty[:0], vlan, clientMAC, req)
		if !bytes.Equal(got, want) {
			t.Errorf("vlan %+v: reply into a dirty buffer\n% x\nwant\n% x", vlan, got, want)
		}
	}
}

func TestHandleARPAllocs(t *testing.T) {
	r := testResponder()
	dst := make([]byte, 0, MaxReplyLen)
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"reply", request(vip4).bytes(t)},
		{"not VIP", request(notVIP4).bytes(t)},
		{"malformed", request(vip4).bytes(t)[:20]},
	} {
		if a := testing.AllocsPerRun(1000, func() { r.HandleARP(dst, tagged, clientMAC, tt.in) }); a != 0 {
			t.Errorf("%s: HandleARP allocs = %v, want 0", tt.name, a)
		}
	}
	in := request(vip4).bytes(t)
	if a := testing.AllocsPerRun(1000, func() { ParseARP(in) }); a != 0 {
		t.Errorf("ParseARP allocs = %v, want 0", a)
	}
}

func TestParseARP(t *testing.T) {
	reply := request(vip4)
	reply.op, reply.tha = layers.ARPReply, vipMAC
	tests := []struct {
		name   string
		in     []byte
		want   ARP
		wantOK bool
	}{
		{
			name: "request", in: request(vip4).bytes(t), wantOK: true,
			want: ARP{Op: OpRequest, SenderMAC: clientMAC, SenderIP: client4.As4(), TargetIP: vip4.As4()},
		},
		{
			name: "reply with padding", in: append(reply.bytes(t), 0, 0, 0, 0), wantOK: true,
			want: ARP{Op: OpReply, SenderMAC: clientMAC, SenderIP: client4.As4(), TargetMAC: vipMAC, TargetIP: vip4.As4()},
		},
		{name: "short", in: request(vip4).bytes(t)[:arpLen-1]},
		{name: "protocol type IPv6", in: func() []byte {
			p := request(vip4)
			p.ptype = uint16(layers.EthernetTypeIPv6)
			return p.bytes(t)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseARP(tt.in)
			if ok != tt.wantOK {
				t.Fatalf("ParseARP ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("ParseARP (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkHandleARP(b *testing.B) {
	r := testResponder()
	in := request(vip4).bytes(b)
	dst := make([]byte, 0, MaxReplyLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, why := r.HandleARP(dst, VLAN{}, clientMAC, in); why != ReasonNone {
			b.Fatal(why)
		}
	}
}
