package forwarder

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/udrtest"
)

// learnRules has one IPv4 and one IPv6 real server.
const learnRules = `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-A -t [2001:db8::100]:80 -s rr
-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -g -w 1
`

var (
	rs6        = netip.MustParseAddr("2001:db8::11")
	rs6MAC     = [6]byte{0x02, 0, 0, 0, 0, 0x61}
	poisonMAC  = [6]byte{0x02, 0, 0, 0, 0, 0xee}
	broadcast  = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodes6  = netip.MustParseAddr("ff02::1")
	allNodesEt = [6]byte{0x33, 0x33, 0, 0, 0, 1}
)

// arpFrame builds a broadcast Ethernet/IPv4 ARP frame with sender MAC sha
// and sender IP spa, asking for the VIP; edit changes the ARP bytes.
func arpFrame(op uint16, sha [6]byte, spa netip.Addr, edit func(a []byte)) []byte {
	b := make([]byte, 60)
	copy(b[0:6], broadcast[:])
	copy(b[6:12], sha[:])
	binary.BigEndian.PutUint16(b[12:], etherTypeARP)
	a := b[14:42]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha[:])
	copy(a[14:18], spa.AsSlice())
	copy(a[24:28], udrtest.VIP.AsSlice())
	if edit != nil {
		edit(a)
	}
	return b
}

// naFrame builds an unsolicited neighbor advertisement from target to
// ff02::1 with a target link-layer address option holding mac, Override
// set, hop limit 255 and a valid checksum; edit changes the IPv6 packet
// before the checksum is computed, fix false leaves the checksum zero.
// extra is appended as further options.
func naFrame(target netip.Addr, mac [6]byte, fix bool, edit func(ip []byte), extra ...byte) []byte {
	b := make([]byte, 14+40+32, 14+40+32+len(extra))
	copy(b[0:6], allNodesEt[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:], etherTypeIPv6)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = protoICMPv6, 255
	copy(ip[8:24], target.AsSlice())
	copy(ip[24:40], allNodes6.AsSlice())
	msg := ip[40:]
	msg[0], msg[4] = 136, 0x20 // NA, Override
	copy(msg[8:24], target.AsSlice())
	msg[24], msg[25] = 2, 1 // target link-layer address, 8 bytes
	copy(msg[26:32], mac[:])
	b = append(b, extra...)
	ip, msg = b[14:], b[14+40:]
	binary.BigEndian.PutUint16(ip[4:], uint16(32+len(extra)))
	if edit != nil {
		edit(ip)
	}
	if fix {
		n := int(binary.BigEndian.Uint16(ip[4:]))
		sum := checksum.Pseudo(ip[8:24], ip[24:40], protoICMPv6, n)
		binary.BigEndian.PutUint16(msg[2:], checksum.Finish(checksum.Add(sum, ip[40:40+n])))
	}
	return b
}

// TestLearnOnlyValid sends, for a real server whose MAC is known, ARP and
// neighbor advertisements that claim another MAC for it, each with one
// fault that the responder's validation rejects. None may change the
// server's MAC; the valid ones (the controls) must.
func TestLearnOnlyValid(t *testing.T) {
	for _, tt := range []struct {
		name  string
		frame []byte
		addr  netip.Addr
		learn bool
	}{
		{"arp valid request", arpFrame(1, poisonMAC, udrtest.RS1, nil), udrtest.RS1, true},
		{"arp valid reply", arpFrame(2, poisonMAC, udrtest.RS1, nil), udrtest.RS1, true},
		{"arp multicast sender MAC", arpFrame(1, [6]byte{0x01, 0, 0x5e, 0, 0, 1}, udrtest.RS1, nil), udrtest.RS1, false},
		{"arp broadcast sender MAC", arpFrame(1, broadcast, udrtest.RS1, nil), udrtest.RS1, false},
		{"arp zero sender MAC", arpFrame(1, [6]byte{}, udrtest.RS1, nil), udrtest.RS1, false},
		{"arp hardware type 2", arpFrame(1, poisonMAC, udrtest.RS1, func(a []byte) { a[1] = 2 }), udrtest.RS1, false},
		{"arp protocol type IPv6", arpFrame(1, poisonMAC, udrtest.RS1, func(a []byte) { a[2], a[3] = 0x86, 0xdd }), udrtest.RS1, false},
		{"arp hardware length 8", arpFrame(1, poisonMAC, udrtest.RS1, func(a []byte) { a[4] = 8 }), udrtest.RS1, false},
		{"arp operation 3", arpFrame(3, poisonMAC, udrtest.RS1, nil), udrtest.RS1, false},
		{"arp from the VIP MAC", nil, udrtest.RS1, false}, // built below: the VIP MAC is the harness's
		{"na valid", naFrame(rs6, poisonMAC, true, nil), rs6, true},
		{"na hop limit 3", naFrame(rs6, poisonMAC, true, func(ip []byte) { ip[7] = 3 }), rs6, false},
		{"na zero checksum", naFrame(rs6, poisonMAC, false, nil), rs6, false},
		{"na bad checksum", naFrame(rs6, poisonMAC, true, func(ip []byte) { ip[40+2] = 0x55 }), rs6, false},
		{"na hop limit 3 zero checksum", naFrame(rs6, poisonMAC, false, func(ip []byte) { ip[7] = 3 }), rs6, false},
		{"na code 1", naFrame(rs6, poisonMAC, true, func(ip []byte) { ip[41] = 1 }), rs6, false},
		{"na solicited to multicast", naFrame(rs6, poisonMAC, true, func(ip []byte) { ip[44] |= 0x40 }), rs6, false},
		{"na option length 0", naFrame(rs6, poisonMAC, true, nil, 1, 0, 0, 0, 0, 0, 0, 0), rs6, false},
		{"na multicast source", naFrame(rs6, poisonMAC, true, func(ip []byte) { copy(ip[8:24], allNodes6.AsSlice()) }), rs6, false},
		{"na short", naFrame(rs6, poisonMAC, true, func(ip []byte) { binary.BigEndian.PutUint16(ip[4:], 20) }), rs6, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, learnRules, 64)
			h.neigh.Set(rs6, rs6MAC)
			frame := tt.frame
			if frame == nil {
				frame = arpFrame(1, h.vmac, udrtest.RS1, nil)
			}
			before, _ := h.neigh.Lookup(tt.addr)
			v, _ := h.p.Process(frame, epoch)
			after, _ := h.neigh.Lookup(tt.addr)
			switch {
			case tt.learn && after != poisonMAC:
				t.Fatalf("verdict %v: MAC of %s = %x, want %x learnt", v, tt.addr, after, poisonMAC)
			case !tt.learn && after != before:
				t.Fatalf("verdict %v: MAC of %s changed from %x to %x", v, tt.addr, before, after)
			}
		})
	}
}

