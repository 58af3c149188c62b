//go:build linux

package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedNetbench runs the whole harness in a very short mode and
// checks that every case of every mode carried load to the sinks: it fails
// when the harness is broken, never on a figure.
func TestPrivilegedNetbench(t *testing.T) {
	netlab.Privileged(t)
	if miss := missingTools(modes); len(miss) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("missing %v under CI=true", miss)
		}
		t.Skipf("missing %v (apt-get install -y netsniff-ng nftables wrk nginx-light haproxy)", miss)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The warm-up covers a forwarder's first frames, slow on a loaded
	// machine (its memory is touched for the first time): with 100 ms, at
	// a load average of 15-20 on 2 cores, udr cases often forwarded
	// nothing in their window.
	res, err := bench(ctx, options{reps: 1, dur: 300 * time.Millisecond, warm: 500 * time.Millisecond, mode: "all", flows: 10240, command: "test", log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	table := res.table()
	t.Log("\n" + table)
	if len(res.floodCases) < 3 || res.floodCases[0] != "wire" || res.floodCases[1] != "kernel-dr" || !strings.HasPrefix(res.floodCases[2], "raw-") {
		t.Errorf("flood cases %v: want wire, kernel-dr, then the raw and udr ones", res.floodCases)
	}
	// A raw case per backend, right before the udr cases of its backend,
	// and in no HTTP run.
	for _, io := range ioBackends {
		raw := "raw-" + io
		i := slices.Index(res.floodCases, raw)
		if i < 0 || i+1 >= len(res.floodCases) || !strings.HasPrefix(res.floodCases[i+1], "udr-"+io+"-w") {
			t.Errorf("flood cases %v: want %s right before udr-%s-w*", res.floodCases, raw, io)
		}
		if slices.Contains(res.httpCases, raw) {
			t.Errorf("http cases %v: want no %s", res.httpCases, raw)
		}
		if res.rawOf["udr-"+io+"-w1"] != raw {
			t.Errorf("udr-%s-w1 is not compared with %s: %v", io, raw, res.rawOf)
		}
	}
	for _, m := range []string{"udp", "tcp"} {
		for _, c := range res.floodCases {
			ss := res.flood[m][c]
			if len(ss) != 1 {
				t.Errorf("%s %s: %d samples, want 1", m, c, len(ss))
				continue
			}
			if s := ss[0]; s.sent == 0 || s.recv == 0 || s.secs <= 0 || s.busy <= 0 {
				t.Errorf("%s %s: %+v: nothing forwarded or measured", m, c, s)
			}
			if len(ss[0].perSink) != numSinks || slices.Contains(ss[0].perSink, 0) {
				t.Errorf("%s %s: frames per sink %v: every sink should get some", m, c, ss[0].perSink)
			}
			// At half rate, a forwarder may use less than the one tick
			// (10 ms) /proc counts in: only full speed is checked.
			if (strings.HasPrefix(c, "udr") || strings.HasPrefix(c, "raw")) && !strings.HasSuffix(c, halfName("")) && ss[0].fwdCPU <= 0 {
				t.Errorf("%s %s: the forwarder's CPU time not measured", m, c)
			}
			if !strings.Contains(table, "| "+c+" |") {
				t.Errorf("the table has no row for %s", c)
			}
		}
	}
	for _, p := range pages {
		for _, c := range res.httpCases {
			ss := res.http[p.name][c]
			// wrk rounds the bytes it read to three digits.
			if len(ss) != 1 || ss[0].requests == 0 || ss[0].bytes < 0.99*ss[0].requests*float64(p.size) {
				t.Errorf("http %s %s: %+v: no complete answers", p.path, c, ss)
			}
		}
	}
	if left := netlab.Leftovers(res.labPrefix); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 2s test @ http://192.0.2.100:80/small.html
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.95ms    1.01ms  17.27ms   83.01%
    Req/Sec     8.02k   612.34     9.01k    70.00%
  31102 requests in 2.00s, 25.19MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15551.00
Transfer/sec:     12.59MB
`
	s, err := parseWrk(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.requests != 31102 || s.secs != 2 || s.bytes != 25.19*(1<<20) || s.errors != 7 {
		t.Errorf("parseWrk: %+v", s)
	}
	if _, err := parseWrk("unable to connect to 192.0.2.100:80 Connection refused\n", nil); err == nil {
		t.Error("parseWrk accepted output without a summary")
	}
}

func TestWriteReadme(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "README.md")
	os.WriteFile(path, []byte("# title\n\ntext\n"), 0o644)
	if err := writeReadme(dir, "README.md", "table one\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeReadme(dir, "README.md", "table two\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	if strings.Contains(got, "table one") || strings.Count(got, "table two") != 1 || strings.Count(got, beginMarker) != 1 ||
		!strings.HasPrefix(got, "# title\n\ntext\n\n## ") || !strings.HasSuffix(got, "table two\n"+endMarker+"\n") {
		t.Errorf("README after two writes:\n%s", got)
	}
}

func TestFrameChecksums(t *testing.T) {
	frames := append(floodFrames("udp", 3, make(net.HardwareAddr, 6), func(int) net.HardwareAddr { return make(net.HardwareAddr, 6) }),
		floodFrames("tcp", 3, make(net.HardwareAddr, 6), func(int) net.HardwareAddr { return make(net.HardwareAddr, 6) })...)
	if len(frames) != 9 {
		t.Fatalf("%d frames, want 3 udp and 6 tcp", len(frames))
	}
	for i, f := range frames {
		if len(f) != 60 {
			t.Errorf("frame %d: %d bytes, want 60", i, len(f))
		}
		if !checksum.IPv4HeaderValid(f[14:34]) {
			t.Errorf("frame %d: the IPv4 header checksum does not verify", i)
		}
		l4len := int(f[16])<<8 | int(f[17]) - 20
		if !checksum.Valid(checksum.Add(checksum.Pseudo(f[26:30], f[30:34], f[23], l4len), f[34:34+l4len])) {
			t.Errorf("frame %d: the transport checksum does not verify", i)
		}
	}
}

// TestUDRVariants checks the discovery of udr's I/O backends and worker
// counts from the usage text of `udr run -h`.
func TestUDRVariants(t *testing.T) {
	usage := func(flags string) string {
		bin := filepath.Join(t.TempDir(), "udr")
		os.WriteFile(bin, []byte("#!/bin/sh\ncat >&2 <<'EOF'\nUsage of udr run:\n  -iface interface\n    \tthe interface\n"+flags+"EOF\nexit 2\n"), 0o755)
		return bin
	}
	names := func(bin string) string {
		vs, err := udrVariants(context.Background(), bin)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, v := range vs {
			n = append(n, v.name+strings.Join(append([]string{""}, v.args...), " "))
		}
		return strings.Join(n, "; ")
	}
	if got, want := names(usage("")), "udr"; got != want {
		t.Errorf("no --io, no --workers: %q, want %q", got, want)
	}
	if got, want := names(usage("  -io string\n    \tbackend (default \"auto\")\n")), "udr-socket --io socket; udr-ring --io ring; udr-ring-v2 --io ring-v2"; got != want {
		t.Errorf("--io: %q, want %q", got, want)
	}
	if got, want := names(usage("  -io string\n  -workers int\n")),
		"udr-socket-w1 --io socket --workers 1; udr-socket-w2 --io socket --workers 2; udr-ring-w1 --io ring --workers 1; udr-ring-w2 --io ring --workers 2; udr-ring-v2-w1 --io ring-v2 --workers 1; udr-ring-v2-w2 --io ring-v2 --workers 2"; got != want {
		t.Errorf("--io and --workers: %q, want %q", got, want)
	}
	if got, want := names(usage("  -iomode string\n")), "udr"; got != want {
		t.Errorf("a flag that only starts with io: %q, want %q", got, want)
	}
}
