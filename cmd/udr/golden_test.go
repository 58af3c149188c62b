package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/service"
)

var update = flag.Bool("update", false, "rewrite testdata/pcaps: inputs from the generator, goldens and outputs from udr replay")

// pcapDir holds every case's files: <case>.in.pcap, .rules and .args
// (from gen_test.go), .golden (udr replay's stdout, then its stderr after a
// "--- stderr" line) and .out.pcap or .out.pcapng (the frames it sent).
const pcapDir = "../../testdata/pcaps"

func (gc goldenCase) outName() string {
	if gc.pcapng {
		return gc.name + ".out.pcapng"
	}
	return gc.name + ".out.pcap"
}

// TestGenerate checks that the generator is deterministic and reproduces
// the committed inputs byte for byte; with -update it writes them.
func TestGenerate(t *testing.T) {
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) { checkInputs(t, gc) })
	}
}

func checkInputs(t *testing.T, gc goldenCase) {
	t.Helper()
	g1, err := generate(gc)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	g2, err := generate(gc)
	if err != nil {
		t.Fatalf("generate again: %v", err)
	}
	if !bytes.Equal(g1.in, g2.in) {
		t.Fatal("the generator wrote different captures on two runs")
	}
	for _, f := range []struct {
		ext  string
		data []byte
	}{{".in.pcap", g1.in}, {".rules", g1.rules}, {".args", g1.args}} {
		path := filepath.Join(pcapDir, gc.name+f.ext)
		if *update {
			if err := os.WriteFile(path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./cmd/udr -update)", err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s differs from what gen_test.go generates (run go test ./cmd/udr -update)", path)
		}
	}
}

// TestGolden runs `udr replay --explain` over every case, as the command
// line does, and compares its output text and capture with the committed
// ones, then checks the capture against the input.
func TestGolden(t *testing.T) {
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			if *update {
				checkInputs(t, gc)
			}
			t.Chdir(pcapDir)
			argsLine, err := os.ReadFile(gc.name + ".args")
			if err != nil {
				t.Fatal(err)
			}
			args := strings.Fields(string(argsLine))
			tmp := t.TempDir()
			text, out := replayCase(t, gc, args, filepath.Join(tmp, gc.outName()))
			text2, out2 := replayCase(t, gc, args, filepath.Join(tmp, "again", gc.outName()))
			if text != text2 || !bytes.Equal(out, out2) {
				t.Fatal("two replays of the same input differ")
			}
			if *update {
				writeFile(t, gc.name+".golden", []byte(text))
				writeFile(t, gc.outName(), out)
			}
			want, err := os.ReadFile(gc.name + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), text); diff != "" {
				t.Errorf("udr replay output differs from %s.golden (-want +got):\n%s", gc.name, diff)
			}
			wantOut, err := os.ReadFile(gc.outName())
			if err != nil {
				t.Fatal(err)
			}
			compareCaptures(t, gc, wantOut, out)

			in := readCapture(t, readFile(t, gc.name+".in.pcap"))
			checkOutput(t, gc, in, readCapture(t, out), explanations(t, text))
			if !gc.handRules {
				checkRulesRoundTrip(t, gc.name+".rules")
			}
		})
	}
}

// replayCase runs the CLI and returns its stdout (with stderr appended
// after a "--- stderr" line) and the capture it wrote.
func replayCase(t *testing.T, gc goldenCase, args []string, out string) (string, []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"udr", "replay", "--rules", gc.name + ".rules", "--in", gc.name + ".in.pcap",
		"--out", out, "--explain"}, args...)
	var stdout, stderr bytes.Buffer
	if code := run(argv, &stdout, &stderr); code != 0 {
		t.Fatalf("%s: exit status %d, stderr:\n%s", strings.Join(argv, " "), code, stderr.String())
	}
	text := stdout.String()
	if stderr.Len() > 0 {
		text += "--- stderr\n" + stderr.String()
	}
	return text, readFile(t, out)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// compareCaptures compares a replay's capture with the committed one: a
