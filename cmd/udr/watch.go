//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/director"
)

// Watch intervals: watch(1)'s default, and the bounds udr takes.
const (
	watchDefault = 2 * time.Second
	watchMin     = 100 * time.Millisecond
	watchMax     = time.Hour
)

// watchOptions are `udr admin -L ... --watch [INTERVAL] [--count N]`.
type watchOptions struct {
	args     []string      // the ipvsadm listing asked for each refresh
	interval time.Duration // between refreshes
	count    int           // refreshes to print; 0: until a signal
}

// isWatch reports whether an admin command line asks for --watch.
func isWatch(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return a == "--watch" || strings.HasPrefix(a, "--watch=") })
}

// parseWatch takes --watch [INTERVAL] (seconds, fractions allowed) and
// --count N out of an admin command line, which must list (-L) the
// table. Without --stats, --rate, -c, --thresholds, --persistent-conn,
// --timeout, --daemon or -j, --rate is added: the rates are the point.
func parseWatch(args []string) (watchOptions, error) {
	o := watchOptions{interval: watchDefault}
	list, shown := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--watch":
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				d, err := watchInterval(args[i+1])
				if err != nil {
					return o, err
				}
				o.interval = d
				i++
			}
			continue
		case strings.HasPrefix(a, "--watch="):
			d, err := watchInterval(strings.TrimPrefix(a, "--watch="))
			if err != nil {
				return o, err
			}
			o.interval = d
			continue
		case a == "--count" || strings.HasPrefix(a, "--count="):
			v, ok := strings.CutPrefix(a, "--count=")
			if !ok {
				if i+1 >= len(args) {
					return o, usageErrorf("admin: --count needs a number of refreshes")
				}
				i++
				v = args[i]
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, usageErrorf("admin: --count %q: a number of refreshes of at least 1", v)
			}
			o.count = n
			continue
		case a == "-L" || a == "-l" || a == "--list":
			list = true
		case a == "--stats" || a == "--rate" || a == "--thresholds" || a == "--persistent-conn" ||
			a == "--timeout" || a == "--daemon" || a == "--connection" || a == "-j" || a == "--json":
			shown = true
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--"):
			// Bundled short options, as ipvsadm takes them: -Ln, -Lnc.
			if strings.ContainsAny(a, "Ll") {
				list = true
			}
			if strings.ContainsAny(a, "cj") {
				shown = true
			}
		}
		o.args = append(o.args, a)
	}
	if !list {
		return o, usageErrorf("admin: --watch refreshes a listing: give it with -L, e.g. udr admin -L -n --watch 1")
	}
	if !shown {
		o.args = append(o.args, "--rate")
	}
	return o, nil
}

func watchInterval(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	d := time.Duration(f * float64(time.Second))
	if err != nil || d < watchMin || d > watchMax {
		return 0, usageErrorf("admin: --watch %q: an interval in seconds from %v to %v", s, watchMin.Seconds(), watchMax)
	}
	return d, nil
}

// watcher is the loop of --watch: each refresh asks the daemon for the
// listing over one HTTP client, whose keep-alive connection to the
// control socket is reused from one refresh to the next.
type watcher struct {
	client   *http.Client
	path     string
	opts     watchOptions
	terminal bool             // stdout is a terminal: redraw the screen
	now      func() time.Time // the clock of the header lines
	// tick returns a channel that fires when the next refresh is due.
	tick func(time.Duration) <-chan time.Time
}

// run refreshes the listing until ctx is done (SIGINT, SIGTERM) or the
// count is reached, and returns the first error of the daemon or of the
// listing (its ipvsadm exit status).
func (w *watcher) run(ctx context.Context, stdout, stderr io.Writer) error {
	title := "udr admin " + strings.Join(w.opts.args, " ")
	for n := 1; ; n++ {
		out, err := w.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var b bytes.Buffer
		stamp := w.now().UTC().Format("2006-01-02 15:04:05 UTC")
		if w.terminal {
			b.WriteString("\x1b[H\x1b[2J") // home, clear the screen
			fmt.Fprintf(&b, "Every %v: %s    %s\n\n", w.opts.interval, title, stamp)
		} else {
			fmt.Fprintf(&b, "--- %d: %s, %s (every %v) ---\n", n, stamp, title, w.opts.interval)
		}
		b.WriteString(out.Stdout)
		stdout.Write(b.Bytes())
		io.WriteString(stderr, out.Stderr)
		if out.Exit != 0 {
			return &exitError{code: out.Exit, quiet: true, err: fmt.Errorf("exit %d", out.Exit)}
		}
		if w.opts.count > 0 && n >= w.opts.count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.tick(w.opts.interval):
		}
	}
}

// fetch asks the daemon for one listing.
func (w *watcher) fetch(ctx context.Context) (director.IpvsadmResponse, error) {
	var out director.IpvsadmResponse
	body, _ := json.Marshal(director.IpvsadmRequest{Args: w.opts.args})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://udr/v1/ipvsadm", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return out, unreachable(w.path, err)
	}
	defer resp.Body.Close()
	// Read the whole answer, so that the connection can be reused.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return out, fmt.Errorf("admin: bad answer from the daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("admin: the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("admin: bad answer from the daemon: %w", err)
	}
	return out, nil
}

// adminWatch is `udr admin -L ... --watch [INTERVAL] [--count N]`.
func adminWatch(c *http.Client, path string, args []string, stdout, stderr io.Writer) error {
	o, err := parseWatch(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w := &watcher{client: c, path: path, opts: o, terminal: isTerminal(stdout), now: time.Now, tick: time.After}
	return w.run(ctx, stdout, stderr)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
