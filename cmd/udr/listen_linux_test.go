//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/netlab"
)

// TestMain runs the test binary as the flood helper of
// TestPrivilegedListenerFlood when UDR_TEST_FLOOD names its target.
func TestMain(m *testing.M) {
	if spec := os.Getenv("UDR_TEST_FLOOD"); spec != "" {
		os.Exit(floodHelper(spec))
	}
	os.Exit(m.Run())
}

// floodHelper is a local user's attack on a listener: as uid and gid
// 65534 it opens up to COUNT connections to ADDR (spec "ADDR COUNT"),
// within a bounded time, sends one keep-alive request on each and leaves
// it idle; it prints "held N failed M" and keeps them until its standard
// input ends.
func floodHelper(spec string) int {
	addr, n, _ := strings.Cut(spec, " ")
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood helper: bad count:", err)
		return 2
	}
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, "flood helper: setgroups:", err)
		return 2
	}
	if err := syscall.Setgid(65534); err != nil {
		fmt.Fprintln(os.Stderr, "flood helper: setgid:", err)
		return 2
	}
	if err := syscall.Setuid(65534); err != nil {
		fmt.Fprintln(os.Stderr, "flood helper: setuid:", err)
		return 2
	}
	if os.Getuid() != 65534 || os.Geteuid() != 65534 {
		fmt.Fprintln(os.Stderr, "flood helper: still uid", os.Getuid())
		return 2
	}
	var conns []net.Conn
	failed := 0
	deadline := time.Now().Add(30 * time.Second)
	for len(conns)+failed < count && time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			failed++
			continue
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: udr\r\n\r\n")
		conns = append(conns, c)
	}
	fmt.Printf("uid %d held %d failed %d\n", os.Getuid(), len(conns), failed)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// floodConfig is the walkthrough's service with TCP health checks every
// second that fail a server after two failures.
func floodConfig(sock string) string {
	return "interface: eth0\n" +
		"control_socket: " + sock + "\n" +
		"metrics_address: " + daemonMetrics + "\n" +
		"services:\n" +
		"  - address: 192.0.2.100\n" +
		"    port: 80\n" +
		"    scheduler: wrr\n" +
		"    health_check: {kind: tcp, interval: 1s, timeout: 500ms, rise: 1, fall: 2}\n" +
		"    servers:\n" +
		"      - {address: 192.0.2.11, weight: 1}\n" +
		"      - {address: 192.0.2.12, weight: 2}\n"
}

// floodLimit is the descriptor limit (soft and hard) of the daemon under
// the flood: small, so that 2,000 connections would exhaust it.
const floodLimit = 256

// TestPrivilegedListenerFlood is a local non-root user's attack on the
// metrics endpoint: uid 65534 opens 2,000 keep-alive connections and
// leaves them idle, against a daemon with a limit of 256 descriptors. The
// daemon must keep its descriptors (the listener holds a bounded number of
// connections), answer udr admin and a scrape, and its health checks must
// not mark the real servers failed.
func TestPrivilegedListenerFlood(t *testing.T) {
	netlab.Privileged(t)
	needCurl(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "flood")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "udr.yaml")
	if err := os.WriteFile(conf, []byte(floodConfig(sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	limit := []string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, floodLimit), "sh"}
	d := startDaemonWith(t, lab, bin, sock, limit, "--config", conf)
	pid := d.cmd.Process.Pid
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != bin.exe {
		t.Fatalf("pid %d runs %q (%v), want %s", pid, exe, err, bin.exe)
	}
	if lim := procLimit(t, pid); lim != floodLimit {
		t.Fatalf("daemon's open files limit %d, want %d", lim, floodLimit)
	}
	fdsBefore, rssBefore := openFiles(t, pid), rssKB(t, pid)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	flood := lab.Director.Command(exe)
	flood.Env = append(os.Environ(), "UDR_TEST_FLOOD="+daemonMetrics+" 2000")
	stdin, err := flood.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := flood.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	flood.Stderr = os.Stderr
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- flood.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("flood helper: %v", err)
			}
		case <-time.After(daemonStopTimeout):
			flood.Process.Kill()
			<-done
			t.Errorf("flood helper did not end within %v of its stdin's end", daemonStopTimeout)
		}
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	var held string
	select {
	case held = <-line:
	case <-time.After(2 * time.Minute):
		t.Fatal("the flood helper never said what it held")
	}
	t.Logf("flood helper: %s", strings.TrimSpace(held))
	if !strings.HasPrefix(held, "uid 65534 held ") {
		t.Fatalf("flood helper: %q, want it to run as uid 65534 and hold connections", held)
	}

	mark := d.log.len()
	fdsDuring, rssDuring := openFiles(t, pid), rssKB(t, pid)
	t.Logf("daemon descriptors %d before, %d under the flood (limit %d); RSS %d kB before, %d kB under the flood",
		fdsBefore, fdsDuring, floodLimit, rssBefore, rssDuring)
	if fdsDuring > floodLimit/2 {
		t.Errorf("daemon holds %d descriptors under the flood, more than half its limit of %d", fdsDuring, floodLimit)
	}

	start := time.Now()
	r := d.admin(t, nil, "-S", "-n")
	t.Logf("udr admin -S -n under the flood took %v", time.Since(start).Round(time.Millisecond))
	if r.code != 0 || r.stderr != "" {
		t.Errorf("udr admin -S -n under the flood: exit %d, stderr %q", r.code, r.stderr)
	}
	scrape, err := lab.Director.Command("curl", "-sS", "--fail", "--max-time", "20", "http://"+daemonMetrics+"/metrics").Output()
	if err != nil {
		t.Errorf("scrape under the flood: %v", err)
	} else if !strings.Contains(string(scrape), "\nudr_server_up{") {
		t.Errorf("scrape under the flood has no udr_server_up")
	} else {
		for _, line := range strings.Split(string(scrape), "\n") {
			if strings.HasPrefix(line, "udr_listener_") {
				t.Logf("scrape under the flood: %s", line)
			}
		}
		if !strings.Contains(string(scrape), "\nudr_listener_idle_closed_total{listener=\"metrics\"} ") ||
			strings.Contains(string(scrape), "\nudr_listener_idle_closed_total{listener=\"metrics\"} 0\n") {
			t.Errorf("scrape under the flood counts no idle connection closed by the metrics listener")
		}
	}

	// Five checks a server: a server that failed two would be marked
	// failed.
	if line, err := d.log.wait(mark, "real server failed its health check", 5*time.Second, d.exited); err == nil {
		t.Errorf("under the flood: %s", line)
	}
	if line, err := d.log.wait(0, "too many open files", 0, d.exited); err == nil {
		t.Errorf("the daemon ran out of descriptors: %s", line)
	}
	saved := d.mustIpvsadm(t, "-S", "-n")
	for _, want := range []string{"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n", "-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 2\n"} {
		if !strings.Contains(saved, want) {
			t.Errorf("table after the flood lacks %q (quiesced by a health check?):\n%s", want, saved)
		}
	}
	if fds := openFiles(t, pid); fds > floodLimit/2 {
		t.Errorf("daemon holds %d descriptors after the checks, limit %d", fds, floodLimit)
	}
}

