//go:build linux

package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"

	"github.com/udr-lb/udr/internal/host"
)

// vipFlags collects repeated --vip flags.
type vipFlags []netip.Addr

func (v *vipFlags) String() string { return fmt.Sprint(*v) }

func (v *vipFlags) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q: not an IP address", s)
	}
	*v = append(*v, a.Unmap())
	return nil
}

// runRealServer is `udr realserver setup|check|teardown --vip VIP...`: what
// an LVS-DR real server needs, without the shell script every guide copies.
func runRealServer(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("realserver: want setup, check or teardown")
	}
	verb := args[0]
	fs := flag.NewFlagSet("udr realserver "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var vips vipFlags
	fs.Var(&vips, "vip", "virtual `IP` the real server accepts on lo (repeatable, required)")
	if err := fs.Parse(args[1:]); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("realserver %s: unexpected argument %q", verb, fs.Arg(0))
	}
	if len(vips) == 0 {
		return usageErrorf("realserver %s: at least one --vip is required", verb)
	}
	switch verb {
	case "setup":
		if err := host.SetupRealServer(vips); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "real server ready for", vips.String())
		return nil
	case "teardown":
		return host.TeardownRealServer(vips)
	case "check":
		missing := 0
		for _, it := range host.CheckRealServer(vips) {
			if it.OK {
				fmt.Fprintf(stdout, "ok       %s\n", it.Name)
				continue
			}
			missing++
			fmt.Fprintf(stdout, "missing  %s\n         fix: %s\n", it.Name, it.Fix)
		}
		if missing > 0 {
			return &exitError{code: 1, err: fmt.Errorf("realserver check: %d item(s) missing", missing)}
		}
		return nil
	}
	return usageErrorf("realserver: unknown action %q, want setup, check or teardown", verb)
}
