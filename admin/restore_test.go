package admin

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/udr-lb/udr/sched"
	"github.com/udr-lb/udr/service"
)

// refApply is the kernel's semantics as plainly as they can be written, a
// slice scan per command, as the reference for the Editor: what
// ip_vs_genl_set_cmd does to the table for cmd.
func refApply(c *service.Config, cmd *Command) error {
	find := func(k service.Key) int {
		for i, s := range c.Services {
			if s.Key == k {
				return i
			}
		}
		return -1
	}
	i := find(cmd.Service.Key)
	switch cmd.Op {
	case OpAddService, OpEditService:
		u := cmd.Service
		switch {
		case cmd.Op == OpAddService && i >= 0:
			return kernelErr(cmd.Op, syscall.EEXIST)
		case cmd.Op == OpEditService && i < 0:
			return kernelErr(cmd.Op, syscall.ESRCH)
		case !sched.Valid(u.Scheduler) || cmd.PE != "":
			return kernelErr(cmd.Op, syscall.ENOENT)
		}
		if !u.Persistent {
			u.Netmask, u.Timeout = u.Addr.BitLen(), 0
		}
		if i < 0 {
			c.Services = append(c.Services, &u)
			return nil
		}
		u.Dests = c.Services[i].Dests
		c.Services[i] = &u
	case OpDeleteService:
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
		c.Services = append(c.Services[:i:i], c.Services[i+1:]...)
	case OpClear:
		c.Services = nil
	case OpZero:
		if cmd.Options.Has(OptService) && i < 0 {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
	case OpSet:
		for _, p := range []struct {
			to *uint32
			v  uint32
		}{
			{&c.Timeouts.TCP, cmd.Timeouts.TCP}, {&c.Timeouts.TCPFin, cmd.Timeouts.TCPFin}, {&c.Timeouts.UDP, cmd.Timeouts.UDP},
		} {
			if p.v != 0 {
				*p.to = p.v
			}
		}
	case OpAddServer, OpEditServer, OpDeleteServer:
		if i < 0 {
			return kernelErr(cmd.Op, syscall.ESRCH)
		}
		s := c.Services[i]
		u := cmd.Dest
		if cmd.Op != OpDeleteServer && u.LThreshold > u.UThreshold {
			return kernelErr(cmd.Op, syscall.ERANGE)
		}
		j := -1
		for k, d := range s.Dests {
			if d.AddrPort() == u.AddrPort() {
				j = k
			}
		}
		switch {
		case cmd.Op == OpAddServer && j >= 0:
			return kernelErr(cmd.Op, syscall.EEXIST)
		case cmd.Op == OpAddServer:
			u.LastWeight = u.Weight
			s.Dests = append([]service.Dest{u}, s.Dests...) // list_add: the head
		case j < 0:
			return kernelErr(cmd.Op, syscall.ENOENT)
		case cmd.Op == OpEditServer:
			d := &s.Dests[j]
			if u.Weight != 0 {
				d.LastWeight = u.Weight
			}
			d.Weight, d.UThreshold, d.LThreshold = u.Weight, u.UThreshold, u.LThreshold
		default:
			s.Dests = append(s.Dests[:j:j], s.Dests[j+1:]...)
		}
	}
	return nil
}

// randomLine is an ipvsadm command on a small set of services and real
// servers, so that commands meet what earlier ones made.
func randomLine(r *rand.Rand) string {
	svc := fmt.Sprintf("-t 192.0.2.%d:80", 100+r.IntN(3))
	if r.IntN(4) == 0 {
		svc = fmt.Sprintf("-u [2001:db8::%d]:53", 100+r.IntN(2))
	}
	rip := fmt.Sprintf("192.0.2.%d", 11+r.IntN(5))
	if strings.HasPrefix(svc, "-u") {
		rip = fmt.Sprintf("2001:db8::%d", 11+r.IntN(5))
	}
	scheds := []string{"rr", "wrr", "wlc", "sh", "nosuch"}
	switch n := r.IntN(100); {
	case n < 15:
		return fmt.Sprintf("-A %s -s %s", svc, scheds[r.IntN(len(scheds))])
	case n < 20:
		return fmt.Sprintf("-E %s -s %s -p %d", svc, scheds[r.IntN(len(scheds))], 60+r.IntN(100))
	case n < 24:
		return "-D " + svc
	case n < 26:
		return "-C"
	case n < 60:
		return fmt.Sprintf("-a %s -r %s -w %d", svc, rip, r.IntN(4))
	case n < 75:
		return fmt.Sprintf("-e %s -r %s -w %d -x %d -y %d", svc, rip, r.IntN(4), r.IntN(3), r.IntN(3))
	case n < 93:
		return fmt.Sprintf("-d %s -r %s", svc, rip)
	case n < 96:
		return fmt.Sprintf("--set %d 0 %d", r.IntN(3)*100, r.IntN(3)*100)
	default:
		return "-Z " + svc
	}
}

// TestRestoreIsLineByLine: a restore of random lines against a random table
// ends with the table that applying its lines one by one to it gives, when
// every line succeeds one by one; when one fails, the restore fails, names
// that line, and the table is unchanged.
func TestRestoreIsLineByLine(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 7))
	applied, refused := 0, 0
	for round := range 3000 {
		var setup []string
		want := &service.Config{}
		for range r.IntN(12) {
			line := randomLine(r)
			cmd, err := ParseCommand(strings.Fields(line))
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if refApply(want, cmd) == nil && cmd.Op != OpZero {
				setup = append(setup, line)
			}
		}
		before := want.Clone()
		// Lines that succeed one by one, mostly, and then maybe one
		// random line in their midst.
		lines := make([]string, 1+r.IntN(8))
		for i := range lines {
			for range 100 {
				lines[i] = randomLine(r)
				cmd, _ := ParseCommand(strings.Fields(lines[i]))
				if refApply(want.Clone(), cmd) == nil {
					break
				}
			}
			cmd, _ := ParseCommand(strings.Fields(lines[i]))
			refApply(want, cmd)
		}
		if r.IntN(2) == 0 {
			lines[r.IntN(len(lines))] = randomLine(r)
		}
		want = before.Clone()
		firstBad := 0
		for i, line := range lines {
			cmd, _ := ParseCommand(strings.Fields(line))
			if err := refApply(want, cmd); err != nil && firstBad == 0 {
				firstBad = i + 1
			}
		}
		b := newBackendWith(t, setup)
		stdin := strings.Join(lines, "\n") + "\n"
		_, stderr, code := run(t, b, stdin, "-R")
		if firstBad != 0 {
			want = before
		}
		if diff := cmp.Diff(want, b.cfg, cmpopts.EquateEmpty(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
			t.Fatalf("round %d: table after -R of\n%s\nfrom\n%s\n(-line by line +restore):\n%s\nstderr: %s", round, stdin, strings.Join(setup, "\n"), diff, stderr)
		}
		if firstBad == 0 {
			applied++
			if code != 0 {
				t.Fatalf("round %d: -R of\n%s: status %d, stderr %q; want 0", round, stdin, code, stderr)
			}
			continue
		}
		refused++
		if wantLine := fmt.Sprintf("stdin:%d: ", firstBad); code == 0 || !strings.HasPrefix(stderr, wantLine) ||
			!strings.Contains(stderr, "udr: restore refused, the running table is unchanged") {
			t.Fatalf("round %d: -R of\n%s: status %d, stderr %q; want an error that starts with %q", round, stdin, code, stderr, wantLine)
		}
	}
	t.Logf("%d restores applied, %d refused", applied, refused)
	if applied < 300 || refused < 300 {
		t.Errorf("%d restores applied and %d refused: want at least 300 of each", applied, refused)
	}
}