// TestPrivilegedControlBounds sends the control socket requests that never
// end or end in more than one JSON value: a chunked body promising a huge
// chunk, a Content-Length beyond the bound, a body that stops half-way,
// and a command followed by another. Each is refused with a status that
// says why, within the socket's deadlines, and the table is unchanged.
func TestPrivilegedControlBounds(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "ctlbound")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(walkthroughRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", "off")

	const (
		head = "POST /v1/ipvsadm HTTP/1.1\r\nHost: udr\r\nContent-Type: application/json\r\n"
		add  = `{"args":["-A","-t","192.0.2.101:80","-s","rr"]}`
	)
	tests := []struct {
		name    string
		send    string
		wait    time.Duration // the most the answer may take
		status  int
		message string
	}{
		{
			name:    "trailing JSON",
			send:    head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(add)+len(`{"args":["-C"]}`)) + add + `{"args":["-C"]}`,
			wait:    10 * time.Second,
			status:  http.StatusBadRequest,
			message: "bad request: trailing data after the JSON object, from byte 47 of 62: want one object only",
		},
		{
			name:    "huge chunk",
			send:    head + "Transfer-Encoding: chunked\r\n\r\nfffffffff\r\n" + add[:10],
			wait:    10 * time.Second,
			status:  http.StatusLengthRequired,
			message: "request body without a Content-Length: the control API takes no chunked body",
		},
		{
			name:    "huge length",
			send:    head + "Content-Length: 1073741824\r\n\r\n" + add[:10],
			wait:    10 * time.Second,
			status:  http.StatusRequestEntityTooLarge,
			message: "request body of 1073741824 bytes: at most 135266304",
		},
		{
			name:    "short body",
			send:    head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(add)) + add[:10],
			wait:    15*time.Second + 30*time.Second, // the socket's read timeout, and slack
			status:  http.StatusRequestTimeout,
			message: "request body: 10 of 47 bytes came before the deadline",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(tt.wait))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer within %v: %v", tt.wait, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("answered in %v: %s %s", time.Since(start).Round(time.Millisecond), resp.Status, strings.TrimSpace(string(body)))
			if resp.StatusCode != tt.status || strings.TrimSpace(string(body)) != tt.message {
				t.Errorf("answer %s %q, want %d %q", resp.Status, body, tt.status, tt.message)
			}
		})
	}
	if got := d.mustIpvsadm(t, "-S", "-n"); got != walkthroughRules {
		t.Errorf("table after the refused requests:\n%s\nwant:\n%s", got, walkthroughRules)
	}
}

// openFiles counts the descriptors process pid holds.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// rssKB is the resident set size of process pid, in kB.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	return procField(t, fmt.Sprintf("/proc/%d/status", pid), "VmRSS:", 1)
}

// procLimit is the soft limit on open files of process pid.
func procLimit(t *testing.T, pid int) int {
	t.Helper()
	return procField(t, fmt.Sprintf("/proc/%d/limits", pid), "Max open files", 3)
}

// procField returns the number in word i of the line of file that starts
// with prefix.
func procField(t *testing.T, file, prefix string, i int) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			if f := strings.Fields(line); len(f) > i {
				if n, err := strconv.Atoi(f[i]); err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("%s: no number in word %d of the line %q", file, i, prefix)
	return 0
}
