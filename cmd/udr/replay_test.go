package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/service"
)

// TestReplayUsageErrors checks that a bad command line or a bad file ends
// udr replay with exit status 2 and a message that names the problem.
func TestReplayUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rules := write("good.rules", rulesHTTP)
	badRules := write("bad.rules", "-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 70000\n")
	in := filepath.Join(pcapDir, "walkthrough_rr.in.pcap")
	text := write("notes.txt", "not a capture, just some text\n")
	empty := write("empty.pcap", "")
	out := filepath.Join(dir, "out.pcap")

	for _, tt := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"missing --rules", []string{"--in", in, "--mac", "02:00:00:00:00:02"}, "udr: replay: --rules is required"},
		{"missing --in", []string{"--rules", rules, "--mac", "02:00:00:00:00:02"}, "udr: replay: --in is required"},
		{"missing --mac", []string{"--rules", rules, "--in", in}, "udr: replay: --mac is required"},
		{"bad --mac", []string{"--rules", rules, "--in", in, "--mac", "02:00:00:00:02"}, `--mac "02:00:00:00:02": not an Ethernet MAC address`},
		{"bad --vip-mac", []string{"--rules", rules, "--in", in, "--mac", "02:00:00:00:00:02", "--vip-mac", "vip"}, `--vip-mac "vip": not an Ethernet MAC address`},
		{"bad --neigh", []string{"--rules", rules, "--in", in, "--mac", "02:00:00:00:00:02", "--neigh", "192.0.2.11"}, `"192.0.2.11": want RIP=MAC`},
		{"unknown flag", []string{"--rules", rules, "--in", in, "--mac", "02:00:00:00:00:02", "--bogus"}, "flag provided but not defined: -bogus"},
		{"extra argument", []string{"--rules", rules, "--in", in, "--mac", "02:00:00:00:00:02", "more"}, `unexpected argument "more"`},
		{"unreadable input", []string{"--rules", rules, "--in", filepath.Join(dir, "missing.pcap"), "--mac", "02:00:00:00:00:02"}, "missing.pcap: no such file or directory"},
		{"input not a capture", []string{"--rules", rules, "--in", text, "--mac", "02:00:00:00:00:02", "--out", out}, "notes.txt: pcap: "},
		{"empty input", []string{"--rules", rules, "--in", empty, "--mac", "02:00:00:00:00:02"}, "empty.pcap: read capture header: EOF"},
		{"missing rules file", []string{"--rules", filepath.Join(dir, "none.rules"), "--in", in, "--mac", "02:00:00:00:00:02"}, "none.rules: no such file or directory"},
		{"rules with an error", []string{"--rules", badRules, "--in", in, "--mac", "02:00:00:00:00:02"},
			"bad.rules:2: -a -t 192.0.2.100:80 -r 192.0.2.11:80: illegal weight specified"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"udr", "replay"}, tt.args...), &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

// worker drives a forwarder.Pipeline directly, for what a replay of one
// static rules file cannot show: a configuration that changes while
// connections are open, and a tiny connection table.
type worker struct {
	cur   atomic.Pointer[forwarder.Table]
	p     *forwarder.Pipeline
	reg   *dest.Registry
	neigh *forwarder.Neighbors
	opts  forwarder.Options
	c     *genCapture
}