// restoreLines is a restore of n lines: -C, services of one real server
// or none over as many VIPs as it takes, and a last wrr service with n/4
// real servers.
func restoreLines(n int) string {
	var b strings.Builder
	b.WriteString("-C\n")
	lines := 1
	big := n / 4
	for i := 0; lines < n-big-1; i++ {
		svc := fmt.Sprintf("-t 203.0.113.%d:%d", 1+i/3500, 10000+i%3500)
		fmt.Fprintf(&b, "-A %s -s wlc\n", svc)
		lines++
		if i%2 == 0 {
			fmt.Fprintf(&b, "-a %s -r 192.0.2.%d:%d -g -w 1\n", svc, 11+i%2, 10000+i%3500)
			lines++
		}
	}
	b.WriteString("-A -t [2001:db8::100]:80 -s wrr\n")
	for j := range big {
		fmt.Fprintf(&b, "-a -t [2001:db8::100]:80 -r [2001:db8::%x:%x]:80 -g -w %d\n", 1+j>>16, j&0xffff, 1+j%5)
	}
	return b.String()
}

// TestRestoreScales: a restore of 200,000 lines, one change, takes seconds
// (a table copied per line takes minutes); a bad last line refuses it all.
func TestRestoreScales(t *testing.T) {
	if testing.Short() {
		t.Skip("restores 200,000 lines")
	}
	const n, bound = 200_000, 60 * time.Second
	in := restoreLines(n)
	b := newFakeBackend()
	start := time.Now()
	_, stderr, code := run(t, b, in, "-R")
	took := time.Since(start)
	t.Logf("restored %d lines in %v", strings.Count(in, "\n"), took.Round(time.Millisecond))
	if code != 0 || stderr != "" {
		t.Fatalf("-R: status %d, stderr %.500q", code, stderr)
	}
	servers := 0
	for _, s := range b.cfg.Services {
		servers += len(s.Dests)
	}
	if got := len(b.cfg.Services) + servers; got != strings.Count(in, "\n")-1 {
		t.Errorf("table has %d services and %d real servers, want %d in all", len(b.cfg.Services), servers, strings.Count(in, "\n")-1)
	}
	if took > bound {
		t.Errorf("restore of %d lines took %v, want well under %v", n, took.Round(time.Millisecond), bound)
	}

	before := b.cfg
	start = time.Now()
	_, stderr, code = run(t, b, in+"-a -t [2001:db8::100]:80 -r [2001:db8::1:0]:80\n", "-R")
	took = time.Since(start)
	if want := fmt.Sprintf("stdin:%d: -a -t [2001:db8::100]:80 -r [2001:db8::1:0]:80: Destination already exists\n", strings.Count(in, "\n")+1); code != ExitKernel || !strings.HasPrefix(stderr, want) {
		t.Errorf("-R with a bad last line: status %d, stderr %.500q; want 255 and %q", code, stderr, want)
	}
	if b.cfg != before {
		t.Errorf("a refused restore changed the table")
	}
	if took > bound {
		t.Errorf("refused restore of %d lines took %v, want well under %v", n, took.Round(time.Millisecond), bound)
	}
}