// pcap byte for byte; a pcapng record by record (frame, timestamp and
// comments), because its interface block names the OS that wrote it.
func compareCaptures(t *testing.T, gc goldenCase, want, got []byte) {
	t.Helper()
	if !gc.pcapng {
		if !bytes.Equal(want, got) {
			t.Errorf("capture differs from %s", gc.outName())
		}
		return
	}
	if diff := cmp.Diff(readCapture(t, want), readCapture(t, got)); diff != "" {
		t.Errorf("capture differs from %s (-want +got):\n%s", gc.outName(), diff)
	}
}

// record is one frame of a capture, with its pcapng comments.
type record struct {
	TS       time.Time
	Data     []byte
	Comments []string
}

func readCapture(t *testing.T, b []byte) []record {
	t.Helper()
	var recs []record
	if bytes.HasPrefix(b, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		for {
			data, ci, opts, err := r.ReadPacketDataWithOptions()
			if errors.Is(err, io.EOF) {
				return recs
			}
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, record{TS: ci.Timestamp, Data: data, Comments: opts.Comments})
		}
	}
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, record{TS: ci.Timestamp, Data: data})
	}
}

// explanations returns the --explain lines by frame number, and checks
// the summary: every frame was counted once.
func explanations(t *testing.T, text string) map[int]string {
	t.Helper()
	lines := make(map[int]string)
	counts := make(map[string]int)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		num, rest, _ := strings.Cut(sc.Text(), " ")
		if n, err := strconv.Atoi(num); err == nil {
			lines[n] = rest
			continue
		}
		switch num {
		case "frames", "forward", "reply", "drop":
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("summary line %q: %v", sc.Text(), err)
			}
			counts[num] = n
		}
	}
	if counts["frames"] != len(lines) {
		t.Errorf("summary: frames %d, but %d explanation lines", counts["frames"], len(lines))
	}
	if sum := counts["forward"] + counts["reply"] + counts["drop"]; sum != counts["frames"] {
		t.Errorf("summary: forward %d + reply %d + drop %d = %d, want frames %d",
			counts["forward"], counts["reply"], counts["drop"], sum, counts["frames"])
	}
	return lines
}

// checkOutput holds the capture a replay wrote against its input: each
// output frame answers the input frame with its timestamp. A forwarded
// frame is its input with only the MAC addresses changed, to a real
// server's MAC from the director's; every frame of one flow goes to one
// MAC; replies are ARP replies or neighbor advertisements from the VIP
// MAC; pcapng comments are the explanations.
func checkOutput(t *testing.T, gc goldenCase, in, out []record, explain map[int]string) {
	t.Helper()
	byTS := make(map[time.Time]int, len(in))
	for i, r := range in {
		if _, dup := byTS[r.TS]; dup {
			t.Fatalf("input frames %d and %d share timestamp %v", byTS[r.TS]+1, i+1, r.TS)
		}
		byTS[r.TS] = i
	}
	cfg, _, err := admin.ParseRules(bytes.NewReader(readFile(t, gc.name+".rules")), "rules")
	if err != nil {
		t.Fatal(err)
	}
	answered := make(map[int]bool)
	flows := make(map[string][6]byte)
	for _, o := range out {
		i, ok := byTS[o.TS]
		if !ok {
			t.Errorf("output frame at %v answers no input frame", o.TS)
			continue
		}
		n := i + 1
		line := explain[n]
		answered[n] = true
		if gc.pcapng && (len(o.Comments) != 1 || o.Comments[0] != line) {
			t.Errorf("frame %d: pcapng comments %q, want [%q]", n, o.Comments, line)
		}
		src := in[i].Data
		if len(o.Data) == len(src) && bytes.Equal(o.Data[12:], src[12:]) {
			checkForwarded(t, n, o.Data, line, flows)
			continue
		}
		if strings.HasPrefix(line, "no-backend ") {
			checkUnreachable(t, n, src, o.Data, cfg)
			continue
		}
		if !strings.HasPrefix(line, "reply ") {
			t.Errorf("frame %d: output is not the input with new MACs, and the explanation is %q", n, line)
		}
		checkReply(t, n, src, o.Data, cfg)
	}
	for n, line := range explain {
		verdict, _, _ := strings.Cut(line, " ")
		sends := verdict == "forward" || verdict == "reply" ||
			verdict == "no-backend" && strings.HasSuffix(line, ", port unreachable to the client")
		if sends != answered[n] {
			t.Errorf("frame %d: %q, but the output has %d frames for it", n, line, map[bool]int{true: 1}[answered[n]])
		}
	}
}