// TestLearnOnlyRealServers checks that a valid ARP packet from an address
// that is not a real server's teaches nothing.
func TestLearnOnlyRealServers(t *testing.T) {
	h := newHarness(t, learnRules, 64)
	other := netip.MustParseAddr("192.0.2.77")
	h.p.Process(arpFrame(1, poisonMAC, other, nil), epoch)
	if mac, ok := h.neigh.Lookup(other); ok {
		t.Fatalf("%s learnt at %x; it is no real server", other, mac)
	}
}

// TestLearnAllocs checks that validating, learning from and answering
// neighbour messages allocates nothing.
func TestLearnAllocs(t *testing.T) {
	h := newHarness(t, learnRules, 64)
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"na", naFrame(rs6, poisonMAC, true, nil), VerdictNDPIgnored},
		{"arp", arpFrame(1, poisonMAC, udrtest.RS1, nil), VerdictReply},
	} {
		if a := testing.AllocsPerRun(1000, func() {
			n := copy(buf, tc.frame)
			if v, _ := h.p.Process(buf[:n], epoch); v != tc.want {
				t.Fatalf("%s: verdict %v, want %v", tc.name, v, tc.want)
			}
		}); a != 0 {
			t.Errorf("%s: Process allocs = %v, want 0", tc.name, a)
		}
	}
}

// TestLearnHowAndWhen checks what udr status shows of a neighbour: the
// source of its MAC and when it was learnt, and when an answer last
// repeated it (without changing how it was learnt).
func TestLearnHowAndWhen(t *testing.T) {
	h := newHarness(t, learnRules, 64)
	h.neigh.Delete(udrtest.RS1) // the harness gives it statically
	h.neigh.Set(rs6, rs6MAC)
	entry := func(a netip.Addr) NeighborEntry {
		t.Helper()
		for _, e := range h.neigh.Entries() {
			if e.Addr == a {
				return e
			}
		}
		t.Fatalf("%s not in Entries %+v", a, h.neigh.Entries())
		return NeighborEntry{}
	}
	if e := entry(rs6); e.Source != NeighborStatic || e.MAC != rs6MAC {
		t.Errorf("after Set: %+v, want static %x", e, rs6MAC)
	}
	rsMAC := [6]byte{0x02, 0, 0, 0, 0, 0x11}
	h.p.Process(arpFrame(2, rsMAC, udrtest.RS1, nil), epoch)
	later := epoch.Add(5 * time.Second)
	h.p.Process(arpFrame(2, rsMAC, udrtest.RS1, nil), later)
	if e := entry(udrtest.RS1); e.Source != NeighborARP || !e.Learnt.Equal(epoch) || !e.Seen.Equal(later) || e.MAC != rsMAC {
		t.Errorf("after two ARP replies: %+v, want arp %x learnt %v seen %v", e, rsMAC, epoch, later)
	}
	h.neigh.Learn(udrtest.RS1, rsMAC, NeighborKernel, later.Add(time.Second))
	if e := entry(udrtest.RS1); e.Source != NeighborARP || !e.Seen.Equal(later.Add(time.Second)) {
		t.Errorf("the kernel repeating the MAC: %+v, want still arp, seen a second later", e)
	}
	na := later.Add(2 * time.Second)
	h.p.Process(naFrame(rs6, poisonMAC, true, nil), na)
	if e := entry(rs6); e.Source != NeighborNDP || !e.Learnt.Equal(na) || e.MAC != poisonMAC {
		t.Errorf("after an NA with a new MAC: %+v, want ndp %x learnt %v", e, poisonMAC, na)
	}
	h.neigh.Delete(rs6)
	for _, e := range h.neigh.Entries() {
		if e.Addr == rs6 {
			t.Errorf("after Delete: %+v still there", e)
		}
	}
	var s NeighborSource
	for _, name := range []string{"static", "arp", "ndp", "kernel", "state-file"} {
		if err := s.UnmarshalText([]byte(name)); err != nil || s.String() != name {
			t.Errorf("%q read back as %q", name, s)
		}
	}
}
