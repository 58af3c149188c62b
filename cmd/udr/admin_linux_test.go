//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/netlab"
	"golang.org/x/sys/unix"
)

// specDir holds the admin package's specification: one ipvsadm case a file
// (see admin/cases_test.go for the format).
const specDir = "../../admin/testdata/cases"

// specCase is one case file: its sections by name.
type specCase struct {
	name     string
	sections map[string]string
}

func readSpecCase(path string) (*specCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &specCase{name: strings.TrimSuffix(filepath.Base(path), ".txt"), sections: make(map[string]string)}
	name := ""
	for _, line := range strings.SplitAfter(string(data), "\n") {
		t := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			name = t[3 : len(t)-3]
			c.sections[name] = ""
			continue
		}
		if name != "" {
			c.sections[name] += line
		}
	}
	for _, want := range []string{"args", "stdout", "stderr", "status"} {
		if _, ok := c.sections[want]; !ok {
			return nil, fmt.Errorf("%s: no %q section", path, want)
		}
	}
	return c, nil
}

// nonBlank returns the lines of s that are not blank.
func nonBlank(s string) []string {
	var l []string
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) != "" {
			l = append(l, line)
		}
	}
	return l
}

// commandLines returns every ipvsadm command line the case gives the
// daemon, as words without "ipvsadm": setup, args and (for -R) stdin.
func (c *specCase) commandLines() [][]string {
	var out [][]string
	for _, sec := range []string{"setup", "args", "stdin"} {
		for _, line := range nonBlank(c.sections[sec]) {
			words := admin.Fields(line)
			if sec == "stdin" && (len(words) == 0 || strings.HasPrefix(strings.TrimLeft(line, " \t\r"), "#")) {
				continue // restore skips it; a bare "ipvsadm" is no listing there
			}
			out = append(out, words)
		}
	}
	return out
}

// isError reports whether one of the case's invocations exits non-zero.
func (c *specCase) isError() bool {
	for _, s := range nonBlank(c.sections["status"]) {
		if strings.TrimSpace(s) != "0" {
			return true
		}
	}
	return false
}

// Why a case of the specification is not replayed against the daemon.
const (
	skipCounters = "counters"  // -- counters -- or -- conns --
	skipNames    = "names"     // a listing that resolves names
	skipRange    = "range"     // an address outside the documentation ranges
	skipLocalVIP = "local VIP" // a VIP that is the director's own address
)

// skipReason returns why c cannot run against a live daemon in the lab, as
// a kind and a message, or "" when it can:
//
//   - counters and conns sections set statistics and connection entries
//     in the fake backend; a live daemon's come from traffic only.
//   - A listing without -n (-L, -S, or no arguments, except --timeout and
//     --daemon, which print no address) names addresses and ports through
//     the system resolver (/etc/hosts, DNS, /etc/services): the case's
//     names come from a fake resolver (192.0.2.100 is www.example.com),
//     and the machine's answers differ from one host to the next.
//   - Every address the case gives must lie in 192.0.2.0/24,
//     198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32: the daemon sends
//     ARP and probes to them from the lab.
//   - A VIP that is one of the director's own addresses is refused by the
//     daemon ("configured on this host"), which the fake backend accepts.
func (c *specCase) skipReason(directorAddrs []netip.Addr) (kind, msg string) {
	if _, ok := c.sections["counters"]; ok {
		return skipCounters, "sets counters, which a live daemon takes from traffic only"
	}
	if _, ok := c.sections["conns"]; ok {
		return skipCounters, "sets connection entries, which a live daemon takes from traffic only"
	}
	for _, words := range c.commandLines() {
		for i, w := range words {
			if i > 0 && (words[i-1] == "-M" || words[i-1] == "--netmask") {
				continue // a netmask, not an address
			}
			if a, ok := wordAddr(w); ok {
				if err := netlab.ValidPrefix(netip.PrefixFrom(a, a.BitLen())); err != nil {
					return skipRange, fmt.Sprintf("%q: %v", strings.Join(words, " "), err)
				}
			}
		}
		cmd, err := admin.ParseCommand(words)
		if err != nil {
			continue // ipvsadm stops at the error, before any listing
		}
		if (cmd.Op == admin.OpList || cmd.Op == admin.OpSave) && !cmd.Options.Has(admin.OptNumeric) &&
			cmd.Options&(admin.OptTimeout|admin.OptDaemon) == 0 {
			return skipNames, fmt.Sprintf("%q lists without -n: the names would come from this host's resolver, the case's from a fake one", strings.Join(append([]string{"ipvsadm"}, words...), " "))
		}
		if vip := cmd.Service.Addr; vip.IsValid() && slices.Contains(directorAddrs, vip) {
			return skipLocalVIP, fmt.Sprintf("VIP %s is the director's own address, which the daemon refuses", vip)
		}
	}
	return "", ""
}

