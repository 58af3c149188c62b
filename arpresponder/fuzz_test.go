package arpresponder

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"

	"github.com/udr-lb/udr/internal/checksum"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed files from the seed tables")

// A fuzzSeed is one seed input, named by the edge case it covers; the name is
// also its file name under testdata/fuzz/<target>/.
type fuzzSeed struct {
	name   string
	tagged bool
	tci    uint16
	fixSum bool // FuzzNDP only: recompute the ICMPv6 checksum first
	in     []byte
}

func arpSeeds(t testing.TB) []fuzzSeed {
	with := func(p arpPacket, f func(*arpPacket)) []byte { f(&p); return p.bytes(t) }
	return []fuzzSeed{
		// The reply path: a plain who-has for a VIP.
		{name: "request_vip", in: request(vip4).bytes(t)},
		// RFC 5227 probe (sender IP 0.0.0.0): replied to with target IP 0.
		{name: "probe_sender_zero", in: with(request(vip4), func(p *arpPacket) { p.spa = zero4 })},
		// Every TCI bit set: the tag is copied verbatim.
		{name: "request_tagged_tci_ffff", tagged: true, tci: 0xffff, in: request(vip4).bytes(t)},
		// A TCI without Present: no tag may appear (found by the fuzzer).
		{name: "request_untagged_with_tci", tci: 34, in: request(vip4).bytes(t)},
		// Ethernet padding after the 28 ARP bytes is ignored.
		{name: "request_padded", in: append(request(vip4).bytes(t), make([]byte, 18)...)},
		// Gratuitous ARP from another host for a VIP: conflict.
		{name: "gratuitous_conflict", in: with(request(vip4), func(p *arpPacket) { p.sha, p.spa = otherMAC, vip4 })},
		// A reply for a VIP's address from a client: no reply to replies.
		{name: "reply_op", in: with(request(vip4), func(p *arpPacket) { p.op = 2 })},
		// One byte short of a whole ARP packet.
		{name: "truncated_27", in: request(vip4).bytes(t)[:27]},
		// Address lengths 255 that would move every offset past the end.
		{name: "lengths_ff", in: func() []byte {
			b := request(vip4).bytes(t)
			b[arpHLen], b[arpPLen] = 0xff, 0xff
			return b
		}()},
		// A group sender MAC: never answered.
		{name: "sender_multicast", in: with(request(vip4), func(p *arpPacket) { p.sha = groupMAC })},
		// Nothing at all.
		{name: "empty", in: []byte{}},
	}
}

func ndpSeeds(t testing.TB) []fuzzSeed {
	with := func(p ndpPacket, f func(*ndpPacket)) []byte { f(&p); return p.bytes(t) }
	edit := func(b []byte, f func([]byte)) []byte { f(b); return b }
	return []fuzzSeed{
		// The reply path: NS to the VIP's solicited-node address.
		{name: "ns_solicited_node", in: ns(vip6).bytes(t)},
		// DAD (source ::): reply to ff02::1 with Solicited clear.
		{name: "ns_dad", in: with(ns(vip6), func(p *ndpPacket) { p.src, p.body = zero6, ndBody(0, vip6, nil) })},
		// Unicast NUD probe without options: reply to the frame source.
		{name: "ns_unicast_no_option", in: with(ns(vip6), func(p *ndpPacket) { p.dst, p.body = vip6, ndBody(0, vip6, nil) })},
		// Every TCI bit set: the tag is copied verbatim.
		{name: "ns_tagged_tci_ffff", tagged: true, tci: 0xffff, in: ns(vip6).bytes(t)},
		// A TCI without Present: no tag may appear (found by the fuzzer).
		{name: "ns_untagged_with_tci", tci: 14, in: ns(vip6).bytes(t)},
		// A broken checksum, and the same packet with it fixed by the target.
		{name: "ns_bad_checksum", in: edit(ns(vip6).bytes(t), func(b []byte) { b[ipv6HdrLen+icmpChecksum] ^= 0xff })},
		{name: "ns_bad_checksum_fixed", fixSum: true, in: edit(ns(vip6).bytes(t), func(b []byte) { b[ipv6HdrLen+icmpChecksum] ^= 0xff })},
		// Forwarded by a router (RFC 4861 7.1.1).
		{name: "ns_hop_limit_64", in: with(ns(vip6), func(p *ndpPacket) { p.hopLimit = 64 })},
		// An option of length 0 would loop forever if not rejected.
		{name: "ns_option_length_zero", in: with(ns(vip6), func(p *ndpPacket) { p.body = ndBody(0, vip6, option(optSourceLLA, 0, nil)) })},
		// An option whose length runs past the payload.
		{name: "ns_option_overrun", in: with(ns(vip6), func(p *ndpPacket) { p.body[len(p.body)-7] = 0xff })},
		// A payload length larger than the packet.
		{name: "ns_payload_length_overrun", in: edit(ns(vip6).bytes(t), func(b []byte) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], 0xffff) })},
		// One byte short of an IPv6 header.
		{name: "ipv6_header_truncated", in: ns(vip6).bytes(t)[:39]},
		// Multicast target (RFC 4861 7.1.1).
		{name: "ns_multicast_target", in: ns(netip.MustParseAddr("ff02::1:ff00:10")).bytes(t)},
		// Another host advertises a VIP: conflict.
		{name: "na_conflict", in: na(vip6, option(optTargetLLA, 1, otherMAC[:])...).bytes(t)},
		// An echo request: not a solicitation.
		{name: "echo_request", in: with(ns(vip6), func(p *ndpPacket) { p.icmpType, p.body = 128, []byte{0, 1, 0, 1} })},
	}
}

