package ipvssync

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/internal/udrtest"
)

// writeSyncPcap writes msgs as IPv4/UDP datagrams from 192.0.2.1 to
// 224.0.0.81:8848, one frame each, into a pcap file in dir.
func writeSyncPcap(t *testing.T, dir string, msgs [][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	eth := udrtest.Eth{Src: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Dst: net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x51}}
	src := netip.MustParseAddrPort("192.0.2.1:40000")
	dst := netip.AddrPortFrom(DefaultGroup, DefaultPort)
	for i, m := range msgs {
		frame := udrtest.UDP(eth, src, dst, m)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 0), CaptureLength: len(frame), Length: len(frame)}
		if err := w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "sync.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tsharkFields are the fields of Wireshark's "ipvs" dissector
// (epan/dissectors/packet-ipvs-syncd.c) that the test compares.
var tsharkFields = []string{
	"ipvs.syncid", "ipvs.size", "ipvs.conncount", "ipvs.version", // headers
	"ipvs.type", "ipvs.proto", "ipvs.size.v1", "ipvs.flags.v1", "ipvs.flags", "ipvs.state",
	"ipvs.cport", "ipvs.vport", "ipvs.dport", "ipvs.fwmark", "ipvs.timeout",
	"ipvs.caddr", "ipvs.vaddr", "ipvs.daddr", "ipvs.caddr6", "ipvs.vaddr6", "ipvs.daddr6",
	"ipvs.in_seq.initial", "ipvs.in_seq.delta", "ipvs.in_seq.pdelta",
	"ipvs.out_seq.initial", "ipvs.out_seq.delta", "ipvs.out_seq.pdelta",
}

// tsharkLine is the line tshark -T fields prints for a message of the
// given version carrying conns, built from the Conn values (not from the
// bytes): fields a version does not have, or that no record has, are
// empty; repeated fields are joined by ",".
func tsharkLine(version int, syncid uint8, size int, conns []Conn, seq string) string {
	vals := map[string][]string{}
	add := func(f, v string) { vals[f] = append(vals[f], v) }
	add("ipvs.syncid", fmt.Sprint(syncid))
	add("ipvs.size", fmt.Sprint(size))
	add("ipvs.conncount", fmt.Sprint(len(conns)))
	if version == 1 {
		add("ipvs.version", "1")
	}
	for _, c := range conns {
		six := ""
		if version == 1 {
			typ, size := "0", ConnLenV4
			if c.Is6() {
				typ, size, six = "1", ConnLenV6, "6"
			}
			add("ipvs.type", typ)
			add("ipvs.size.v1", fmt.Sprint(size))
			add("ipvs.flags.v1", fmt.Sprintf("0x%08x", c.Flags&^FlagHashed))
			add("ipvs.fwmark", fmt.Sprintf("0x%08x", c.Fwmark))
			add("ipvs.timeout", fmt.Sprint(c.Timeout))
		} else {
			add("ipvs.flags", fmt.Sprintf("0x%04x", c.Flags))
		}
		add("ipvs.proto", fmt.Sprintf("0x%02x", c.Protocol))
		add("ipvs.state", fmt.Sprintf("0x%04x", c.State))
		add("ipvs.cport", fmt.Sprint(c.Client.Port()))
		add("ipvs.vport", fmt.Sprint(c.VIP.Port()))
		add("ipvs.dport", fmt.Sprint(c.Dest.Port()))
		add("ipvs.caddr"+six, c.Client.Addr().String())
		add("ipvs.vaddr"+six, c.VIP.Addr().String())
		add("ipvs.daddr"+six, c.Dest.Addr().String())
	}
	if seq != "" {
		for i, v := range strings.Fields(seq) {
			add(tsharkFields[len(tsharkFields)-6+i], v)
		}
	}
	cols := make([]string, len(tsharkFields))
	for i, f := range tsharkFields {
		cols[i] = strings.Join(vals[f], ",")
	}
	return strings.Join(cols, "\t")
}

// TestTshark checks udr's golden messages, and a version 0 message,
// against Wireshark's dissector, which knows both versions.
func TestTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tshark not installed, and CI=true forbids skipping: %v", err)
		}
		t.Skipf("skipping: tshark not installed (apt-get install tshark): %v", err)
	}
	var msgs [][]byte
	var want []string
	for _, g := range goldens() {
		var e Encoder
		e.SyncID = 5
		for i := range g.conns {
			e.Add(&g.conns[i])
		}
		msg := bytes.Clone(e.Flush())
		msgs = append(msgs, msg)
		want = append(want, tsharkLine(1, 5, len(msg), g.conns, ""))
	}
	v0 := unhex(t, v0Message)
	msgs = append(msgs, v0)
	_, v0conns, err := Decode(v0, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, tsharkLine(0, 5, len(v0), v0conns, "0x00000001 0x00000002 0x00000003 0x00000004 0x00000005 0x00000006"))

	p := writeSyncPcap(t, t.TempDir(), msgs)
	args := []string{"-r", p, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(got), len(want), out)
	}
	names := []string{}
	for _, g := range goldens() {
		names = append(names, g.name)
	}
	names = append(names, "v0")
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: tshark decoded\n%q\nwant\n%q\n(fields %v)", names[i], got[i], want[i], tsharkFields)
		}
	}
}
