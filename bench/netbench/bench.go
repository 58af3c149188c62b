//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// options are netbench's settings.
type options struct {
	reps    int
	dur     time.Duration
	warm    time.Duration // of each flood, before the measurement
	mode    string
	short   bool
	flows   int
	udr     string
	readme  string
	profile string    // directory for udr's CPU profiles; "" for none
	trace   bool      // add a case with a trace of every frame per udr case
	command string    // the command line, for the table
	log     io.Writer // progress
}

// modes are the modes in the order they run; "all" is every one.
var modes = []string{"udp", "tcp", "http"}

// results holds every sample of a run, by mode (or page) and case, one per
// repetition.
type results struct {
	o          options
	root       string // the module's root directory
	labPrefix  string // the names of the lab's namespaces start with it
	start, end time.Time
	load       [2]string // /proc/loadavg's first three fields at the start and the end
	modes      []string
	floodCases []string
	httpCases  []string
	rawOf      map[string]string                   // flood case → the raw case of its backend, if it ran
	flood      map[string]map[string][]floodSample // mode → case → repetitions
	http       map[string]map[string][]httpSample  // page → case → repetitions
}

// tools are the programs each mode needs.
var tools = map[string][]string{
	"udp":  {"trafgen", "nft", "ip"},
	"tcp":  {"trafgen", "nft", "ip"},
	"http": {"wrk", "nginx", "haproxy", "nft", "ip"},
}