// FuzzARPRequest checks that HandleARP never panics, replies exactly when it
// returns ReasonNone, builds the same reply in place over its input, and that
// every reply parses and answers the request per RFC 826.
func FuzzARPRequest(f *testing.F) {
	for _, s := range arpSeeds(f) {
		f.Add(s.tagged, s.tci, s.in)
	}
	r := testResponder()
	f.Fuzz(func(t *testing.T, tagged bool, tci uint16, in []byte) {
		vlan := VLAN{Present: tagged, TCI: tci}
		wantTag := vlan
		if !tagged {
			wantTag.TCI = 0 // without Present the TCI means nothing
		}
		reply, why := r.HandleARP(make([]byte, 0, MaxReplyLen), vlan, clientMAC, in)
		if why >= NumReasons || (reply != nil) != (why == ReasonNone) {
			t.Fatalf("HandleARP = %d bytes, reason %v", len(reply), why)
		}
		if reply == nil {
			return
		}
		eth := ethernetLen(vlan)
		buf := make([]byte, eth+len(in)+MaxReplyLen)
		copy(buf[eth:], in)
		if inPlace, _ := r.HandleARP(buf[:0], vlan, clientMAC, buf[eth:eth+len(in)]); !bytes.Equal(inPlace, reply) {
			t.Fatalf("in-place reply\n% x\nwant\n% x", inPlace, reply)
		}

		req, ok := ParseARP(in)
		if !ok || req.Op != OpRequest || !r.isVIP4(req.TargetIP) {
			t.Fatalf("replied to %+v (ok %v)", req, ok)
		}
		got, ok := ParseARP(reply[eth:])
		want := ARP{Op: OpReply, SenderMAC: vipMAC, SenderIP: req.TargetIP, TargetMAC: req.SenderMAC, TargetIP: req.SenderIP}
		if diff := cmp.Diff(want, got); !ok || diff != "" {
			t.Fatalf("reply (ok %v) (-want +got):\n%s", ok, diff)
		}
		d := decode(t, reply)
		if len(reply) != eth+minPayloadLen || d.vlanTag() != wantTag ||
			[6]byte(d.eth.DstMAC) != req.SenderMAC || [6]byte(d.eth.SrcMAC) != vipMAC {
			t.Fatalf("bad reply frame for vlan %+v:\n% x", vlan, reply)
		}
	})
}

