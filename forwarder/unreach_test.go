package forwarder

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/udrtest"
)

const quiescedRules = `-A -t 192.0.2.100:80 -s wlc
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 0
-A -t [2001:db8::100]:80 -s wlc
-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 0
`

func TestNoBackendAnswersPortUnreachable(t *testing.T) {
	h := newHarness(t, quiescedRules, 64)
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
	}{
		{"ipv4", netip.MustParseAddrPort("198.51.100.7:40000"), netip.MustParseAddrPort("192.0.2.100:80")},
		{"ipv6", netip.MustParseAddrPort("[2001:db8:1::7]:40000"), netip.MustParseAddrPort("[2001:db8::100]:80")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			syn := udrtest.TCP(h.toVIP(), tc.src, tc.dst, udrtest.SYN, nil)
			v, out := h.p.Process(bytes.Clone(syn), epoch)
			if v != VerdictNoBackend || out == nil {
				t.Fatalf("verdict %v, frame %v; want no-backend with an ICMP error", v, out != nil)
			}
			pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
			eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if !bytes.Equal(eth.DstMAC, udrtest.ClientMAC) || !bytes.Equal(eth.SrcMAC, h.vmac[:]) {
				t.Errorf("MACs %s -> %s, want VIP MAC -> client", eth.SrcMAC, eth.DstMAC)
			}
			var src, dst []byte
			var typ, code uint8
			var payload []byte
			if l, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				src, dst = l.SrcIP, l.DstIP
				icmp := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				typ, code, payload = icmp.TypeCode.Type(), icmp.TypeCode.Code(), icmp.Payload
				if !checksum.Valid(checksum.Add(0, l.Payload)) || !checksum.IPv4HeaderValid(out[14:34]) {
					t.Errorf("bad checksum")
				}
			} else {
				l := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				src, dst = l.SrcIP, l.DstIP
				icmp := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				typ, code, payload = icmp.TypeCode.Type(), icmp.TypeCode.Code(), icmp.Payload
				sum := checksum.Pseudo(out[14+8:14+24], out[14+24:14+40], protoICMPv6, len(l.Payload))
				if !checksum.Valid(checksum.Add(sum, l.Payload)) {
					t.Errorf("bad ICMPv6 checksum")
				}
			}
			if !bytes.Equal(src, tc.dst.Addr().AsSlice()) || !bytes.Equal(dst, tc.src.Addr().AsSlice()) {
				t.Errorf("addresses %v -> %v, want VIP -> client", src, dst)
			}
			wantType, wantCode := uint8(3), uint8(3)
			if tc.src.Addr().Is6() {
				wantType, wantCode = 1, 4
			}
			if typ != wantType || code != wantCode {
				t.Errorf("ICMP %d/%d, want %d/%d", typ, code, wantType, wantCode)
			}
			if tc.src.Addr().Is6() {
				payload = payload[4:] // ICMPv6 error: 4 unused bytes
			}
			// The quoted datagram is the client's, without Ethernet padding.
			if !bytes.HasPrefix(syn[14:], payload) || len(payload) < 40 {
				t.Errorf("quoted datagram is not the client's")
			}
		})
	}
}

func TestUnreachableIsRateLimited(t *testing.T) {
	l := unreachLimiter{hz: 100, max: unreachMaxPerSec}
	for i := range unreachMaxPerSec {
		if !l.allow(750) {
			t.Fatalf("message %d refused within the budget", i)
		}
	}
	if l.allow(750) {
		t.Fatalf("message %d allowed past the budget", unreachMaxPerSec+1)
	}
	if !l.allow(800) {
		t.Fatalf("the next second's first message refused")
	}
}