func parseRulesText(t *testing.T, text string) *service.Config {
	t.Helper()
	cfg, _, err := admin.ParseRules(strings.NewReader(text), "rules")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newWorker(t *testing.T, rules string, capacity int) *worker {
	t.Helper()
	cfg := parseRulesText(t, rules)
	w := &worker{reg: dest.NewRegistry(64), neigh: forwarder.NewNeighbors(64)}
	w.neigh.Set(rs1, rs1MAC)
	w.neigh.Set(rs2, rs2MAC)
	w.opts = forwarder.Options{IfMAC: directorMAC, VIPMAC: arpresponder.VirtualMAC(directorMAC)}
	tab, err := forwarder.Compile(cfg, w.reg, w.neigh, nil, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	w.cur.Store(tab)
	conns := conntrack.New(capacity, w.reg, conntrack.Options{Seed: 1})
	w.p = forwarder.NewPipeline(forwarder.PipelineConfig{Table: &w.cur, Conns: conns, Neighbors: w.neigh, Registry: w.reg, Epoch: captureStart})
	w.c = newCapture(w.opts.VIPMAC)
	return w
}

// reload compiles rules over the running table and swaps it in, as the
// control plane does.
func (w *worker) reload(t *testing.T, rules string) {
	t.Helper()
	tab, err := forwarder.Compile(parseRulesText(t, rules), w.reg, w.neigh, w.cur.Load(), w.opts)
	if err != nil {
		t.Fatal(err)
	}
	w.cur.Store(tab)
}

// step is one frame to the pipeline, or a reload before it.
type step struct {
	reload string // rules to load before the frame; "" for none
	frame  func(c *genCapture) []byte
	want   string // the verdict, and the MAC for a forward
}

func (w *worker) run(t *testing.T, steps []step) {
	t.Helper()
	var want, got []string
	for _, s := range steps {
		if s.reload != "" {
			w.reload(t, s.reload)
		}
		v, out := w.p.Process(s.frame(w.c), w.c.now)
		w.c.pause(time.Second)
		res := v.String()
		if v == forwarder.VerdictForward {
			res += " " + macString([6]byte(out[0:6]))
		}
		want, got = append(want, s.want), append(got, res)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// tcpStep is a TCP segment from client port i to VIP:80.
func tcpStep(i int, flags string, want string) step {
	return step{want: want, frame: func(c *genCapture) []byte {
		return c.tcpFrame(c.toVIP(clientMAC), clientPort(client, i), vip80, seg{flags: flags, seq: isn(i) + 1, ack: serverISN + 1})
	}}
}

const rulesRS1Quiesced = "-A -t 192.0.2.100:80 -s rr\n" +
	"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 0\n" +
	"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"

// TestQuiesceMidStream: IPVS.md 2.8, weight 0 stops new connections to a
// real server while its open connections go on to it.
func TestQuiesceMidStream(t *testing.T) {
	w := newWorker(t, rulesHTTP, 1024)
	quiesce := tcpStep(1, "A", "forward 02:00:00:00:00:11")
	quiesce.reload = rulesRS1Quiesced
	w.run(t, []step{
		tcpStep(0, "S", "forward 02:00:00:00:00:12"), // rr from the head of [rs2, rs1]
		tcpStep(1, "S", "forward 02:00:00:00:00:11"),
		quiesce, // rs1 now has weight 0: its connection goes on
		tcpStep(1, "PA", "forward 02:00:00:00:00:11"),
		tcpStep(2, "S", "forward 02:00:00:00:00:12"), // new ones go to rs2 only
		tcpStep(3, "S", "forward 02:00:00:00:00:12"),
		tcpStep(0, "A", "forward 02:00:00:00:00:12"),
		tcpStep(1, "FA", "forward 02:00:00:00:00:11"),
		// conn_reuse_mode 1: a SYN on the FIN_WAIT entry is not
		// rescheduled (IPVS.md 2.7), so it still goes to rs1.
		tcpStep(1, "S", "forward 02:00:00:00:00:11"),
	})
}

// TestDestRemoved: IPVS.md 2.9, with expire_nodest_conn=0 the packets of
// a connection whose real server was deleted are dropped, ICMP errors
// about it too, while new connections go to the servers left.
func TestDestRemoved(t *testing.T) {
	w := newWorker(t, rulesHTTP, 1024)
	removed := tcpStep(1, "A", "dest-removed")
	removed.reload = "-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"
	fragNeeded := layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded)
	w.run(t, []step{
		tcpStep(0, "S", "forward 02:00:00:00:00:12"),
		tcpStep(1, "S", "forward 02:00:00:00:00:11"),
		removed,                         // rs1 deleted
		tcpStep(1, "S", "dest-removed"), // a SYN on an ESTABLISHED entry is not rescheduled
		{want: "dest-removed", frame: func(c *genCapture) []byte {
			typ, ip := c.ip(routerIP, vip, layers.IPProtocolICMPv4)
			return build(c.toVIP(routerMAC), typ, ip.(gopacket.SerializableLayer), &layers.ICMPv4{TypeCode: fragNeeded, Seq: 1400},
				gopacket.Payload(replyHeader(vip80, clientPort(client, 1))))
		}},
		tcpStep(0, "PA", "forward 02:00:00:00:00:12"),
		tcpStep(2, "S", "forward 02:00:00:00:00:12"),
	})
}

// TestTableFull: a full table evicts a half-open connection for a new
// one (conntrack's drop_entry model); it refuses a new connection only
// when everything in reach is a template that controls connections.
func TestTableFull(t *testing.T) {
	t.Run("evicts", func(t *testing.T) {
		w := newWorker(t, rulesHTTP, 1)
		w.run(t, []step{
			tcpStep(0, "S", "forward 02:00:00:00:00:12"),
			tcpStep(1, "S", "forward 02:00:00:00:00:11"), // takes the slot of connection 0 (SYN_RECV)
			tcpStep(0, "A", "no-conn"),
			tcpStep(1, "A", "forward 02:00:00:00:00:11"),
		})
	})
	t.Run("full", func(t *testing.T) {
		// The template takes the only slot and, controlling the new
		// connection, cannot be evicted for it.
		w := newWorker(t, "-A -t 192.0.2.100:80 -s rr -p 300\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n", 1)
		w.run(t, []step{tcpStep(0, "S", "table-full"), tcpStep(0, "A", "no-conn")})
	})
}
