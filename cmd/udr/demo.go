//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
)

// The walkthrough's virtual services and real servers.
const (
	demoVIP = "192.0.2.100"
	demoRS1 = "192.0.2.11"
	demoRS2 = "192.0.2.12"
)

// runDemo is `udr demo`: the LVS-DR walkthrough in network namespaces,
// with udr as the director.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("udr demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "show the director's log")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if os.Geteuid() != 0 {
		return errors.New("demo: needs root to create network namespaces (run it with sudo)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &demo{out: stdout, verbose: *verbose}
	err := d.run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "interrupted; namespaces removed")
		return nil
	}
	return err
}

type demo struct {
	out     io.Writer
	verbose bool
	lab     *drlab.Lab
	rules   []string // the rules file, one ipvsadm-save line each
	path    string
	dir     *exec.Cmd
	events  chan string
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context) error {
	d.say("Building the LVS-DR walkthrough in network namespaces:")
	d.say("  client 192.0.2.50, director 192.0.2.2 (udr), rs1 %s, rs2 %s, VIP %s; one Ethernet segment", demoRS1, demoRS2, demoVIP)
	lab, err := drlab.New("demo", drlab.Options{})
	if err != nil {
		return fmt.Errorf("demo: build namespaces: %w", err)
	}
	d.lab = lab
	defer lab.Close()
	d.say("  rs1, rs2: VIP on lo, arp_ignore=1, arp_announce=2 (udr realserver setup --vip %s); HTTP on :80 answering their name", demoVIP)

	tmp, err := os.MkdirTemp("", "udr-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	d.path = filepath.Join(tmp, "rules")

	d.ipvsadm("-A -t %s:80 -s wrr", demoVIP)
	d.ipvsadm("-a -t %s:80 -r %s:80 -g -w 1", demoVIP, demoRS1)
	d.ipvsadm("-a -t %s:80 -r %s:80 -g -w 1", demoVIP, demoRS2)
	if err := d.startDirector(ctx); err != nil {
		return err
	}
	defer d.stopDirector()

	client := drlab.HTTPClient(lab.Client, 5*time.Second)
	first, err := d.gets(ctx, client, "http://"+demoVIP+"/", 8)
	if err != nil {
		return err
	}

	d.edit("-e -t %s:80 -r %s:80 -g -w 2", demoRS1, "-a -t %s:80 -r %s:80 -g -w 1", "-a -t %s:80 -r %s:80 -g -w 2", demoVIP, demoRS1)
	if err := d.reload(ctx); err != nil {
		return err
	}
	second, err := d.gets(ctx, client, "http://"+demoVIP+"/", 12)
	if err != nil {
		return err
	}

	d.ipvsadm("-A -t %s:8099 -s wrr", demoVIP)
	d.ipvsadm("-a -t %s:8099 -r %s:80 -g -w 1", demoVIP, demoRS1)
	d.ipvsadm("-a -t %s:8099 -r %s:80 -g -w 1", demoVIP, demoRS2)
	if err := d.reload(ctx); err != nil {
		return err
	}
	for range 2 {
		_, err := drlab.Get(client, "http://"+demoVIP+":8099/")
		switch {
		case drlab.IsRefused(err):
			d.say("$ curl http://%s:8099/   -> connection refused (the real server has nothing on :8099: DR cannot map ports)", demoVIP)
		case err != nil:
			return fmt.Errorf("demo: GET :8099: %w", err)
		default:
			return errors.New("demo: GET :8099 succeeded; the real servers should refuse it")
		}
	}
	d.say("")
	d.say("weights 1:1  %s", strings.Join(first, " "))
	d.say("weights 2:1  %s", strings.Join(second, " "))
	return nil
}

// ipvsadm prints an ipvsadm command and adds it to the rules file.
func (d *demo) ipvsadm(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	d.say("# ipvsadm %s", line)
	d.rules = append(d.rules, line)
}

// edit prints an -e command and replaces the -a line it changes.
func (d *demo) edit(cmd, rs, old, repl, vip, rs1 string) {
	d.say("# ipvsadm "+cmd, vip, rs)
	o, r := fmt.Sprintf(old, vip, rs1), fmt.Sprintf(repl, vip, rs1)
	for i, l := range d.rules {
		if l == o {
			d.rules[i] = r
		}
	}
}

func (d *demo) writeRules() error {
	return os.WriteFile(d.path, []byte(strings.Join(d.rules, "\n")+"\n"), 0o644)
}

// startDirector runs `udr run` in the director's namespace and waits until
// it has found both real servers' MACs.
func (d *demo) startDirector(ctx context.Context) error {
	if err := d.writeRules(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	d.dir = d.lab.Director.Command(exe, "run", "--iface", "eth0", "--rules", d.path)
	logs, err := d.dir.StderrPipe()
	if err != nil {
		return err
	}
	if err := d.dir.Start(); err != nil {
		return fmt.Errorf("demo: start udr run: %w", err)
	}
	d.events = make(chan string, 64)
	go d.watch(logs)
	d.say("  director: udr run --iface eth0 --rules %s (in the director's namespace)", filepath.Base(d.path))
	return d.await(ctx, 2, "real server reachable")
}

// watch reads the director's log: warnings are shown, the rest only with -v.
func (d *demo) watch(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if d.verbose || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			d.say("  udr: %s", line)
		}
		d.events <- line
	}
	close(d.events)
}

// await waits for n log lines that contain what.
func (d *demo) await(ctx context.Context, n int, what string) error {
	timeout := time.After(10 * time.Second)
	for n > 0 {
		select {
		case line, ok := <-d.events:
			if !ok {
				return fmt.Errorf("demo: the director exited (%v) while waiting for %q", d.dir.Wait(), what)
			}
			if strings.Contains(line, what) {
				n--
			}
		case <-timeout:
			return fmt.Errorf("demo: no %q from the director within 10s", what)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// reload rewrites the rules file and sends SIGHUP, as an operator would
// until udr admin applies commands directly.
func (d *demo) reload(ctx context.Context) error {
	if err := d.writeRules(); err != nil {
		return err
	}
	d.say("  (rules file rewritten, SIGHUP to udr)")
	if err := d.dir.Process.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	return d.await(ctx, 1, "msg=reloaded")
}

func (d *demo) stopDirector() {
	if d.dir == nil || d.dir.Process == nil {
		return
	}
	d.dir.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for range d.events {
		}
		d.dir.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.dir.Process.Kill()
	}
}

// gets fetches url n times, a new connection each, and prints each answer.
func (d *demo) gets(ctx context.Context, c *http.Client, url string, n int) ([]string, error) {
	var got []string
	for i := range n {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		body, err := drlab.Get(c, url)
		if err != nil {
			return nil, fmt.Errorf("demo: GET %s (%d of %d): %w", url, i+1, n, err)
		}
		d.say("$ curl %s   -> %s", url, body)
		got = append(got, body)
	}
	return got, nil
}