// wordAddr returns the address in a command word: ADDR, ADDR:PORT, [ADDR]
// or [ADDR]:PORT.
func wordAddr(w string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(w); err == nil {
		return ap.Addr(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(w, "["), "]")); err == nil {
		return a, true
	}
	return netip.Addr{}, false
}

// TestPrivilegedAdminAgainstDaemon replays the admin specification
// (admin/testdata/cases) through the ipvsadm symlink against `udr run` in
// the LVS-DR lab: every case that a live daemon can answer (see
// skipReason), with the table cleared and the timeouts reset first.
func TestPrivilegedAdminAgainstDaemon(t *testing.T) {
	netlab.Privileged(t)
	paths, err := filepath.Glob(filepath.Join(specDir, "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no case in %s: %v", specDir, err)
	}
	bin := buildUDR(t)
	lab := newDaemonLab(t, "admind")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", daemonMetrics)
	directorAddrs := hostAddrs(t, lab.Director)
	// No --workers: one worker per CPU udr may run on but one.
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("workers=%d auto=true", max(cpus.Count()-1, 1)); !strings.Contains(d.log.String(), want) {
		t.Errorf("udr run with no --workers: no %q in its log:\n%s", want, d.log)
	}

	start := time.Now()
	ran, errorCases := 0, 0
	skipped := make(map[string][]string)
	for _, path := range paths {
		c, err := readSpecCase(path)
		if err != nil {
			t.Fatal(err)
		}
		if kind, msg := c.skipReason(directorAddrs); kind != "" {
			skipped[kind] = append(skipped[kind], c.name)
			t.Run(c.name, func(t *testing.T) { t.Skip(msg) })
			continue
		}
		ran++
		if c.isError() {
			errorCases++
		}
		t.Run(c.name, func(t *testing.T) { d.replay(t, c) })
	}
	t.Logf("replayed %d of %d cases (%d with an error status) in %v", ran, len(paths), errorCases, time.Since(start).Round(time.Millisecond))
	for _, kind := range []string{skipCounters, skipNames, skipRange, skipLocalVIP} {
		t.Logf("skipped, %s: %d %v", kind, len(skipped[kind]), skipped[kind])
	}
	if ran < 40 || errorCases < 20 {
		t.Errorf("replayed %d cases, %d of them error cases; want at least 40 and 20", ran, errorCases)
	}

	// What skipLocalVIP stands for: the daemon refuses the director's own
	// addresses as VIPs, which ipvsadm reports as the kernel's EINVAL.
	for _, vip := range []string{"192.0.2.2:80", "[2001:db8::2]:80"} {
		d.mustIpvsadm(t, "-C")
		r := d.ipvsadm(t, "", "-A", "-t", vip, "-s", "rr")
		addr, _ := wordAddr(vip)
		if want := fmt.Sprintf("VIP %s is configured on this host", addr); r.code != 255 || r.stdout != "" || !strings.Contains(r.stderr, want) {
			t.Errorf("ipvsadm -A -t %s: exit %d, stdout %q, stderr %q; want 255 and %q", vip, r.code, r.stdout, r.stderr, want)
		}
		if got := d.mustIpvsadm(t, "-S", "-n"); got != "" {
			t.Errorf("table after the refused -A -t %s:\n%s\nwant it empty", vip, got)
		}
	}
}

