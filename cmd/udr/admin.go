//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/director"
)

// runAdmin is `udr admin ARGS...` (and udr invoked as ipvsadm): ipvsadm's
// command line, carried out by the running daemon through its control
// socket. It prints what ipvsadm would print and exits as ipvsadm would.
//
//	udr admin [--control PATH] IPVSADM-ARGS...
//	udr admin [--control PATH] --reload
//	udr admin [--control PATH] --standby | --active
//	udr admin [--control PATH] -L --bgp [-j]
//	udr admin [--control PATH] -L [OPTIONS] --watch [INTERVAL] [--count N]
//	udr admin [--control PATH] --trace [--count N] [--duration D] [--write FILE.pcapng] [FILTER...]
func runAdmin(args []string, stdout, stderr io.Writer) error {
	return adminWith(args, os.Stdin, stdout, stderr)
}

func adminWith(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	path := defaultControlPath()
	if len(args) > 0 && (args[0] == "--control" || strings.HasPrefix(args[0], "--control=")) {
		if v, ok := strings.CutPrefix(args[0], "--control="); ok {
			path, args = v, args[1:]
		} else if len(args) > 1 {
			path, args = args[1], args[2:]
		} else {
			return usageErrorf("admin: --control needs a socket path")
		}
	}
	if slices.Contains(args, "--trace") {
		return adminTrace(path, args, stdout, stderr)
	}
	c := controlClient(path)
	if len(args) == 1 && args[0] == "--reload" {
		resp, err := c.Post("http://udr/v1/reload", "application/json", nil)
		if err != nil {
			return unreachable(path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return &exitError{code: 1, err: fmt.Errorf("reload refused, the running configuration stays: %s", strings.TrimSpace(string(body)))}
		}
		return nil
	}
	if len(args) == 1 && (args[0] == "--standby" || args[0] == "--active") {
		return setStandby(c, path, args[0] == "--standby", stdout)
	}
	if slices.Contains(args, "--bgp") {
		return adminBGP(c, path, args, stdout)
	}
	if isWatch(args) {
		return adminWatch(c, path, args, stdout, stderr)
	}
	req := director.IpvsadmRequest{Args: args}
	if slices.ContainsFunc(args, isRestore) {
		in, err := io.ReadAll(io.LimitReader(stdin, admin.MaxRulesSize+1))
		if err != nil {
			return err
		}
		if len(in) > admin.MaxRulesSize {
			return &exitError{code: 1, err: fmt.Errorf("admin: the rules on standard input are larger than %d bytes, the most udr reads", admin.MaxRulesSize)}
		}
		req.Stdin = string(in)
	}
	body, _ := json.Marshal(req)
	resp, err := c.Post("http://udr/v1/ipvsadm", "application/json", bytes.NewReader(body))
	if err != nil {
		return unreachable(path, err)
	}
	defer resp.Body.Close()
	var out director.IpvsadmResponse
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("admin: the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("admin: bad answer from the daemon: %w", err)
	}
	io.WriteString(stdout, out.Stdout)
	io.WriteString(stderr, out.Stderr)
	if out.Exit != 0 {
		return &exitError{code: out.Exit, quiet: true, err: fmt.Errorf("exit %d", out.Exit)}
	}
	return nil
}

// isRestore reports whether an argument is ipvsadm's -R, alone or bundled.
func isRestore(a string) bool {
	return a == "--restore" || strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "R")
}

// defaultControlPath is the control socket a client command talks to
// without --control: $UDR_CONTROL, or director.DefaultControlSocket.
func defaultControlPath() string {
	if p := os.Getenv("UDR_CONTROL"); p != "" {
		return p
	}
	return director.DefaultControlSocket
}

func controlClient(path string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}},
	}
}

func unreachable(path string, err error) error {
	return &exitError{code: 2, err: fmt.Errorf("admin: cannot reach the udr daemon at %s (is `udr run` running? --control or UDR_CONTROL name another socket): %v", path, err)}
}

// setStandby is `udr admin --standby` and `udr admin --active`: it puts the
// director in standby or makes it active (POST /v1/standby), and prints
// the state it is in and whether it changed, e.g. "standby (was active)".
func setStandby(c *http.Client, path string, on bool, stdout io.Writer) error {
	body, _ := json.Marshal(director.StandbyRequest{Standby: &on})
	resp, err := c.Post("http://udr/v1/standby", "application/json", bytes.NewReader(body))
	if err != nil {
		return unreachable(path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("admin: the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var out director.StandbyResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("admin: bad answer from the daemon: %w", err)
	}
	if out.Standby != on {
		return fmt.Errorf("admin: the daemon answered standby=%v, asked %v", out.Standby, on)
	}
	fmt.Fprintln(stdout, standbyLine(out))
	return nil
}

// standbyLine is what udr admin --standby and --active print.
func standbyLine(r director.StandbyResponse) string {
	state, other := "active", "standby"
	if r.Standby {
		state, other = other, state
	}
	if r.Changed {
		return state + " (was " + other + ")"
	}
	return state + " (already)"
}
