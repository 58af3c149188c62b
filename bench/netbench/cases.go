//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ioBackends are the udr I/O backends measured when `udr run` has --io,
// each as a case of its own (udr-<backend>). A new backend is one more
// name here.
var ioBackends = []string{"socket", "ring", "ring-v2"}

// workerCounts are the worker counts measured when `udr run` has
// --workers, each with every backend (udr-<backend>-w<n>).
var workerCounts = []int{1, 2}

// A fwdCase is one way of getting the load to the sinks.
type fwdCase struct {
	name   string
	direct bool // the generator sends to the sinks' MACs (wire)
	// half: each flood is run a second time at half the rate the first
	// reached, to see whether the case loses frames below its maximum.
	half bool
	// start readies the director for the case (nil: nothing to do). It
	// returns the pid of the forwarding process whose CPU time is
	// measured (0 for none) and the function that undoes it.
	start func(ctx context.Context) (pid int, stop func() error, err error)
}

// udrVariant is one udr configuration: a case name and its extra flags.
type udrVariant struct {
	name string
	io   string // its I/O backend; "" when udr has no --io
	args []string
	// trace: udr admin --trace of every frame runs while it is measured.
	trace bool
}

// udrVariants lists the udr cases that binary offers, from the flags of
// `udr run -h`.
func udrVariants(ctx context.Context, binary string) ([]udrVariant, error) {
	out, _ := exec.CommandContext(ctx, binary, "run", "-h").CombinedOutput()
	if !strings.Contains(string(out), "-iface") {
		return nil, fmt.Errorf("%s run -h: no usage text: %s", binary, out)
	}
	has := func(flag string) bool {
		return regexp.MustCompile(`(?m)^\s+-` + flag + `\b`).Match(out)
	}
	ios := []string{""}
	if has("io") {
		ios = ioBackends
	}
	workers := []int{0}
	if has("workers") {
		workers = workerCounts
	}
	var vs []udrVariant
	for _, io := range ios {
		for _, w := range workers {
			v := udrVariant{name: "udr"}
			if io != "" {
				v.io = io
				v.name += "-" + io
				v.args = append(v.args, "--io", io)
			}
			if w != 0 {
				v.name += fmt.Sprintf("-w%d", w)
				v.args = append(v.args, "--workers", strconv.Itoa(w))
			}
			vs = append(vs, v)
		}
	}
	return vs, nil
}

// rules is the udr rules file: the flood's services and the HTTP one,
// direct routing to every sink.
func rules() string {
	var b strings.Builder
	for _, svc := range []string{
		fmt.Sprintf("-u %s:%d", vip, floodPort),
		fmt.Sprintf("-t %s:%d", vip, floodPort),
		fmt.Sprintf("-t %s:%d", vip, httpPort),
	} {
		fmt.Fprintf(&b, "-A %s -s rr\n", svc)
		port := svc[strings.LastIndexByte(svc, ':')+1:]
		for i := range numSinks {
			fmt.Fprintf(&b, "-a %s -r %s:%s -g -w 1\n", svc, sinkAddr(i).Addr(), port)
		}
	}
	return b.String()
}

// halfName is the name of c's run at half its rate.
func halfName(c string) string { return c + " at ½ its rate" }

// wireCase sends straight to the sinks.
func wireCase() fwdCase { return fwdCase{name: "wire", direct: true} }

// kernelDRCase is the kernel's DR path as nftlb builds it: at the
// director's ingress, the destination MAC from a hash of the flow's source
// over the sinks, the director's source MAC, and out again.
func (t *topo) kernelDRCase() fwdCase {
	var m []string
	for i, mac := range t.sinkMACs {
		m = append(m, fmt.Sprintf("%d : %s", i, mac))
	}
	ruleset := fmt.Sprintf(`table netdev kdr {
	chain in {
		type filter hook ingress device "eth0" priority 0;
		ip daddr %s meta l4proto { tcp, udp } th dport { %d, %d } ether saddr set %s ether daddr set jhash ip saddr . th sport mod %d map { %s } fwd to "eth0"
	}
}`, vip, floodPort, httpPort, t.dirMAC, len(t.sinkMACs), strings.Join(m, ", "))
	return fwdCase{name: "kernel-dr", start: func(ctx context.Context) (int, func() error, error) {
		if err := nft(t.dir, ruleset); err != nil {
			return 0, nil, err
		}
		return 0, func() error { return nft(t.dir, "delete table netdev kdr") }, nil
	}}
}

// udrCase runs binary as `udr run` in the director with variant v's flags.
func (t *topo) udrCase(binary, rulesFile string, v udrVariant) fwdCase {
	return fwdCase{name: v.name, half: true, start: func(ctx context.Context) (int, func() error, error) {
		control := "off"
		if v.trace {
			control = filepath.Join(filepath.Dir(rulesFile), "udr.sock")
		}
		args := append([]string{"run", "--iface", "eth0", "--rules", rulesFile, "--vip-mac", "iface",
			"--control", control, "--metrics", "off"}, v.args...)
		cmd := t.dir.Command(binary, args...)
		if t.profileDir != "" {
			// Runs are numbered in the order the progress log shows them.
			n := t.profileSeq[v.name]
			t.profileSeq[v.name]++
			cmd.Env = append(os.Environ(), fmt.Sprintf("UDR_CPUPROFILE=%s/%s-%d.pprof", t.profileDir, v.name, n))
		}
		p, err := start(v.name, cmd)
		if err != nil {
			return 0, nil, err
		}
		// Forwarding starts once udr knows every sink's MAC.
		err = waitFor(ctx, p, "real servers reachable", 15*time.Second, func() bool {
			return strings.Count(p.out.String(), "real server reachable") >= numSinks
		})
		if err != nil {
			p.stop(syscall.SIGTERM)
			return 0, nil, err
		}
		stopTrace := func() error { return nil }
		if v.trace {
			stopTrace = traceAll(binary, control)
		}
		stop := func() error {
			terr := stopTrace()
			out := p.stop(syscall.SIGTERM)
			if p.err != nil {
				return fmt.Errorf("%s: %v: %s", v.name, p.err, lastLines(out, 10))
			}
			return terr
		}
		return p.cmd.Process.Pid, stop, nil
	}}
}