// replay runs one case against the daemon: -C and the kernel's default
// timeouts (--set persists across -C), the setup lines, which must succeed
// silently, then the case's invocations, compared byte for byte, and the
// table afterwards as ipvsadm -S -n prints it.
func (d *daemon) replay(t *testing.T, c *specCase) {
	d.mustIpvsadm(t, "-C")
	d.mustIpvsadm(t, "--set", "900", "120", "300")
	for _, line := range nonBlank(c.sections["setup"]) {
		if out := d.mustIpvsadm(t, admin.Fields(line)...); out != "" {
			t.Fatalf("setup %q printed %q", line, out)
		}
	}
	var stdout, stderr strings.Builder
	var status []string
	for _, line := range nonBlank(c.sections["args"]) {
		words := strings.Fields(line)
		if len(words) == 0 || words[0] != "ipvsadm" {
			t.Fatalf("args line %q: want ipvsadm ARGS...", line)
		}
		r := d.ipvsadm(t, c.sections["stdin"], words[1:]...)
		stdout.WriteString(r.stdout)
		stderr.WriteString(r.stderr)
		status = append(status, strconv.Itoa(r.code))
	}
	if diff := cmp.Diff(c.sections["stdout"], stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(c.sections["stderr"], stderr.String()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(nonBlank(c.sections["status"]), status); diff != "" {
		t.Errorf("exit status (-want +got):\n%s", diff)
	}
	if want, ok := c.sections["saved"]; ok {
		if diff := cmp.Diff(want, d.mustIpvsadm(t, "-S", "-n")); diff != "" {
			t.Errorf("table afterwards, ipvsadm -S -n (-want +got):\n%s", diff)
		}
	}
}

// walkthroughRules is the LVS-DR walkthrough's table, and walkthroughList
// its listing by ipvsadm -L -n without traffic.
const (
	walkthroughRules = "-A -t 192.0.2.100:80 -s wrr\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 2\n"
	walkthroughList = "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  192.0.2.100:80 wrr\n" +
		"  -> 192.0.2.11:80                Route   1      0          0         \n" +
		"  -> 192.0.2.12:80                Route   2      0          0         \n"
)

// TestPrivilegedControlSocket checks who may use the control API and what
// it and the metrics endpoint answer: the socket is root's, mode 0600, so
// nobody is refused while root gets the listing, through udr admin and
// through plain HTTP (curl); the metrics show the configured servers.
func TestPrivilegedControlSocket(t *testing.T) {
	netlab.Privileged(t)
	needCurl(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "adminctl")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(walkthroughRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", daemonMetrics)

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 || st.Uid != 0 {
		t.Errorf("control socket %s: mode %v, owner uid %d; want srw------- and uid 0", sock, fi.Mode(), st.Uid)
	}

	nobody := &syscall.Credential{Uid: 65534, Gid: 65534} // Groups nil: setgroups(0)
	if r := d.admin(t, nobody, "-L", "-n"); r.code != 2 || r.stdout != "" ||
		!strings.Contains(r.stderr, "cannot reach the udr daemon") || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("udr admin -L -n as uid 65534: exit %d, stdout %q, stderr %q; want 2 and permission denied", r.code, r.stdout, r.stderr)
	}
	if r := d.admin(t, nil, "-L", "-n"); r.code != 0 || r.stderr != "" || r.stdout != walkthroughList {
		t.Errorf("udr admin -L -n as root: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, walkthroughList)
	}

	// The API itself, as any HTTP client speaks it.
	r := runCommand(t, "", nil, nil, "curl", "-sS", "--max-time", "10", "--unix-socket", sock,
		"-X", "POST", "-d", `{"args":["-L","-n"]}`, "http://udr/v1/ipvsadm")
	var resp director.IpvsadmResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); r.code != 0 || err != nil {
		t.Fatalf("curl POST /v1/ipvsadm: exit %d, %v, stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
	}
	if diff := cmp.Diff(director.IpvsadmResponse{Stdout: walkthroughList}, resp); diff != "" {
		t.Errorf("POST /v1/ipvsadm -L -n (-want +got):\n%s", diff)
	}
	r = runCommand(t, "", nil, nil, "curl", "-sS", "--fail", "--max-time", "10", "--unix-socket", sock, "http://udr/v1/state")
	var state admin.Listing
	if err := json.Unmarshal([]byte(r.stdout), &state); r.code != 0 || err != nil {
		t.Fatalf("curl GET /v1/state: exit %d, %v, stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
	}
	var got []string
	for _, s := range state.Services {
		for _, dst := range s.Dests {
			got = append(got, fmt.Sprintf("%s %s:%d -> %s:%d w%d", s.Protocol, s.Address, s.Port, dst.Address, dst.Port, dst.Weight))
		}
	}
	want := []string{"TCP 192.0.2.100:80 -> 192.0.2.11:80 w1", "TCP 192.0.2.100:80 -> 192.0.2.12:80 w2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /v1/state real servers (-want +got):\n%s", diff)
	}

	// The metrics, in the director's namespace, follow a change made
	// through the control socket.
	d.mustIpvsadm(t, "-e", "-t", "192.0.2.100:80", "-r", "192.0.2.12", "-w", "5")
	out, err := lab.Director.Command("curl", "-sS", "--fail", "--max-time", "10", "http://"+daemonMetrics+"/metrics").Output()
	if err != nil {
		t.Fatalf("curl http://%s/metrics in the director's namespace: %v", daemonMetrics, err)
	}
	metrics := strings.Split(string(out), "\n")
	for _, want := range []string{
		`udr_server_connections{server="192.0.2.11:80",service="TCP 192.0.2.100:80",state="active"} 0`,
		`udr_server_connections{server="192.0.2.12:80",service="TCP 192.0.2.100:80",state="inactive"} 0`,
		`udr_server_weight{server="192.0.2.11:80",service="TCP 192.0.2.100:80"} 1`,
		`udr_server_weight{server="192.0.2.12:80",service="TCP 192.0.2.100:80"} 5`,
		`udr_conntrack_entries 0`,
	} {
		if !slices.Contains(metrics, want) {
			t.Errorf("metrics have no line %q; got:\n%s", want, out)
		}
	}
}

// reloadConfig is a udr.yaml for the reload test: the daemon's settings,
// then services.
func reloadConfig(sock, services string) string {
	return "interface: eth0\n" +
		"control_socket: " + sock + "\n" +
		"metrics_address: \"off\"\n" +
		"services:\n" + services
}

// TestPrivilegedAdminReload runs `udr run --config udr.yaml`, changes the
// file, and reloads it with `udr admin --reload` and with SIGHUP: a valid
// file replaces the running table (changes made with ipvsadm since
// included), an invalid one is refused with its file:line and the running
// table stays.
func TestPrivilegedAdminReload(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "adminrl")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "udr.yaml")
	write := func(services string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(reloadConfig(sock, services)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const (
		web = "  - address: 192.0.2.100\n" +
			"    port: 80\n" +
			"    scheduler: wrr\n" +
			"    servers:\n" +
			"      - address: 192.0.2.11\n" +
			"        weight: 1\n"
		webSaved = "-A -t 192.0.2.100:80 -s wrr\n" +
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"
		dns = "  - protocol: udp\n" +
			"    address: 2001:db8::100\n" +
			"    port: 53\n" +
			"    scheduler: rr\n" +
			"    one_packet: true\n" +
			"    servers:\n" +
			"      - address: 2001:db8::11\n" +
			"      - address: 2001:db8::12\n"
		dnsSaved = "-A -u [2001:db8::100]:53 -s rr -o\n" +
			"-a -u [2001:db8::100]:53 -r [2001:db8::11]:53 -g -w 1\n" +
			"-a -u [2001:db8::100]:53 -r [2001:db8::12]:53 -g -w 1\n"
		// A weight out of range, on the config's line 12.
		bad = "      - address: 192.0.2.12\n" +
			"        weight: 70000\n"
		badField = "services[0].servers[1].weight: 70000 out of range 0..65535"
	)
	badAt := fmt.Sprintf("%s:%d: %s", conf, 12, badField)
	if got := strings.Split(reloadConfig(sock, web+bad), "\n")[11]; !strings.Contains(got, "70000") {
		t.Fatalf("line 12 of the invalid config is %q, want the bad weight", got)
	}

	write(web)
	d := startDaemon(t, lab, bin, sock, "--config", conf) // control_socket: sock
	saved := func() string { t.Helper(); return d.mustIpvsadm(t, "-S", "-n") }
	if got := saved(); got != webSaved {
		t.Fatalf("table at start:\n%s\nwant:\n%s", got, webSaved)
	}

	// udr admin --reload: the file wins over changes made with ipvsadm.
	d.mustIpvsadm(t, "-A", "-t", "192.0.2.101:80", "-s", "rr")
	write(web + dns)
	if r := d.admin(t, nil, "--reload"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("udr admin --reload: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if diff := cmp.Diff(webSaved+dnsSaved, saved()); diff != "" {
		t.Errorf("table after udr admin --reload (-want +got):\n%s", diff)
	}
	write(web + bad)
	r := d.admin(t, nil, "--reload")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "reload refused, the running configuration stays") || !strings.Contains(r.stderr, badAt) {
		t.Errorf("udr admin --reload of an invalid file: exit %d, stdout %q, stderr %q; want 1 and %q", r.code, r.stdout, r.stderr, badAt)
	}
	if diff := cmp.Diff(webSaved+dnsSaved, saved()); diff != "" {
		t.Errorf("table after a refused reload (-want +got):\n%s", diff)
	}

	// SIGHUP does the same, and says so in the log only.
	hup := func(wantLine string) string {
		t.Helper()
		mark := d.log.len()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, err := d.log.wait(mark, wantLine, daemonEventTimeout, d.exited)
		if err != nil {
			t.Fatalf("after SIGHUP: %v\n%s", err, d.log)
		}
		return line
	}
	write(dns)
	hup("msg=reloaded")
	if diff := cmp.Diff(dnsSaved, saved()); diff != "" {
		t.Errorf("table after SIGHUP (-want +got):\n%s", diff)
	}
	write(web + bad)
	if line := hup("reload failed"); !strings.Contains(line, badAt) {
		t.Errorf("log line of the refused SIGHUP reload: %s\nwant it to name %q", line, badAt)
	}
	if diff := cmp.Diff(dnsSaved, saved()); diff != "" {
		t.Errorf("table after a refused SIGHUP reload (-want +got):\n%s", diff)
	}
}
