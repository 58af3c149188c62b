package forwarder

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// csumFrame serializes an Ethernet frame with correct lengths and checksums
// (gopacket computes them independently of csum.go). tags are 802.1Q VLAN
// ids placed between the Ethernet header and ip.
func csumFrame(t testing.TB, tags []uint16, ip gopacket.NetworkLayer, l4 gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
	}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	inner := layers.EthernetTypeIPv4
	if _, ok := ip.(*layers.IPv6); ok {
		inner = layers.EthernetTypeIPv6
	}
	eth.EthernetType = inner
	if len(tags) > 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
	}
	for i, id := range tags {
		q := &layers.Dot1Q{VLANIdentifier: id, Type: layers.EthernetTypeDot1Q}
		if i == len(tags)-1 {
			q.Type = inner
		}
		ls = append(ls, q)
	}
	ls = append(ls, ip.(gopacket.SerializableLayer))
	switch l := l4.(type) {
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(ip)
	}
	if l4 != nil {
		ls = append(ls, l4)
	}
	ls = append(ls, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func csumIPv4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IP{198, 51, 100, 1}, DstIP: net.IP{192, 0, 2, 100}}
}

func csumIPv6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::100")}
}

func csumTCP() *layers.TCP {
	return &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, SYN: true, Window: 64240}
}

func csumUDP() *layers.UDP { return &layers.UDP{SrcPort: 40000, DstPort: 53} }

// checksumOffset returns the offset of the transport checksum field in a
// frame built by csumFrame.
func checksumOffset(frame []byte, tags int, ipHdr int, udp bool) int {
	off := ethHdrLen + tags*vlanLen + ipHdr
	if udp {
		return off + udpChecksumOff
	}
	return off + tcpChecksumOff
}

func TestFinishChecksum(t *testing.T) {
	odd := []byte("odd-length payload!")
	tests := []struct {
		name  string
		frame []byte
		field int
	}{
		{name: "tcp ipv4 syn", frame: csumFrame(t, nil, csumIPv4(layers.IPProtocolTCP), csumTCP(), nil), field: checksumOffset(nil, 0, 20, false)},
		{name: "tcp ipv4 odd payload", frame: csumFrame(t, nil, csumIPv4(layers.IPProtocolTCP), csumTCP(), odd), field: checksumOffset(nil, 0, 20, false)},
		{name: "udp ipv4", frame: csumFrame(t, nil, csumIPv4(layers.IPProtocolUDP), csumUDP(), odd), field: checksumOffset(nil, 0, 20, true)},
		{name: "tcp ipv6", frame: csumFrame(t, nil, csumIPv6(layers.IPProtocolTCP), csumTCP(), odd), field: checksumOffset(nil, 0, 40, false)},
		{name: "udp ipv6", frame: csumFrame(t, nil, csumIPv6(layers.IPProtocolUDP), csumUDP(), []byte("12345678")), field: checksumOffset(nil, 0, 40, true)},
		{name: "udp ipv4 one vlan tag", frame: csumFrame(t, []uint16{100}, csumIPv4(layers.IPProtocolUDP), csumUDP(), odd), field: checksumOffset(nil, 1, 20, true)},
		{name: "tcp ipv6 two vlan tags", frame: csumFrame(t, []uint16{100, 200}, csumIPv6(layers.IPProtocolTCP), csumTCP(), odd), field: checksumOffset(nil, 2, 40, false)},
		{name: "udp ipv4 ethernet padding", frame: append(csumFrame(t, nil, csumIPv4(layers.IPProtocolUDP), csumUDP(), []byte{1}), 0, 0, 0, 0, 0, 0, 0), field: checksumOffset(nil, 0, 20, true)},
		{name: "tcp ipv4 with options", frame: func() []byte {
			ip := csumIPv4(layers.IPProtocolTCP)
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
			return csumFrame(t, nil, ip, csumTCP(), odd)
		}(), field: checksumOffset(nil, 0, 24, false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := append([]byte(nil), tt.frame...)
			// The pseudo-header sum of CHECKSUM_PARTIAL, or anything: the
			// field is ignored on input.
			for _, partial := range []uint16{0, 0x849d, 0xffff} {
				got := append([]byte(nil), tt.frame...)
				binary.BigEndian.PutUint16(got[tt.field:], partial)
				if !finishChecksum(got) {
					t.Fatalf("finishChecksum with field %#04x = false, want true", partial)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("finishChecksum with field %#04x (-want +got):\n%s", partial, diff)
				}
			}
		})
	}
}

