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
	path    string // the (empty) rules file udr run starts with
	control string // udr run's control socket
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
	d.control = filepath.Join(tmp, "udr.sock")
	if err := d.startDirector(ctx); err != nil {
		return err
	}
	defer d.stopDirector()

	for _, cmd := range []string{
		"-A -t VIP:80 -s wrr",
		"-a -t VIP:80 -r RS1:80 -g -w 1",
		"-a -t VIP:80 -r RS2:80 -g -w 1",
	} {
		if err := d.ipvsadm(cmd); err != nil {
			return err
		}
	}
	if err := d.await(ctx, 2, "real server reachable"); err != nil {
		return err
	}
	client := drlab.HTTPClient(lab.Client, 5*time.Second)
	first, err := d.gets(ctx, client, "http://"+demoVIP+"/", 8)
	if err != nil {
		return err
	}
	if err := d.ipvsadm("-e -t VIP:80 -r RS1:80 -g -w 2"); err != nil {
		return err
	}
	second, err := d.gets(ctx, client, "http://"+demoVIP+"/", 12)
	if err != nil {
		return err
	}
	if err := d.ipvsadm("-L -n"); err != nil {
		return err
	}
	for _, cmd := range []string{
		"-A -t VIP:8099 -s wrr",
		"-a -t VIP:8099 -r RS1:80 -g -w 1",
		"-a -t VIP:8099 -r RS2:80 -g -w 1",
	} {
		if err := d.ipvsadm(cmd); err != nil {
			return err
		}
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

// walkthrough fills the walkthrough's addresses into a command.
var walkthrough = strings.NewReplacer("VIP", demoVIP, "RS1", demoRS1, "RS2", demoRS2)

// ipvsadm prints an ipvsadm command, with the walkthrough's addresses
// filled in, and runs it through udr admin against the director.
func (d *demo) ipvsadm(cmd string) error {
	line := walkthrough.Replace(cmd)
	d.say("# ipvsadm %s", line)
	var out, errb strings.Builder
	err := adminWith(append([]string{"--control", d.control}, strings.Fields(line)...), strings.NewReader(""), &out, &errb)
	for _, l := range strings.Split(strings.TrimRight(out.String()+errb.String(), "\n"), "\n") {
		if l != "" {
			d.say("  %s", l)
		}
	}
	if err != nil {
		return fmt.Errorf("demo: ipvsadm %s: %w", line, err)
	}
	return nil
}

// startDirector runs `udr run` in the director's namespace and waits until
// it has found both real servers' MACs.
func (d *demo) startDirector(ctx context.Context) error {
	if err := os.WriteFile(d.path, nil, 0o644); err != nil { // no service yet
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	d.dir = d.lab.Director.Command(exe, "run", "--iface", "eth0", "--rules", d.path, "--control", d.control, "--metrics", "off")
	logs, err := d.dir.StderrPipe()
	if err != nil {
		return err
	}
	if err := d.dir.Start(); err != nil {
		return fmt.Errorf("demo: start udr run: %w", err)
	}
	d.events = make(chan string, 64)
	go d.watch(logs)
	d.say("  director: udr run --iface eth0 (in the director's namespace); the commands below go through udr admin")
	return d.await(ctx, 1, "udr running")
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
