//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pages are the HTTP mode's pages: a small one and 1 MiB.
var pages = []struct {
	name, path string
	size       int
}{
	{"small page (612 B)", "/small.html", 612},
	{"1 MiB page", "/big.bin", 1 << 20},
}

// wrkConns is the number of wrk's connections (keep-alive).
const wrkConns = 32

// startNginx runs nginx on port 80 of every sink, serving the pages from
// dir; the returned function stops them.
func (t *topo) startNginx(ctx context.Context, dir string) (func(), error) {
	root := filepath.Join(dir, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	for _, p := range pages {
		if err := os.WriteFile(filepath.Join(root, p.path), []byte(strings.Repeat("x", p.size)), 0o644); err != nil {
			return nil, err
		}
	}
	var procs []*process
	stop := func() {
		for _, p := range procs {
			p.stop(syscall.SIGQUIT)
		}
	}
	for i, h := range t.sinks {
		prefix := filepath.Join(dir, h.Name())
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			stop()
			return nil, err
		}
		conf := filepath.Join(prefix, "nginx.conf")
		err := os.WriteFile(conf, []byte(fmt.Sprintf(`daemon off;
master_process off;
user root;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	default_type application/octet-stream;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000000;
	server {
		listen %d;
		root %s;
	}
}
`, prefix, prefix, httpPort, root)), 0o644)
		if err != nil {
			stop()
			return nil, err
		}
		p, err := start("nginx", h.Command("nginx", "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log")))
		if err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, p)
		addr := netip.AddrPortFrom(sinkAddr(i).Addr(), uint16(httpPort)).String()
		err = waitFor(ctx, p, "nginx listening on "+h.Name(), 10*time.Second, func() bool {
			return t.gen.Run(func() error {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}) == nil
		})
		if err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// httpSample is one wrk run.
type httpSample struct {
	requests float64
	bytes    float64 // bytes read, as wrk counts them
	secs     float64
	errors   int // socket errors and non-2xx answers
}

func (s httpSample) rps() float64  { return s.requests / s.secs }
func (s httpSample) mbps() float64 { return s.bytes / s.secs / (1 << 20) }

var (
	wrkTotal  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB|TB) read`)
	wrkErrors = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// wrkDuration is how long wrk runs for a case of duration dur: whole
// seconds, at least one.
func wrkDuration(dur time.Duration) time.Duration {
	return max(time.Second, dur.Round(time.Second))
}

// wrk runs wrk from the generator against the VIP for dur.
func (t *topo) wrk(ctx context.Context, path string, dur time.Duration) (httpSample, error) {
	secs := int(wrkDuration(dur) / time.Second)
	url := fmt.Sprintf("http://%s:%d%s", vip, httpPort, path)
	p, err := start("wrk", t.gen.Command("wrk", "-t2", "-c"+strconv.Itoa(wrkConns), "-d"+strconv.Itoa(secs)+"s", "--timeout", "2s", url))
	if err != nil {
		return httpSample{}, err
	}
	select {
	case <-ctx.Done():
		p.stop(syscall.SIGKILL)
		return httpSample{}, ctx.Err()
	case <-p.done:
	case <-time.After(time.Duration(secs+20) * time.Second):
		p.stop(syscall.SIGKILL)
		return httpSample{}, fmt.Errorf("wrk did not end within %d s", secs+20)
	}
	return parseWrk(p.out.String(), p.err)
}

// parseWrk reads wrk's summary.
func parseWrk(out string, runErr error) (httpSample, error) {
	var s httpSample
	m := wrkTotal.FindStringSubmatch(out)
	if runErr != nil || m == nil {
		return s, fmt.Errorf("wrk: %v: %s", runErr, strings.TrimSpace(out))
	}
	s.requests, _ = strconv.ParseFloat(m[1], 64)
	s.secs, _ = strconv.ParseFloat(m[2], 64)
	s.secs *= map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m[3]]
	s.bytes, _ = strconv.ParseFloat(m[4], 64)
	s.bytes *= map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m[5]]
	if e := wrkErrors.FindStringSubmatch(out); e != nil {
		for _, v := range e[1:] {
			n, _ := strconv.Atoi(v)
			s.errors += n
		}
	}
	if e := wrkNon2xx.FindStringSubmatch(out); e != nil {
		n, _ := strconv.Atoi(e[1])
		s.errors += n
	}
	if s.secs <= 0 {
		return s, fmt.Errorf("wrk: no duration: %s", strings.TrimSpace(out))
	}
	return s, nil
}