// TestFinishChecksumUDPZero checks that a UDP checksum computing to zero is
// sent as 0xffff (RFC 768), not as "no checksum".
func TestFinishChecksumUDPZero(t *testing.T) {
	frame := csumFrame(t, nil, csumIPv4(layers.IPProtocolUDP), csumUDP(), []byte{0, 0, 0, 0})
	field := checksumOffset(frame, 0, 20, true)
	// Adding the checksum c into a payload word makes the one's complement
	// sum 0xffff, so that the checksum becomes zero.
	c := binary.BigEndian.Uint16(frame[field:])
	binary.BigEndian.PutUint16(frame[ethHdrLen+20+udpHdrLen:], c) // the first payload word, zero before
	if !finishChecksum(frame) {
		t.Fatal("finishChecksum = false, want true")
	}
	if got := binary.BigEndian.Uint16(frame[field:]); got != 0xffff {
		t.Fatalf("checksum = %#04x, want 0xffff", got)
	}
}

func TestFinishChecksumLeavesOthers(t *testing.T) {
	fragment := csumIPv4(layers.IPProtocolUDP)
	fragment.Flags = layers.IPv4MoreFragments
	routing := csumFrame(t, nil, csumIPv6(layers.IPProtocolIPv6Routing), nil, []byte{byte(layers.IPProtocolUDP), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	tcp := csumFrame(t, nil, csumIPv4(layers.IPProtocolTCP), csumTCP(), nil)
	tests := []struct {
		name  string
		frame []byte
	}{
		{name: "empty", frame: nil},
		{name: "ethernet header only", frame: tcp[:ethHdrLen]},
		{name: "truncated ipv4 header", frame: tcp[:ethHdrLen+10]},
		{name: "ipv4 total length beyond the frame", frame: tcp[:ethHdrLen+40-1]},
		{name: "truncated tcp header", frame: func() []byte {
			b := append([]byte(nil), tcp...)
			binary.BigEndian.PutUint16(b[ethHdrLen+2:], 20+10)
			return b[:ethHdrLen+30]
		}()},
		{name: "ipv4 fragment", frame: csumFrame(t, nil, fragment, csumUDP(), []byte("x"))},
		{name: "icmp", frame: csumFrame(t, nil, csumIPv4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, nil)},
		{name: "ipv6 routing header", frame: routing},
		{name: "arp", frame: append(append([]byte(nil), tcp[:12]...), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1)},
		{name: "bad version", frame: func() []byte {
			b := append([]byte(nil), tcp...)
			b[ethHdrLen] = 0x65
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := append([]byte(nil), tt.frame...)
			if finishChecksum(tt.frame) {
				t.Fatal("finishChecksum = true, want false")
			}
			if diff := cmp.Diff(want, tt.frame); diff != "" {
				t.Fatalf("frame changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFinishChecksumAllocs(t *testing.T) {
	frame := csumFrame(t, []uint16{7}, csumIPv6(layers.IPProtocolTCP), csumTCP(), make([]byte, 1400))
	if a := testing.AllocsPerRun(1000, func() { finishChecksum(frame) }); a != 0 {
		t.Fatalf("finishChecksum allocs = %v, want 0", a)
	}
}

func BenchmarkFinishChecksum(b *testing.B) {
	frame := csumFrame(b, nil, csumIPv4(layers.IPProtocolTCP), csumTCP(), make([]byte, 1448))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		finishChecksum(frame)
	}
}
