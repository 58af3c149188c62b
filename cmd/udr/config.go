package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/keepalived"
	"github.com/udr-lb/udr/service"
)

// runConfig is `udr config check FILE`: validate a udr.yaml without
// running anything; and `udr config import [--iface NAME] FILE`: print the
// udr.yaml equivalent to a keepalived.conf (its notice and warnings on
// stderr).
func runConfig(args []string, stdout, stderr io.Writer) error {
	const usage = "config: usage: udr config check FILE | udr config import [--iface NAME] KEEPALIVED.CONF"
	if len(args) == 0 {
		return usageErrorf(usage)
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			return usageErrorf(usage)
		}
		summary, err := config.Check(args[1])
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		fmt.Fprintln(stdout, summary)
		return nil
	case "import":
		fs := flag.NewFlagSet("udr config import", flag.ContinueOnError)
		fs.SetOutput(stderr)
		iface := fs.String("iface", "", "the director's `interface`, written as udr.yaml's interface (keepalived.conf does not say it)")
		if err := fs.Parse(args[1:]); err != nil {
			return flagError(err)
		}
		if fs.NArg() != 1 {
			return usageErrorf(usage)
		}
		if *iface != "" {
			if err := config.CheckInterfaceName(*iface); err != nil {
				return usageErrorf("config import: --iface %v", err)
			}
		}
		path := fs.Arg(0)
		text, notes, err := importKeepalived(path, *iface)
		for _, n := range notes {
			fmt.Fprintln(stderr, n)
		}
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if *iface == "" {
			fmt.Fprintf(stderr, "%s: no --iface: the udr.yaml says interface: %s, set it\n", path, keepalived.PlaceholderInterface)
		}
		fmt.Fprint(stdout, text)
		return nil
	}
	return usageErrorf(usage)
}

// importKeepalived translates the keepalived.conf at path and checks the
// result as udr.yaml: it returns the text, and the notice and warnings.
func importKeepalived(path, iface string) (string, []string, error) {
	r, notes, err := translateKeepalived(path, iface)
	if err != nil {
		return "", notes, err
	}
	// What the translation cannot say of a keepalived.conf's lines, the
	// udr.yaml checks say of the translation's.
	if _, _, _, err := config.Parse([]byte(r.YAML), translatedName(path), filepath.Dir(path)); err != nil {
		return "", notes, err
	}
	return r.YAML, notes, nil
}

func translatedName(path string) string { return path + " (as udr.yaml)" }

// translateKeepalived translates the keepalived.conf at path and returns,
// even with an error, the translation's notice and warnings.
func translateKeepalived(path, iface string) (*keepalived.Result, []string, error) {
	r, err := keepalived.Import(path, keepalived.Options{Interface: iface})
	var notes []string
	if r != nil {
		if r.Notice != "" {
			notes = append(notes, r.Notice)
		}
		notes = append(notes, r.Warnings...)
	}
	return r, notes, err
}

// keepalivedLoader is udr run --keepalived's director.Config.Load: the
// keepalived.conf at path read again, translated, its notice and warnings
// returned as the load's warnings.
func keepalivedLoader(path, iface string) func() (*config.File, *service.Config, []string, error) {
	return func() (*config.File, *service.Config, []string, error) {
		r, notes, err := translateKeepalived(path, iface)
		if err != nil {
			return nil, nil, notes, err
		}
		fc, cfg, warnings, err := config.Parse([]byte(r.YAML), translatedName(path), filepath.Dir(path))
		return fc, cfg, append(notes, warnings...), err
	}
}
