//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// traceLine is a line of udr admin --trace about the lab client's
// connection: time, client port, flags, and the rest of the explanation.
var traceLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} (forward TCP 192\.0\.2\.50:(\d+) -> 192\.0\.2\.100:80 \[([^\]]+)\]: service -t 192\.0\.2\.100:80 wrr, (new|existing) connection -> (192\.0\.2\.1[12]:80) \(([0-9a-f:]+)\) .*)$`)

// TestPrivilegedTrace traces a live connection, from its SYN to its FIN,
// with udr admin --trace against a running udr: one line per frame of the
// client's, the first a new connection and the others on the same real
// server, and the capture of --write holds the same frames (as forwarded,
// to the server's MAC) with each line as the packet's comment, for
// gopacket's reader and for tshark. A second trace meanwhile is refused,
// and a bad filter is named before anything is asked.
func TestPrivilegedTrace(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "trace")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(walkthroughRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock)

	if r := d.admin(t, nil, "--trace", "client", "192.0.2.50", "vips", "192.0.2.100"); r.code != 2 || !strings.Contains(r.stderr, `unknown word "vips"`) {
		t.Errorf("a bad filter: exit %d, stderr %q; want 2 and the word named", r.code, r.stderr)
	}

	// The first requests wait for the servers' MACs: the traced one does not.
	client := drlab.HTTPClient(lab.Client, commandTimeout)
	waitUntil(t, "a GET through the VIP", daemonEventTimeout, func() bool {
		_, err := drlab.Get(client, "http://192.0.2.100/")
		return err == nil
	})

	pcap := filepath.Join(bin.dir, "trace.pcapng")
	stdout, stderr := newLineLog(), newLineLog()
	tr := exec.Command(bin.exe, "admin", "--control", sock, "--trace", "--count", "1000", "--duration", "60s",
		"--write", pcap, "client", "192.0.2.50", "vip", "192.0.2.100")
	tr.Stdout, tr.Stderr = stdout, stderr
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var trErr error
	go func() { trErr = tr.Wait(); close(exited) }()
	t.Cleanup(func() {
		tr.Process.Kill()
		<-exited
	})
	if _, err := stderr.wait(0, "udr: tracing client 192.0.2.50 vip 192.0.2.100", daemonEventTimeout, exited); err != nil {
		t.Fatalf("udr admin --trace: %v; stderr:\n%s", err, stderr)
	}
	if r := d.admin(t, nil, "--trace", "--count", "1"); r.code != 1 || !strings.Contains(r.stderr, "a trace is already running") {
		t.Errorf("a second trace: exit %d, stderr %q; want 1 and a trace already running", r.code, r.stderr)
	}

	body, err := drlab.Get(client, "http://192.0.2.100/")
	if err != nil {
		t.Fatalf("GET through the VIP: %v", err)
	}
	// The client closes after the answer: its FIN goes through udr.
	if _, err := stdout.wait(0, "[.F]", daemonEventTimeout, exited); err != nil {
		t.Fatalf("no FIN traced: %v; stdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	tr.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(daemonStopTimeout):
		t.Fatalf("udr admin --trace did not end within %v of SIGINT", daemonStopTimeout)
	}
	if trErr != nil {
		t.Fatalf("udr admin --trace: %v; stderr:\n%s", trErr, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if !strings.Contains(stderr.String(), "udr: trace: "+strconv.Itoa(len(lines))+" frames, 0 skipped") {
		t.Errorf("stderr %q: want the count of %d frames, 0 skipped", stderr.String(), len(lines))
	}

	// SYN, the request, ACKs, FIN: every frame of the client's, on the
	// server that answered.
	// A late frame of the connection made before the trace (its last
	// ACK) may come first: the traced connection is the one whose SYN the
	// trace saw, and every line is about it but such frames.
	var explained []string
	var ports, macs []string
	var port, server, mac string
	var conn []string // the lines of the traced connection
	for i, l := range lines {
		m := traceLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %d %q: not a traced frame of the client's connections; all:\n%s", i, l, stdout)
		}
		explained, ports, macs = append(explained, m[1]), append(ports, m[2]), append(macs, m[6])
		switch {
		case port == "" && m[3] == "S" && m[4] == "new":
			port, server, mac = m[2], m[5], m[6]
		case port == "" && m[4] == "existing":
			t.Logf("line %d %q: a frame of an earlier connection", i, l)
			continue
		case port == "":
			t.Errorf("line %d %q: want the SYN of a new connection", i, l)
		case m[2] != port || m[4] != "existing" || m[5] != server || m[6] != mac:
			t.Errorf("line %d %q: want port %s's existing connection on %s (%s)", i, l, port, server, mac)
		}
		conn = append(conn, l)
	}
	if len(conn) < 4 {
		t.Fatalf("%d lines of the connection, want at least SYN, ACK, request, FIN:\n%s", len(conn), stdout)
	}
	if last := conn[len(conn)-1]; !strings.Contains(last, "[.F]") {
		t.Errorf("last line %q: want the FIN", last)
	}
	if want := map[string]string{"192.0.2.11:80": "rs1", "192.0.2.12:80": "rs2"}[server]; body != want {
		t.Errorf("the answer came from %q, the trace says %s", body, server)
	}

	// The capture: the same frames, as forwarded, with the lines as comments.
	f, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ng, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("read %s: %v", pcap, err)
	}
	for i := 0; ; i++ {
		data, ci, opts, err := ng.ReadPacketDataWithOptions()
		if err != nil {
			if i != len(explained) {
				t.Errorf("capture: %d packets (%v), want %d", i, err, len(explained))
			}
			break
		}
		if i >= len(explained) {
			t.Errorf("capture: more packets than lines")
			break
		}
		if len(opts.Comments) != 1 || opts.Comments[0] != explained[i] {
			t.Errorf("packet %d: comments %q, want %q", i, opts.Comments, explained[i])
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if eth == nil || tcp == nil || eth.DstMAC.String() != macs[i] || strconv.Itoa(int(tcp.SrcPort)) != ports[i] || tcp.DstPort != 80 || ci.Length != len(data) {
			t.Errorf("packet %d: %v; want a frame to %s from port %s, whole", i, p, macs[i], ports[i])
		}
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.Command("tcpdump", "-r", pcap, "-nn").Output()
		if n := strings.Count(string(out), " > 192.0.2.100.80: Flags"); err != nil || n != len(explained) {
			t.Errorf("tcpdump -r %s: %v, %d packets of the connection, want %d:\n%s", pcap, err, n, len(explained), out)
		}
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tshark is not installed (.ci/run installs it), the capture's comments are unchecked: %v", err)
		}
		t.Log("tshark not installed: the capture is read by gopacket only")
		return
	}
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "frame.comment").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", pcap, err)
	}
	if got := strings.Split(strings.TrimRight(string(out), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(explained, "\n") {
		t.Errorf("tshark's frame.comment:\n%s\nwant:\n%s", out, strings.Join(explained, "\n"))
	}
}