// traceAll runs `udr admin --trace` of every frame against the udr serving
// control, its lines discarded, again each time it ends (at its count of
// 1,000,000 frames) until the function it returns is called, which stops
// it and returns its first failure.
func traceAll(binary, control string) func() error {
	quit, done := make(chan struct{}), make(chan error, 1)
	go func() {
		var first error
		for {
			cmd := exec.Command(binary, "admin", "--control", control, "--trace", "--count", "1000000", "--duration", "10m")
			cmd.Stdout = io.Discard
			p, err := start("trace", cmd)
			if err != nil {
				done <- err
				return
			}
			select {
			case <-quit:
				p.stop(syscall.SIGINT)
				done <- first
				return
			case <-p.done:
				if p.err != nil && first == nil {
					first = fmt.Errorf("udr admin --trace: %v: %s", p.err, lastLines(p.out.String(), 5))
				}
				if first != nil {
					// Not again: a trace that fails fails at once.
					<-quit
					done <- first
					return
				}
			}
		}
	}()
	return func() error {
		close(quit)
		return <-done
	}
}

// rawCase runs the raw forwarder (raw.go) with backend io in the director:
// netbench's own binary, started again as `netbench -raw-forward`, so that
// its CPU time is measured as udr's is. It stops on SIGTERM, and on its own
// after limit, with an error.
func (t *topo) rawCase(io string, limit time.Duration) fwdCase {
	name := "raw-" + io
	return fwdCase{name: name, start: func(ctx context.Context) (int, func() error, error) {
		self, err := os.Executable()
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w", name, err)
		}
		var macs []string
		for _, m := range t.sinkMACs {
			macs = append(macs, m.String())
		}
		p, err := start(name, t.dir.Command(self, rawForwardArg, "-io", io, "-iface", "eth0",
			"-macs", strings.Join(macs, ","), "-limit", limit.String()))
		if err != nil {
			return 0, nil, err
		}
		err = waitFor(ctx, p, "raw forwarder ready", 15*time.Second, func() bool {
			return strings.Contains(p.out.String(), rawReady)
		})
		if err != nil {
			p.stop(syscall.SIGTERM)
			return 0, nil, err
		}
		stop := func() error {
			out := p.stop(syscall.SIGTERM)
			if p.err != nil {
				return fmt.Errorf("%s: %v: %s", name, p.err, lastLines(out, 10))
			}
			return nil
		}
		return p.cmd.Process.Pid, stop, nil
	}}
}

// rawLimit is the raw forwarder's hard time limit for one case: two floods
// (one, and its rerun at half rate should the case get one) with the
// longest waits flood allows (settling, trafgen's start), and slack.
func rawLimit(warm, dur time.Duration) time.Duration {
	return 2*(warm+dur) + 2*time.Minute
}

// haproxyCase runs HAProxy in TCP mode in the director, listening on the
// VIP (on the director's lo for the case) and connecting to the sinks.
func (t *topo) haproxyCase(dir string) fwdCase {
	cfg := filepath.Join(dir, "haproxy.cfg")
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 4096
defaults
	mode tcp
	timeout connect 2s
	timeout client 30s
	timeout server 30s
frontend vip
	bind %s:%d
	default_backend sinks
backend sinks
	balance roundrobin
`, vip, httpPort)
	for i := range numSinks {
		fmt.Fprintf(&b, "\tserver sink%d %s:%d\n", i+1, sinkAddr(i).Addr(), httpPort)
	}
	return fwdCase{name: "haproxy", start: func(ctx context.Context) (int, func() error, error) {
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return 0, nil, err
		}
		vip32 := netip.PrefixFrom(vip, 32)
		if err := t.dir.AddAddrs("lo", vip32); err != nil {
			return 0, nil, err
		}
		unaddr := func() error {
			return t.dir.Command("ip", "addr", "del", vip32.String(), "dev", "lo").Run()
		}
		p, err := start("haproxy", t.dir.Command("haproxy", "-f", cfg, "-db"))
		if err != nil {
			unaddr()
			return 0, nil, err
		}
		err = waitFor(ctx, p, "HAProxy listening", 10*time.Second, func() bool {
			return t.gen.Run(func() error {
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(vip, uint16(httpPort)).String(), time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}) == nil
		})
		if err != nil {
			p.stop(syscall.SIGTERM)
			unaddr()
			return 0, nil, err
		}
		return p.cmd.Process.Pid, func() error {
			p.stop(syscall.SIGTERM)
			return unaddr()
		}, nil
	}}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