func checkForwarded(t *testing.T, n int, b []byte, line string, flows map[string][6]byte) {
	t.Helper()
	dst, src := [6]byte(b[0:6]), [6]byte(b[6:12])
	if !strings.HasPrefix(line, "forward ") {
		t.Errorf("frame %d: sent as forwarded, but the explanation is %q", n, line)
	}
	if src != directorMAC {
		t.Errorf("frame %d: source MAC %s, want the director's %s", n, macString(src), macString(directorMAC))
	}
	if !rsMACs[dst] {
		t.Errorf("frame %d: destination MAC %s is no real server's", n, macString(dst))
	}
	// A later fragment's explanation names no server (it has no ports to
	// find one by); every other forward names the server and its MAC.
	if !strings.HasSuffix(line, ", later fragment") && !strings.Contains(line, "("+macString(dst)+")") {
		t.Errorf("frame %d: sent to %s, but the explanation says %q", n, macString(dst), line)
	}
	for _, k := range flowKeys(b) {
		if prev, ok := flows[k]; ok && prev != dst {
			t.Errorf("frame %d: flow %s sent to %s, earlier to %s", n, k, macString(dst), macString(prev))
		}
		flows[k] = dst
	}
}

// flowKeys names the flows a forwarded frame belongs to: its 5-tuple
// (client first); for an ICMP error, the connection of the datagram it
// quotes; for an IPv4 fragment, its datagram.
func flowKeys(b []byte) []string {
	off := 14
	if binary.BigEndian.Uint16(b[12:]) == 0x8100 {
		off += 4
	}
	ip := b[off:]
	tuple := func(proto uint8, src, dst netip.Addr, l4 []byte) string {
		return fmt.Sprintf("%d %v %v", proto,
			netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4)), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:])))
	}
	if ip[0]>>4 == 6 {
		return []string{tuple(ip[6], netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), ip[40:])}
	}
	ihl := int(ip[0]&0x0f) * 4
	src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	proto, l4 := ip[9], ip[ihl:]
	ff := binary.BigEndian.Uint16(ip[6:])
	var keys []string
	if ff&0x3fff != 0 {
		keys = append(keys, fmt.Sprintf("fragments %d %v %v id %#x", proto, src, dst, binary.BigEndian.Uint16(ip[4:])))
		if ff&0x1fff != 0 {
			return keys
		}
	}
	if proto == 1 {
		// The quoted reply goes VIP -> client: the flow is its reverse.
		q := l4[8:]
		qihl := int(q[0]&0x0f) * 4
		qsrc, qdst := netip.AddrFrom4([4]byte(q[12:16])), netip.AddrFrom4([4]byte(q[16:20]))
		p := q[qihl:]
		return append(keys, tuple(q[9], qdst, qsrc, []byte{p[2], p[3], p[0], p[1]}))
	}
	return append(keys, tuple(proto, src, dst, l4))
}

// checkUnreachable checks that icmp is the kernel's answer when no real
// server is available: ICMP port unreachable from the VIP and its MAC to the
// client, quoting the client's datagram.
func checkUnreachable(t *testing.T, n int, request, icmp []byte, cfg *service.Config) {
	t.Helper()
	p := gopacket.NewPacket(icmp, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil || [6]byte(eth.SrcMAC) != arpresponderMAC(cfg) || [6]byte(eth.DstMAC) != [6]byte(request[6:12]) {
		t.Errorf("frame %d: port unreachable not from the VIP MAC to the client: %v", n, p)
		return
	}
	req := gopacket.NewPacket(request, layers.LayerTypeEthernet, gopacket.Default)
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		orig := req.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 3) || !ip.SrcIP.Equal(orig.DstIP) || !ip.DstIP.Equal(orig.SrcIP) ||
			!bytes.Equal(ic.Payload, request[14:14+int(orig.Length)]) {
			t.Errorf("frame %d: not a port unreachable quoting the client's datagram: %v", n, p)
		}
	case *layers.IPv6:
		orig := req.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok || ic.TypeCode != layers.CreateICMPv6TypeCode(1, 4) || !ip.SrcIP.Equal(orig.DstIP) || !ip.DstIP.Equal(orig.SrcIP) {
			t.Errorf("frame %d: not an ICMPv6 port unreachable to the client: %v", n, p)
		}
	default:
		t.Errorf("frame %d: port unreachable is not IP: %v", n, p)
	}
}

