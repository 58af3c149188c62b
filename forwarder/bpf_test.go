package forwarder

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// filterFrame builds an Ethernet frame: the EtherTypes of tags (each with
// VLAN id 5), then etherType and l3.
func filterFrame(tags []uint16, etherType uint16, l3 []byte) []byte {
	b := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1}
	for _, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 5)
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, l3...)
}

// filterIPv4 is an IPv4 header from src to dst with protocol proto, and 8
// bytes of payload.
func filterIPv4(src, dst string, proto uint8) []byte {
	h := make([]byte, 28)
	h[0], h[9] = 0x45, proto
	binary.BigEndian.PutUint16(h[2:], 28)
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return h
}

// filterIPv6 is an IPv6 header from src to dst with next header next,
// followed by payload.
func filterIPv6(src, dst string, next uint8, payload ...byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0], h[6], h[7] = 0x60, next, 255
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

var arpRequest = []byte{0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 51, 100, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 100}

func runFilter(t *testing.T, raw []bpf.RawInstruction, frame []byte) bool {
	t.Helper()
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("vm.Run: %v", err)
	}
	return n > 0
}

func TestBuildFilter(t *testing.T) {
	vips := []netip.Addr{
		netip.MustParseAddr("192.0.2.100"),
		netip.MustParseAddr("::ffff:198.51.100.7"), // v4-mapped: an IPv4 VIP
		netip.MustParseAddr("2001:db8::100"),
		netip.MustParseAddr("2001:db8::200"),
		netip.MustParseAddr("192.0.2.100"), // duplicate
	}
	raw, err := BuildFilter(vips)
	if err != nil {
		t.Fatal(err)
	}
	const (
		client  = "198.51.100.1"
		client6 = "2001:db8:1::1"
	)
	ns := []byte{135, 0, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{name: "arp request", frame: filterFrame(nil, etherTypeARP, arpRequest), want: true},
		{name: "arp with 802.1q tag", frame: filterFrame([]uint16{etherTypeVLAN}, etherTypeARP, arpRequest), want: true},
		{name: "tcp to vip", frame: filterFrame(nil, etherTypeIPv4, filterIPv4(client, "192.0.2.100", protoTCP)), want: true},
		{name: "udp to v4-mapped vip", frame: filterFrame(nil, etherTypeIPv4, filterIPv4(client, "198.51.100.7", protoUDP)), want: true},
		{name: "icmp to vip", frame: filterFrame(nil, etherTypeIPv4, filterIPv4("203.0.113.9", "192.0.2.100", protoICMP)), want: true},
		{name: "tcp to another address", frame: filterFrame(nil, etherTypeIPv4, filterIPv4(client, "192.0.2.101", protoTCP)), want: false},
		{name: "tcp from vip", frame: filterFrame(nil, etherTypeIPv4, filterIPv4("192.0.2.100", client, protoTCP)), want: false},
		{name: "tcp to vip with 802.1q tag", frame: filterFrame([]uint16{etherTypeVLAN}, etherTypeIPv4, filterIPv4(client, "192.0.2.100", protoTCP)), want: true},
		{name: "tcp to vip with 802.1ad tag", frame: filterFrame([]uint16{etherTypeQinQ}, etherTypeIPv4, filterIPv4(client, "192.0.2.100", protoTCP)), want: true},
		{name: "tcp to another address with tag", frame: filterFrame([]uint16{etherTypeVLAN}, etherTypeIPv4, filterIPv4(client, "192.0.2.1", protoTCP)), want: false},
		{name: "two tags", frame: filterFrame([]uint16{etherTypeQinQ, etherTypeVLAN}, etherTypeIPv4, filterIPv4(client, "192.0.2.100", protoTCP)), want: false},
		{name: "ipv4 truncated before the destination", frame: filterFrame(nil, etherTypeIPv4, filterIPv4(client, "192.0.2.100", protoTCP)[:18]), want: false},
		{name: "tcp to ipv6 vip", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8::100", protoTCP)), want: true},
		{name: "tcp to second ipv6 vip", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8::200", protoTCP)), want: true},
		{name: "tcp to ipv6 vip with tag", frame: filterFrame([]uint16{etherTypeVLAN}, etherTypeIPv6, filterIPv6(client6, "2001:db8::200", protoTCP)), want: true},
		{name: "ipv6 last word differs", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8::101", protoTCP)), want: false},
		{name: "ipv6 first word differs", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db9::100", protoTCP)), want: false},
		{name: "ipv6 middle word differs", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8:0:1::100", protoTCP)), want: false},
		{name: "neighbour solicitation", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "ff02::1:ff00:100", protoICMPv6, ns...)), want: true},
		{name: "neighbour solicitation with tag", frame: filterFrame([]uint16{etherTypeVLAN}, etherTypeIPv6, filterIPv6(client6, "ff02::1:ff00:100", protoICMPv6, ns...)), want: true},
		{name: "router solicitation", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "ff02::2", protoICMPv6, 133, 0)), want: true},
		{name: "redirect", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8:1::2", protoICMPv6, 137, 0)), want: true},
		{name: "icmpv6 type 138", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8:1::2", protoICMPv6, 138, 0)), want: false},
		{name: "echo request to another address", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8:1::2", protoICMPv6, 128, 0)), want: false},
		{name: "echo request to vip", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8::100", protoICMPv6, 128, 0)), want: true},
		{name: "packet too big to vip", frame: filterFrame(nil, etherTypeIPv6, filterIPv6(client6, "2001:db8::100", protoICMPv6, 2, 0)), want: true},
		{name: "lldp", frame: filterFrame(nil, 0x88cc, make([]byte, 40)), want: false},
		{name: "runt", frame: []byte{1, 2, 3}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, raw, tt.frame); got != tt.want {
				t.Fatalf("filter accepts = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBuildFilterNoVIPs(t *testing.T) {
	raw, err := BuildFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !runFilter(t, raw, filterFrame(nil, etherTypeARP, arpRequest)) {
		t.Error("filter without VIPs rejects ARP")
	}
	if runFilter(t, raw, filterFrame(nil, etherTypeIPv4, filterIPv4("198.51.100.1", "192.0.2.100", protoTCP))) {
		t.Error("filter without VIPs accepts IPv4")
	}
	if runFilter(t, raw, filterFrame(nil, etherTypeIPv6, filterIPv6("2001:db8::1", "2001:db8::100", protoTCP))) {
		t.Error("filter without VIPs accepts IPv6")
	}
}

// TestBuildFilterManyVIPs checks that jumps stay valid across long VIP
// lists, and the instruction limit.
func TestBuildFilterManyVIPs(t *testing.T) {
	var vips []netip.Addr
	for i := range 1200 {
		vips = append(vips, netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
	}
	for i := range 150 {
		vips = append(vips, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
	}
	raw, err := BuildFilter(vips)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > bpfMaxInstructions {
		t.Fatalf("filter has %d instructions, more than %d", len(raw), bpfMaxInstructions)
	}
	for _, ok := range []bool{true, false} {
		last4, last6 := "198.51.4.175", "2001:db8::95" // vips[1199], vips[1349]
		if !ok {
			last4, last6 = "198.51.4.176", "2001:db8::96"
		}
		if got := runFilter(t, raw, filterFrame([]uint16{etherTypeVLAN}, etherTypeIPv4, filterIPv4("203.0.113.1", last4, protoUDP))); got != ok {
			t.Errorf("filter accepts %s = %v, want %v", last4, got, ok)
		}
		if got := runFilter(t, raw, filterFrame(nil, etherTypeIPv6, filterIPv6("2001:db8:1::1", last6, protoUDP))); got != ok {
			t.Errorf("filter accepts %s = %v, want %v", last6, got, ok)
		}
	}
	if !runFilter(t, raw, filterFrame(nil, etherTypeIPv6, filterIPv6("2001:db8:1::1", "ff02::1:ff00:1", protoICMPv6, 135))) {
		t.Error("filter with many VIPs rejects a neighbour solicitation")
	}

	for i := range 1000 {
		vips = append(vips, netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}))
	}
	if _, err := BuildFilter(vips); err == nil {
		t.Fatal("BuildFilter with 2200 IPv4 and 150 IPv6 VIPs succeeded, want an instruction-limit error")
	}
}

func TestBuildFilterInvalidVIP(t *testing.T) {
	if _, err := BuildFilter([]netip.Addr{{}}); err == nil {
		t.Fatal("BuildFilter with the zero Addr succeeded, want an error")
	}
}
