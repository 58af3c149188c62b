//go:build linux

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/udr-lb/udr/status"
)

// runStatus is `udr status [--control PATH] [-j]`: the running director's
// interface, VIPs and announcements, real servers' MACs and health,
// connection table and drops (GET /v1/status), as one screen of text or,
// with -j, as the JSON the daemon answered.
func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := defaultControlPath()
	fs.StringVar(&path, "control", path, "the control socket of the running udr (UDR_CONTROL)")
	asJSON := fs.Bool("j", false, "print the JSON of GET /v1/status")
	fs.BoolVar(asJSON, "json", false, "the same as -j")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("status: unexpected argument %q (udr status [--control PATH] [-j])", fs.Arg(0))
	}
	resp, err := controlClient(path).Get("http://udr/v1/status")
	if err != nil {
		return unreachable(path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("status: bad answer from the daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: 1, err: fmt.Errorf("status: the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st status.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("status: bad answer from the daemon: %w", err)
	}
	return status.WriteText(stdout, &st)
}