// parseModes turns -mode into the list of modes to run.
func parseModes(s string) ([]string, error) {
	if s == "all" {
		return modes, nil
	}
	var ms []string
	for _, m := range strings.Split(s, ",") {
		if !slices.Contains(modes, m) {
			return nil, fmt.Errorf("-mode %q: want udp, tcp, http, all, or a comma-separated list", s)
		}
		if !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// missingTools returns the programs ms need that are not installed.
func missingTools(ms []string) []string {
	var miss []string
	for _, m := range ms {
		for _, t := range tools[m] {
			if _, err := exec.LookPath(t); err != nil && !slices.Contains(miss, t) {
				miss = append(miss, t)
			}
		}
	}
	return miss
}

// bench builds the lab, runs every case of every mode o.reps times,
// interleaved, and removes the lab.
func bench(ctx context.Context, o options) (res *results, err error) {
	ms, err := parseModes(o.mode)
	if err != nil {
		return nil, err
	}
	if o.reps < 1 || o.dur < 100*time.Millisecond {
		return nil, fmt.Errorf("want -reps ≥ 1 and -dur ≥ 100ms, have %d and %v", o.reps, o.dur)
	}
	if o.flows < 1 || o.flows > maxFlows {
		return nil, fmt.Errorf("-flows %d: want 1..%d", o.flows, maxFlows)
	}
	if miss := missingTools(ms); len(miss) > 0 {
		return nil, fmt.Errorf("missing %s (apt-get install -y netsniff-ng nftables wrk nginx-light haproxy)", strings.Join(miss, ", "))
	}
	res = &results{o: o, modes: ms, start: time.Now(), load: [2]string{loadavg(), ""},
		flood: map[string]map[string][]floodSample{}, http: map[string]map[string][]httpSample{}}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return nil, fmt.Errorf("find the module root (go env GOMOD): %v", err)
	}
	res.root = filepath.Dir(strings.TrimSpace(string(gomod)))
	tmp, err := os.MkdirTemp("", "netbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755) // nginx reads its pages from here

	binary := o.udr
	if binary == "" {
		binary = filepath.Join(tmp, "udr")
		fmt.Fprintln(o.log, "netbench: go build ./cmd/udr")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd/udr")
		cmd.Dir = res.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/udr: %v: %s", err, out)
		}
	}
	variants, err := udrVariants(ctx, binary)
	if err != nil {
		return nil, err
	}
	rulesFile := filepath.Join(tmp, "rules")
	if err := os.WriteFile(rulesFile, []byte(rules()), 0o644); err != nil {
		return nil, err
	}

	t, err := newTopo()
	if t != nil {
		res.labPrefix = t.lab.Prefix()
		defer func() {
			if cerr := t.lab.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("remove the lab: %w", cerr))
			}
		}()
	}
	if err != nil {
		return nil, fmt.Errorf("build the lab: %w", err)
	}

	t.profileDir, t.profileSeq = o.profile, make(map[string]int)
	var floodCases, httpCases []fwdCase
	floodCases = append(floodCases, wireCase(), t.kernelDRCase())
	httpCases = append(httpCases, t.kernelDRCase())
	// Each raw case (floods only) comes right before the udr cases of its
	// backend.
	raws, rawLim := rawIOs(o.short), rawLimit(o.warm, o.dur)
	res.rawOf = map[string]string{}
	addRaw := func(io string) {
		name := "raw-" + io
		if !slices.Contains(raws, io) || res.rawOf[name] != "" {
			return
		}
		res.rawOf[name] = name
		floodCases = append(floodCases, t.rawCase(io, rawLim))
	}
	if o.trace {
		var traced []udrVariant
		for _, v := range variants {
			tv := v
			tv.name, tv.trace = v.name+"+trace", true
			traced = append(traced, v, tv)
		}
		variants = traced
	}
	for _, v := range variants {
		addRaw(v.io)
		if slices.Contains(raws, v.io) {
			res.rawOf[v.name] = "raw-" + v.io
		}
		floodCases = append(floodCases, t.udrCase(binary, rulesFile, v))
		httpCases = append(httpCases, t.udrCase(binary, rulesFile, v))
	}
	for _, io := range raws {
		addRaw(io) // a udr without --io: after its case
	}
	httpCases = append(httpCases, t.haproxyCase(tmp))
	for _, c := range floodCases {
		res.floodCases = append(res.floodCases, c.name)
		if c.half {
			res.floodCases = append(res.floodCases, halfName(c.name))
		}
	}
	for _, c := range httpCases {
		res.httpCases = append(res.httpCases, c.name)
	}

	// The floods' trafgen configurations: to the sinks (wire, one sink
	// after the other) and to the director.
	configs := map[string][2]floodConfig{}
	for _, m := range ms {
		if m == "http" {
			continue
		}
		var fl [2]floodConfig
		for i, dst := range []func(int) net.HardwareAddr{
			func(f int) net.HardwareAddr { return t.sinkMACs[f%len(t.sinkMACs)] },
			func(int) net.HardwareAddr { return t.dirMAC },
		} {
			fl[i] = floodConfig{frames: floodFrames(m, o.flows, t.genMAC, dst), trafgen: filepath.Join(tmp, fmt.Sprintf("%s-%d.cfg", m, i))}
			if err := writeTrafgen(fl[i].trafgen, fl[i].frames); err != nil {
				return nil, err
			}
		}
		configs[m] = fl
		res.flood[m] = map[string][]floodSample{}
	}
	if slices.Contains(ms, "http") {
		stop, err := t.startNginx(ctx, tmp)
		if err != nil {
			return nil, err
		}
		defer stop()
		for _, p := range pages {
			res.http[p.name] = map[string][]httpSample{}
		}
	}

	for rep := 1; rep <= o.reps; rep++ {
		for _, m := range ms {
			if m == "http" {
				for _, c := range httpCases {
					err := runCase(ctx, c, func(int) error {
						for _, p := range pages {
							s, err := t.wrk(ctx, p.path, o.dur)
							if err != nil {
								return err
							}
							fmt.Fprintf(o.log, "netbench: rep %d http %s %s: %.0f req/s, %.1f MiB/s, %d errors\n", rep, p.path, c.name, s.rps(), s.mbps(), s.errors)
							res.http[p.name][c.name] = append(res.http[p.name][c.name], s)
						}
						return nil
					})
					if err != nil {
						return nil, fmt.Errorf("http, %s: %w", c.name, err)
					}
				}
				continue
			}
			for _, c := range floodCases {
				cfg := configs[m][1]
				if c.direct {
					cfg = configs[m][0]
				}
				err := runCase(ctx, c, func(pid int) error {
					s, err := t.flood(ctx, cfg, o.warm, o.dur, 0, pid)
					if err != nil {
						return err
					}
					fmt.Fprintf(o.log, "netbench: rep %d %s %s: %.0f frames/s at the sinks, %d sent, %d received\n", rep, m, c.name, s.pps(), s.sent, s.recv)
					res.flood[m][c.name] = append(res.flood[m][c.name], s)
					if !c.half {
						return nil
					}
					h, err := t.flood(ctx, cfg, o.warm, o.dur, s.pps()/2, pid)
					if err != nil {
						return fmt.Errorf("at half rate: %w", err)
					}
					fmt.Fprintf(o.log, "netbench: rep %d %s %s: %.0f frames/s at the sinks, %d sent, %d received\n", rep, m, halfName(c.name), h.pps(), h.sent, h.recv)
					res.flood[m][halfName(c.name)] = append(res.flood[m][halfName(c.name)], h)
					return nil
				})
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", m, c.name, err)
				}
			}
		}
	}
	res.end = time.Now()
	res.load[1] = loadavg()
	return res, nil
}

// rawIOs are the backends of the raw cases: every one of ioBackends, but
// in the short mode only ring-v2, udr's default, to keep CI's run short.
func rawIOs(short bool) []string {
	if short {
		return []string{"ring-v2"}
	}
	return ioBackends
}

// runCase starts c, runs measure with the pid of its process, and undoes
// c.
func runCase(ctx context.Context, c fwdCase, measure func(pid int) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	pid := 0
	if c.start != nil {
		var stop func() error
		if pid, stop, err = c.start(ctx); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	return measure(pid)
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
