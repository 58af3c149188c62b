//go:build linux

package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/udr-lb/udr/director"
)

// runDirector is `udr run`: the director on a live interface until SIGTERM
// or SIGINT; SIGHUP re-reads the rules.
func runDirector(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("udr run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg director.Config
	fs.StringVar(&cfg.Iface, "iface", "", "`interface` the clients and real servers are on (required)")
	fs.StringVar(&cfg.Rules, "rules", "", "ipvsadm-save rules `file` (required); SIGHUP re-reads it")
	fs.StringVar(&cfg.VIPMAC, "vip-mac", "", "`MAC` answering ARP/NDP for the VIPs: empty for a virtual MAC, \"iface\" for the interface's, or an address")
	fs.DurationVar(&cfg.AnnounceInterval, "garp-interval", 10*time.Second, "period of gratuitous ARP / unsolicited NA for the VIPs")
	fs.IntVar(&cfg.Capacity, "capacity", 0, "connection table capacity (0: 1048576)")
	fs.BoolVar(&cfg.SloppyTCP, "sloppy-tcp", false, "schedule TCP packets without SYN that have no entry")
	fs.BoolVar(&cfg.KeepOffloads, "keep-offloads", false, "leave GRO/LRO/TSO/GSO on (frames larger than the MTU are then dropped)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("run: unexpected argument %q", fs.Arg(0))
	}
	if cfg.Iface == "" || cfg.Rules == "" {
		return usageErrorf("run: --iface and --rules are required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = log
	d, err := director.New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := d.Reload(); err != nil {
					log.Error("reload failed; the running table stays", "rules", cfg.Rules, "err", err)
				} else {
					log.Info("reloaded", "rules", cfg.Rules)
				}
			}
		}
	}()
	log.Info("udr running", "iface", cfg.Iface, "rules", cfg.Rules)
	err = d.Run(ctx)
	st, cs := d.Stats(), d.ConnStats()
	log.Info("udr stopped", "forwarded", st.Verdicts[0], "replies", st.Verdicts[1], "rx", cs.RxFrames, "kernel_drops", cs.RxKernelDrops)
	return err
}
