package health

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

var (
	directorMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	rsMAC       = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	syn4        = segment{
		dstMAC: rsMAC, srcMAC: directorMAC,
		src: netip.MustParseAddrPort("192.0.2.2:40000"), dst: netip.MustParseAddrPort("192.0.2.100:80"),
		seq: 0x01020304, flags: tcpSYN,
	}
	syn6 = segment{
		dstMAC: rsMAC, srcMAC: directorMAC,
		src: netip.MustParseAddrPort("[2001:db8::2]:40000"), dst: netip.MustParseAddrPort("[2001:db8::100]:443"),
		seq: 0xfffffffe, flags: tcpSYN,
	}
)

// reference builds the same frame with gopacket, checksums computed by it.
func reference(t *testing.T, s segment) []byte {
	t.Helper()
	eth := &layers.Ethernet{DstMAC: net.HardwareAddr(s.dstMAC[:]), SrcMAC: net.HardwareAddr(s.srcMAC[:])}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()),
		Seq: s.seq, Ack: s.ack, Window: probeWin,
		SYN: s.flags&tcpSYN != 0, ACK: s.flags&tcpACK != 0, RST: s.flags&tcpRST != 0,
	}
	var ip gopacket.SerializableLayer
	if s.src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, TTL: probeTTL, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: s.src.Addr().AsSlice(), DstIP: s.dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(v4)
		ip = v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: probeTTL, NextHeader: layers.IPProtocolTCP,
			SrcIP: s.src.Addr().AsSlice(), DstIP: s.dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(v6)
		ip = v6
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSegmentMarshal(t *testing.T) {
	rst := syn4
	rst.flags, rst.seq = tcpRST, syn4.seq+1
	synAck := segment{
		dstMAC: directorMAC, srcMAC: rsMAC, src: syn4.dst, dst: syn4.src,
		seq: 77, ack: syn4.seq + 1, flags: tcpSYN | tcpACK,
	}
	for name, s := range map[string]segment{"syn4": syn4, "syn6": syn6, "rst4": rst, "synack4": synAck} {
		t.Run(name, func(t *testing.T) {
			got := s.marshal()
			want := reference(t, s)
			// gopacket pads to the 60-byte Ethernet minimum; the kernel
			// does that for udr's frames.
			if pad := want[min(len(got), len(want)):]; !bytes.Equal(pad, make([]byte, len(pad))) {
				t.Fatalf("gopacket's frame has more than padding after ours: % x", pad)
			}
			if want = want[:min(len(got), len(want))]; !bytes.Equal(got, want) {
				t.Fatalf("frame differs from gopacket's:\n got % x\nwant % x", got, want)
			}
			back, ok := parseSegment(got)
			if !ok {
				t.Fatal("parseSegment refused a marshalled frame")
			}
			if diff := cmp.Diff(s, back, cmp.AllowUnexported(segment{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseSegmentShort checks every truncation of valid frames: refused,
// never a panic.
func TestParseSegmentShort(t *testing.T) {
	for _, s := range []segment{syn4, syn6} {
		b := s.marshal()
		for n := range len(b) {
			if _, ok := parseSegment(b[:n]); ok {
				t.Fatalf("parseSegment accepted %d of %d bytes", n, len(b))
			}
		}
	}
	udp := syn4.marshal()
	udp[ethLen+9] = 17
	if _, ok := parseSegment(udp); ok {
		t.Fatal("parseSegment accepted UDP")
	}
}

func TestReplyFilter(t *testing.T) {
	src4 := netip.MustParseAddr("192.0.2.2")
	src6 := netip.MustParseAddr("2001:db8::2")
	reply := func(s segment) segment {
		return segment{dstMAC: s.srcMAC, srcMAC: s.dstMAC, src: s.dst, dst: s.src, ack: s.seq + 1, flags: tcpSYN | tcpACK}
	}
	other4 := reply(syn4)
	other4.dst = netip.MustParseAddrPort("192.0.2.3:40000")
	other6 := reply(syn6)
	other6.dst = netip.MustParseAddrPort("[2001:db8::3]:40000")
	udp := reply(syn4).marshal()
	udp[ethLen+9] = 17
	tests := []struct {
		name       string
		src4, src6 netip.Addr
		frame      []byte
		pass       bool
	}{
		{name: "v4 reply", src4: src4, src6: src6, frame: reply(syn4).marshal(), pass: true},
		{name: "v6 reply", src4: src4, src6: src6, frame: reply(syn6).marshal(), pass: true},
		{name: "our own SYN", src4: src4, src6: src6, frame: syn4.marshal()},
		{name: "v4 to another host", src4: src4, src6: src6, frame: other4.marshal()},
		{name: "v6 to another host", src4: src4, src6: src6, frame: other6.marshal()},
		{name: "udp", src4: src4, src6: src6, frame: udp},
		{name: "v6 without a v6 source", src4: src4, frame: reply(syn6).marshal()},
		{name: "v6 only", src6: src6, frame: reply(syn6).marshal(), pass: true},
		{name: "arp", src4: src4, src6: src6, frame: append(make([]byte, 12), 0x08, 0x06, 0, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := replyFilter(tt.src4, tt.src6)
			if err != nil {
				t.Fatal(err)
			}
			prog, ok := bpf.Disassemble(raw)
			if !ok {
				t.Fatal("cannot disassemble the filter")
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if pass := n > 0; pass != tt.pass {
				t.Fatalf("filter passes %d bytes, want pass=%v", n, tt.pass)
			}
		})
	}
}