// FuzzNDP checks that HandleNDP never panics, replies exactly when it returns
// ReasonNone, builds the same reply in place over its input, and that every
// reply is a Neighbor Advertisement for a VIP with a valid checksum. With
// fixSum the target first makes the input's ICMPv6 checksum valid, so that
// the fuzzer reaches the checks behind it.
func FuzzNDP(f *testing.F) {
	for _, s := range ndpSeeds(f) {
		f.Add(s.tagged, s.tci, s.fixSum, s.in)
	}
	r := testResponder()
	f.Fuzz(func(t *testing.T, tagged bool, tci uint16, fixSum bool, in []byte) {
		if fixSum && len(in) >= ipv6HdrLen+4 {
			end := min(len(in), ipv6HdrLen+int(binary.BigEndian.Uint16(in[ipv6PayloadLen:])))
			msg := in[ipv6HdrLen:end]
			if len(msg) >= 4 {
				src, dst := [16]byte(in[ipv6Src:]), [16]byte(in[ipv6Dst:])
				binary.BigEndian.PutUint16(msg[icmpChecksum:], 0)
				binary.BigEndian.PutUint16(msg[icmpChecksum:], checksum.Finish(ndSum(&src, &dst, msg)))
			}
		}
		vlan := VLAN{Present: tagged, TCI: tci}
		wantTag := vlan
		if !tagged {
			wantTag.TCI = 0 // without Present the TCI means nothing
		}
		reply, why := r.HandleNDP(make([]byte, 0, MaxReplyLen), vlan, clientMAC, in)
		if why >= NumReasons || (reply != nil) != (why == ReasonNone) {
			t.Fatalf("HandleNDP = %d bytes, reason %v", len(reply), why)
		}
		if reply == nil {
			return
		}
		eth := ethernetLen(vlan)
		buf := make([]byte, eth+len(in)+MaxReplyLen)
		copy(buf[eth:], in)
		if inPlace, _ := r.HandleNDP(buf[:0], vlan, clientMAC, buf[eth:eth+len(in)]); !bytes.Equal(inPlace, reply) {
			t.Fatalf("in-place reply\n% x\nwant\n% x", inPlace, reply)
		}

		d := decode(t, reply)
		if d.ip6 == nil || d.icmp == nil || len(reply) != eth+naReplyLen || d.vlanTag() != wantTag ||
			[6]byte(d.eth.SrcMAC) != vipMAC || d.ip6.HopLimit != ndHopLimit {
			t.Fatalf("bad reply frame for vlan %+v:\n% x", vlan, reply)
		}
		if err := d.icmp.SetNetworkLayerForChecksum(d.ip6); err != nil {
			t.Fatal(err)
		}
		if err, cs := d.icmp.VerifyChecksum(); err != nil || !cs.Valid {
			t.Fatalf("reply checksum invalid (%v):\n% x", err, reply)
		}
		m, err := ndp.ParseMessage(reply[eth+ipv6HdrLen:])
		if err != nil {
			t.Fatalf("ndp.ParseMessage: %v", err)
		}
		adv, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || !r.isVIP6(adv.TargetAddress.As16()) || !adv.Override || adv.Router ||
			addr(t, d.ip6.SrcIP) != adv.TargetAddress {
			t.Fatalf("reply is not an NA from and for a VIP: %+v", m)
		}
	})
}

// TestFuzzSeedFiles checks that testdata/fuzz holds exactly the seed tables,
// so that the committed corpus and the commented seeds cannot drift apart.
// Regenerate with: go test ./arpresponder -run TestFuzzSeedFiles -update-seeds
func TestFuzzSeedFiles(t *testing.T) {
	for target, seeds := range map[string][]fuzzSeed{
		"FuzzARPRequest": arpSeeds(t),
		"FuzzNDP":        ndpSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range seeds {
			want := corpusFile(s, target == "FuzzNDP")
			path := filepath.Join(dir, s.name)
			if *updateSeeds {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("seed %s: %v (run with -update-seeds)", path, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("seed %s differs from the table (run with -update-seeds):\n%s\nwant\n%s", path, got, want)
			}
		}
	}
}

// corpusFile encodes s in the format of go test's fuzz corpus files.
func corpusFile(s fuzzSeed, withFixSum bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "go test fuzz v1\nbool(%v)\nuint16(%d)\n", s.tagged, s.tci)
	if withFixSum {
		fmt.Fprintf(&b, "bool(%v)\n", s.fixSum)
	}
	fmt.Fprintf(&b, "[]byte(%q)\n", s.in)
	return b.Bytes()
}
