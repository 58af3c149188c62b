//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == rawForwardArg {
		// A raw case's forwarder (raw.go), started by netbench itself.
		os.Exit(rawMain(os.Args[2:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

// run parses args, runs the benchmark and prints its table to stdout;
// progress goes to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("netbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.reps, "reps", 3, "interleaved `repetitions` of every case")
	fs.DurationVar(&o.dur, "dur", 5*time.Second, "measured `duration` of each case")
	fs.DurationVar(&o.warm, "warmup", 500*time.Millisecond, "`duration` of each flood before its measurement starts")
	fs.StringVar(&o.mode, "mode", "all", "`mode`: udp, tcp, http, all, or a comma-separated list")
	fs.BoolVar(&o.short, "short", false, "the CI run: 1 repetition of 2 s per case (-reps and -dur are ignored)")
	fs.IntVar(&o.flows, "flows", 10240, "flows of the udp and tcp floods (at most 25,400)")
	fs.StringVar(&o.udr, "udr", "", "udr `binary` to measure (default: go build ./cmd/udr from this module)")
	fs.StringVar(&o.profile, "profile", "", "`directory` to write a CPU profile of every udr run into (UDR_CPUPROFILE), named after its case and mode; empty for none")
	fs.BoolVar(&o.trace, "trace", false, "also run every udr case with a trace of every frame (udr admin --trace) running: cases named NAME+trace")
	fs.StringVar(&o.readme, "readme", "bench/README.md", "`file` (relative to the module root) whose generated table is replaced; empty for none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.short {
		o.reps, o.dur = 1, 2*time.Second
	}
	o.command = "go run ./bench/netbench"
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		o.command += " " + a
	}
	o.log = stderr
	res, err := bench(ctx, o)
	if err != nil {
		return err
	}
	table := res.table()
	fmt.Fprint(stdout, table)
	if o.readme != "" {
		return writeReadme(res.root, o.readme, table)
	}
	return nil
}
