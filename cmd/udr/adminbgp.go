//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/udr-lb/udr/bgp"
)

// adminBGP is `udr admin -L --bgp [-j]`: the BGP sessions and the VIPs'
// routes (GET /v1/bgp), as a table or, with -j, as JSON. ipvsadm has no
// such listing; -n is accepted and changes nothing (udr prints addresses).
func adminBGP(c *http.Client, path string, args []string, stdout io.Writer) error {
	list, asJSON := false, false
	for _, a := range args {
		switch a {
		case "-L", "--list", "-l":
			list = true
		case "-j", "--json":
			asJSON = true
		case "-n", "--numeric", "--bgp":
		case "-Ln", "-nL":
			list = true
		default:
			return usageErrorf("admin: --bgp lists the BGP state: give -L --bgp [-j], not %q", a)
		}
	}
	if !list {
		return usageErrorf("admin: --bgp goes with -L: udr admin -L --bgp [-j]")
	}
	resp, err := c.Get("http://udr/v1/bgp")
	if err != nil {
		return unreachable(path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin: bad answer from the daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: 1, err: fmt.Errorf("admin: %s", strings.TrimSpace(string(body)))}
	}
	if asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st bgp.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("admin: bad answer from the daemon: %w", err)
	}
	return st.WriteTable(stdout, time.Now())
}