// TestParseRulesScales: a rules file of 200,000 lines (what udr run and a
// reload read) is parsed in seconds: one Editor, not a scan of the
// services and of a service's real servers per line.
func TestParseRulesScales(t *testing.T) {
	if testing.Short() {
		t.Skip("parses 200,000 lines")
	}
	const n, bound = 200_000, 60 * time.Second
	in := strings.TrimPrefix(restoreLines(n), "-C\n")
	start := time.Now()
	cfg, _, err := ParseRules(strings.NewReader(in), "rules")
	took := time.Since(start)
	t.Logf("parsed %d lines in %v", strings.Count(in, "\n"), took.Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	servers := 0
	for _, s := range cfg.Services {
		servers += len(s.Dests)
	}
	if got := len(cfg.Services) + servers; got != strings.Count(in, "\n") {
		t.Errorf("rules have %d services and %d real servers, want %d in all", len(cfg.Services), servers, strings.Count(in, "\n"))
	}
	if took > bound {
		t.Errorf("parsing %d lines took %v, want well under %v", n, took.Round(time.Millisecond), bound)
	}
}

// TestRestoreLongLine: a line longer than a rules file may have refuses
// the restore, and the rest of the input is not read.
func TestRestoreLongLine(t *testing.T) {
	b := newBackendWith(t, richConfig)
	before := b.cfg
	in := "-A -t 192.0.2.101:80 -s rr\n-a -t 192.0.2.101:80 -r 192.0.2.11:80 " + strings.Repeat("-g ", 2000) + "\n-A -t 192.0.2.102:80\n"
	_, stderr, code := run(t, b, in, "-R")
	want := "stdin:2: line longer than 4096 bytes: udr reads no longer line\nudr: restore refused, the running table is unchanged: 1 of 2 lines failed\n"
	if code != ExitUsage || stderr != want {
		t.Errorf("-R with a line of 6,000 bytes: status %d, stderr %q; want 2 and %q", code, stderr, want)
	}
	if b.cfg != before {
		t.Errorf("a refused restore changed the table")
	}
}