// checkReply checks that reply answers request: an ARP reply (RFC 826) or
// a neighbor advertisement (RFC 4861 4.4) for a VIP, from the VIP MAC,
// with the request's VLAN tag.
func checkReply(t *testing.T, n int, request, reply []byte, cfg *service.Config) {
	t.Helper()
	vipMAC := arpresponderMAC(cfg)
	p := gopacket.NewPacket(reply, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Errorf("frame %d: reply does not decode: %v", n, el.Error())
		return
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if [6]byte(eth.SrcMAC) != vipMAC {
		t.Errorf("frame %d: reply from %s, want the VIP MAC %s", n, eth.SrcMAC, macString(vipMAC))
	}
	if [6]byte(eth.DstMAC) != [6]byte(request[6:12]) {
		t.Errorf("frame %d: reply to %s, want the asker %s", n, eth.DstMAC, macString([6]byte(request[6:12])))
	}
	if tagged := binary.BigEndian.Uint16(request[12:]) == 0x8100; tagged {
		q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		if !ok || q.VLANIdentifier != binary.BigEndian.Uint16(request[14:])&0x0fff {
			t.Errorf("frame %d: reply lost the request's VLAN tag", n)
		}
	}
	isVIP := func(a netip.Addr) bool {
		for _, s := range cfg.Services {
			if s.Addr == a {
				return true
			}
		}
		return false
	}
	if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		spa, _ := netip.AddrFromSlice(a.SourceProtAddress)
		if a.Operation != layers.ARPReply || [6]byte(a.SourceHwAddress) != vipMAC || !isVIP(spa) {
			t.Errorf("frame %d: ARP op %d %v is-at %s, want a reply for a VIP from %s",
				n, a.Operation, spa, net6(a.SourceHwAddress), macString(vipMAC))
		}
		return
	}
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok {
		t.Errorf("frame %d: reply is neither ARP nor a neighbor advertisement: %v", n, p)
		return
	}
	target, _ := netip.AddrFromSlice(na.TargetAddress)
	var lla []byte
	for _, o := range na.Options {
		if o.Type == layers.ICMPv6OptTargetAddress {
			lla = o.Data
		}
	}
	if !isVIP(target) || len(lla) != 6 || [6]byte(lla) != vipMAC || !na.Solicited() {
		t.Errorf("frame %d: neighbor advertisement for %v at %s, want a solicited one for a VIP at %s",
			n, target, net6(lla), macString(vipMAC))
	}
}

func net6(b []byte) string {
	if len(b) != 6 {
		return fmt.Sprintf("%x", b)
	}
	return macString([6]byte(b))
}

// checkRulesRoundTrip checks that a case's rules file is exactly what
// ipvsadm -S -n prints for the table it defines.
func checkRulesRoundTrip(t *testing.T, path string) {
	t.Helper()
	b := readFile(t, path)
	cfg, warnings, err := admin.ParseRules(bytes.NewReader(b), path)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%s: %v %q", path, err, warnings)
	}
	var buf bytes.Buffer
	if err := admin.WriteRules(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(b), buf.String()); diff != "" {
		t.Errorf("%s is not in ipvsadm -S -n form (-file +saved):\n%s", path, diff)
	}
}

// arpresponderMAC is the MAC udr replay answers for the VIPs with, by
// default: one for every VIP set.
func arpresponderMAC(*service.Config) [6]byte {
	return arpresponder.VirtualMAC(directorMAC)
}
