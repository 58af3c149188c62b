// Command udr is a userspace LVS direct-routing load balancer.
//
//	udr replay --rules RULES --in IN.pcap --out OUT.pcap --mac MAC   run the pipeline over a capture
//	udr version                                                      print the version
//
// See the README for every subcommand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const version = "0.1.0"

// exitError carries a process exit status with its message.
type exitError struct {
	code  int
	err   error
	quiet bool // the message was printed already (by the flag package)
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// flagError is the error of a FlagSet.Parse, which has printed it with the
// usage already: exit status 2, or 0 for -h.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return &exitError{code: 2, err: err, quiet: true}
}

// usageErrorf is a bad command line: exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

type command struct {
	name  string
	short string
	run   func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"admin", "ipvsadm's command line, applied to the running udr", runAdmin},
		{"config", "check a udr.yaml (udr config check FILE), or translate a keepalived.conf (udr config import [--iface NAME] FILE)", runConfig},
		{"demo", "run the LVS-DR walkthrough in network namespaces (root)", runDemo},
		{"run", "run the director on an interface", runDirector},
		{"status", "the running udr in one screen: interface, VIPs, neighbours, health, table, drops", runStatus},
		{"replay", "run the DR pipeline over a pcap or pcapng file", runReplay},
		{"realserver", "set up, check or tear down a real server's VIPs and ARP sysctls", runRealServer},
		{"version", "print udr's version", func(_ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "udr", version)
			return nil
		}},
	}
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	defer startProfile(stderr)()
	args := argv[1:]
	if filepath.Base(argv[0]) == "ipvsadm" {
		// Installed as ipvsadm (a symlink): behave as `udr admin`.
		return exitCode(runAdmin(args, stdout, stderr), stderr)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(c.run(args[1:], stdout, stderr), stderr)
		}
	}
	fmt.Fprintf(stderr, "udr: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if !ee.quiet {
			fmt.Fprintf(stderr, "udr: %v\n", err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "udr: %v\n", err)
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: udr COMMAND [ARGS]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
}
