package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/netlab"
)

// TestRunKeepalivedFlags: udr run --keepalived takes its services from the
// keepalived.conf, needs --iface, and refuses a bad file naming its line.
func TestRunKeepalivedFlags(t *testing.T) {
	const valid = "../../keepalived/testdata/valid/02_http_get.conf"
	cfg, err := parseRun([]string{"--keepalived", valid, "--iface", "eth0"}, io.Discard)
	if err != nil {
		t.Fatalf("parseRun: %v", err)
	}
	fc, rules, _, err := loadConfig(cfg)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if fc.Interface != "eth0" || len(rules.Services) != 1 || len(rules.Services[0].Dests) != 2 || len(fc.HealthChecks()) != 1 {
		t.Errorf("loaded interface %q, %d services", fc.Interface, len(rules.Services))
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--keepalived", valid}, "--keepalived needs --iface"},
		{[]string{"--keepalived", valid, "--iface", "eth0", "--rules", "r"}, "give one of --rules, --config or --keepalived"},
		{[]string{"--keepalived", "../../keepalived/testdata/invalid/nat.conf", "--iface", "eth0"}, "nat.conf:4: lb_kind NAT: udr forwards by direct routing only"},
		{[]string{"--keepalived", "missing.conf", "--iface", "eth0"}, "no such file"},
	} {
		cfg, err := parseRun(tt.args, io.Discard)
		var ee *exitError
		if cfg != nil || !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("udr run %s: %v, want a usage error containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// keepalivedLabConf is a keepalived.conf for the lab: the VIP's two real
// servers with an HTTP_GET checker each, checked every second; rs2's on
// port 8080.
func keepalivedLabConf(weight int) string {
	return fmt.Sprintf(`! udr run --keepalived test
global_defs {
    router_id LAB
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100
    }
}
virtual_server 192.0.2.100 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 192.0.2.11 80 {
        weight %d
        HTTP_GET {
            url {
                path /index.html
                status_code 200
            }
            connect_timeout 0.5
            retry 1
        }
    }
    real_server 192.0.2.12 80 {
        weight 1
        HTTP_GET {
            url {
                path /index.html
                status_code 200
            }
            connect_port 8080
            connect_timeout 0.5
            retry 1
        }
    }
}
`, weight)
}

// TestPrivilegedRunKeepalived runs `udr run --keepalived` in the lab: its
// HTTP_GET checker removes rs2 when rs2's health URL answers 503 (the
// server still accepts connections), and restores it when the URL answers
// 200 again; then when rs2's HTTP server stops altogether; SIGHUP re-reads
// the keepalived.conf (a changed weight), as udr admin --reload does, and
// refuses an invalid one naming its line; the skipped VRRP blocks are one
// notice in the log.
func TestPrivilegedRunKeepalived(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "kaconf")
	sock := filepath.Join(bin.dir, "udr.sock")
	conf := filepath.Join(bin.dir, "keepalived.conf")
	write := func(weight int) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(keepalivedLabConf(weight)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// rs2's health URL, on :8080: 200 while healthy, else 503.
	var healthy atomic.Bool
	healthy.Store(true)
	var ln net.Listener
	if err := lab.RS[1].Run(func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/index.html" || !healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			io.WriteString(w, "rs2\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	write(1)
	d := startDaemon(t, lab, bin, sock, "--keepalived", conf, "--iface", "eth0", "--control", sock, "--metrics", "off", "--state", "off")
	if n := strings.Count(d.log.String(), "skipped global_defs"); n != 1 {
		t.Errorf("the log has %d notices of the skipped blocks at start, want 1:\n%s", n, d.log)
	}
	const (
		svc = "-A -t 192.0.2.100:80 -s wrr\n"
		rs1 = "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"
		rs2 = "-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1\n"
	)
	// await polls the table until it is want.
	await := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			if got = d.mustIpvsadm(t, "-S", "-n"); got == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: table\n%s\nwant\n%s", what, got, want)
	}
	await("at start", svc+rs1+rs2)

	healthy.Store(false)
	await("after rs2's URL answers 503", svc+rs1)
	healthy.Store(true)
	await("after rs2's URL answers 200 again", svc+rs1+rs2)
	srv.Close()
	await("after rs2's health server stopped", svc+rs1)

	// rs2's health server is still down: the table after the reload
	// settles without it.
	write(3)
	mark := d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.wait(mark, "msg=reloaded", daemonEventTimeout, d.exited); err != nil {
		t.Fatalf("after SIGHUP: %v\n%s", err, d.log)
	}
	await("after SIGHUP with rs1's weight 3", svc+"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 3\n")

	// udr admin --reload reads it again too.
	write(4)
	if r := d.admin(t, nil, "--reload"); r.code != 0 || r.stderr != "" {
		t.Fatalf("udr admin --reload: exit %d, stderr %q", r.code, r.stderr)
	}
	await("after udr admin --reload with rs1's weight 4", svc+"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 4\n")

	// A keepalived.conf made invalid is refused; the table stays.
	if err := os.WriteFile(conf, []byte(strings.Replace(keepalivedLabConf(4), "lb_kind DR", "lb_kind NAT", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	mark = d.log.len()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, err := d.log.wait(mark, "reload failed", daemonEventTimeout, d.exited)
	if err != nil {
		t.Fatalf("after SIGHUP of an invalid file: %v\n%s", err, d.log)
	}
	if !strings.Contains(line, "keepalived.conf:15: lb_kind NAT: udr forwards by direct routing only") {
		t.Errorf("reload failure does not name the line: %s", line)
	}
	await("after a refused reload", svc+"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 4\n")
}
