package forwarder

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/udr-lb/udr/internal/udrtest"
)

const fragRules = `-A -u 192.0.2.100:5000 -s rr
-a -u 192.0.2.100:5000 -r 192.0.2.11:5000 -g -w 1
-a -u 192.0.2.100:5000 -r 192.0.2.12:5000 -g -w 1
-A -u [2001:db8::100]:5000 -s rr
-a -u [2001:db8::100]:5000 -r [2001:db8::11]:5000 -g -w 1
-a -u [2001:db8::100]:5000 -r [2001:db8::12]:5000 -g -w 1
`

// fragments6 splits a UDP datagram from src port to VIP6:5000 into IPv6
// fragments (RFC 8200 4.5): the first carries the UDP header.
func fragments6(eth udrtest.Eth, sport uint16, id uint32, payload []byte) [][]byte {
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 5000}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("2001:db8::50"), DstIP: net.ParseIP("2001:db8::100")}
	udp.SetNetworkLayerForChecksum(ip)
	whole := udrtest.Serialize(udp, gopacket.Payload(payload)) // UDP header + payload
	var out [][]byte
	for off := 0; off < len(whole); off += 64 {
		end := min(off+64, len(whole))
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: ip.SrcIP, DstIP: ip.DstIP}
		frag := &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: uint16(off / 8), MoreFragments: end < len(whole), Identification: id}
		out = append(out, udrtest.Serialize(&layers.Ethernet{SrcMAC: eth.Src, DstMAC: eth.Dst, EthernetType: layers.EthernetTypeIPv6}, ip6, frag, gopacket.Payload(whole[off:end])))
	}
	return out
}

// TestIPv6Fragments: every fragment of an IPv6 datagram goes where the
// first (which carries the ports) went; a later fragment whose first was not
// seen is dropped.
func TestIPv6Fragments(t *testing.T) {
	h := newHarness(t, fragRules, 64)
	h.neigh.Set(udrtest.RS1, [6]byte(udrtest.RS1MAC))
	h.neigh.Set(mustAddr("2001:db8::11"), [6]byte(udrtest.RS1MAC))
	h.neigh.Set(mustAddr("2001:db8::12"), [6]byte(udrtest.RS2MAC))
	for i, sport := range []uint16{4000, 4001} {
		frags := fragments6(h.toVIP(), sport, uint32(0x1000+i), bytes.Repeat([]byte{byte(i)}, 150))
		if len(frags) != 3 {
			t.Fatalf("%d fragments, want 3", len(frags))
		}
		var dst []byte
		for n, fr := range frags {
			v, out := h.p.Process(bytes.Clone(fr), epoch)
			if v != VerdictForward {
				t.Fatalf("datagram %d fragment %d: verdict %v", i, n, v)
			}
			if dst == nil {
				dst = bytes.Clone(out[:6])
			} else if !bytes.Equal(out[:6], dst) {
				t.Errorf("datagram %d fragment %d to %x, the first went to %x", i, n, out[:6], dst)
			}
		}
		if want := [][]byte{udrtest.RS2MAC, udrtest.RS1MAC}[i]; !bytes.Equal(dst, want) {
			t.Errorf("datagram %d to %x, want %x (rr)", i, dst, want)
		}
	}
	orphan := fragments6(h.toVIP(), 4002, 0x2000, make([]byte, 150))[1]
	if v, _ := h.p.Process(orphan, epoch); v != VerdictFragment {
		t.Errorf("a later fragment without its first: %v, want fragment", v)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
