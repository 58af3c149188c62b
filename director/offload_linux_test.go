//go:build linux

package director_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/host"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedOffloadsFailedStart: a start that fails after it turned the
// offloads off (here: a take-over with no control socket to take over
// through) turns them on again before it returns its error.
func TestPrivilegedOffloadsFailedStart(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "offfail", drlab.Options{})
	l.writeRules("-A -t "+vipPort+" -s rr", "-a -t "+vipPort+" -r "+rs1+":80 -g -w 1")
	features := func() map[string]bool {
		t.Helper()
		var m map[string]bool
		if err := l.Director.Run(func() (err error) { m, err = host.Features("eth0"); return err }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := features()
	if !before["tx-generic-segmentation"] {
		t.Fatalf("GSO is off on the lab's veth before the start; the test needs it on")
	}
	var log strings.Builder
	cfg := director.Config{Settings: director.Settings{Iface: "eth0", ControlSocket: "off"}, TakeOver: true, Rules: l.rules,
		Logger: slog.New(slog.NewTextHandler(&log, nil))}
	err := l.Director.Run(func() error {
		d, err := director.New(cfg)
		if err == nil {
			d.Close()
		}
		return err
	})
	if err == nil {
		t.Fatalf("director.New took over with no control socket, want an error")
	}
	if !strings.Contains(log.String(), "turned off offloads") {
		t.Fatalf("the start failed before it turned the offloads off (%v); the test needs a later failure:\n%s", err, log.String())
	}
	if diff := cmp.Diff(before, features()); diff != "" {
		t.Errorf("features after a failed start (%v) (-before +after):\n%s\nlog:\n%s", err, diff, log.String())
	}
}
