//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/netlab"
)

// TestMain runs the raw forwarder when the test binary is started as one:
// the raw cases of TestPrivilegedNetbench start os.Executable(), which is
// the test binary there.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == rawForwardArg {
		os.Exit(rawMain(os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

// TestRawRewrite checks the raw forwarder's frame rule: an IPv4 frame
// gets the picked sink's MAC and the director's, anything else is left as
// it was and refused.
func TestRawRewrite(t *testing.T) {
	macs := [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
	own := [6]byte{2, 0, 0, 0, 0, 0xd}
	gen := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	frames := floodFrames("udp", 508, gen, func(int) net.HardwareAddr { return net.HardwareAddr(own[:]) })
	got := make([]int, len(macs))
	for i, f := range frames {
		want := macs[rawSink(binary.BigEndian.Uint32(f[26:30]), len(macs))]
		if !rawRewrite(f, macs, own) {
			t.Fatalf("frame %d: refused an IPv4 frame", i)
		}
		if [6]byte(f[0:6]) != want || [6]byte(f[6:12]) != own {
			t.Fatalf("frame %d: MACs %x → %x, want %x → %x", i, f[6:12], f[0:6], own, want)
		}
		got[slices.Index(macs, [6]byte(f[0:6]))]++
	}
	// The 508 source addresses spread over both sinks.
	for i, n := range got {
		if n < len(frames)*2/5 {
			t.Errorf("sink %d got %d of %d frames: want at least 40 %%", i, n, len(frames))
		}
	}
	arp := make([]byte, 60)
	copy(arp, frames[0])
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	before := string(arp)
	if rawRewrite(arp, macs, own) || string(arp) != before {
		t.Error("an ARP frame was accepted or changed")
	}
	if rawRewrite(frames[0][:33], macs, own) {
		t.Error("a frame shorter than an IPv4 header was accepted")
	}
}

// TestRawForwardArgs checks that bad arguments are refused before any
// socket is opened.
func TestRawForwardArgs(t *testing.T) {
	for _, args := range [][]string{
		{"-io", "auto", "-macs", "02:00:00:00:00:01", "-limit", "1s"},
		{"-io", "pcap", "-macs", "02:00:00:00:00:01", "-limit", "1s"},
		{"-macs", "", "-limit", "1s"},
		{"-macs", "02:00:00:00:00:01,nonsense", "-limit", "1s"},
		{"-macs", "02:00:00:00:00:01"}, // no limit
		{"-macs", "02:00:00:00:00:01", "-limit", "1s", "extra"},
	} {
		if err := rawForward(context.Background(), args, &tailBuffer{}); err == nil {
			t.Errorf("rawForward %q: no error", args)
		}
	}
}

// TestPrivilegedRawForwardStops runs the raw forwarder as the raw cases
// do, as a process of its own (this test binary, see TestMain), with each
// backend in a namespace of its own: it exits without an error on
// SIGTERM, and with one when its time limit passes.
func TestPrivilegedRawForwardStops(t *testing.T) {
	lab := netlab.ForTest(t, "raw")
	h, err := lab.AddHost("dir")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(h, "eth0", netip.MustParsePrefix("192.0.2.1/24")); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, io := range ioBackends {
		for _, byLimit := range []bool{false, true} {
			limit := "10m"
			if byLimit {
				limit = "300ms"
			}
			p, err := start("raw-"+io, h.Command(self, rawForwardArg, "-io", io, "-iface", "eth0",
				"-macs", "02:00:00:00:00:01,02:00:00:00:00:02", "-limit", limit))
			if err != nil {
				t.Fatal(err)
			}
			if err := waitFor(context.Background(), p, "ready", 30*time.Second, func() bool {
				return strings.Contains(p.out.String(), rawReady+" io "+io)
			}); err != nil {
				p.stop(syscall.SIGKILL)
				t.Fatalf("%s: %v", io, err)
			}
			if !byLimit {
				syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
			}
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				p.stop(syscall.SIGKILL)
				t.Fatalf("%s (limit %s): still running 60 s after it should have stopped", io, limit)
			}
			out := strings.TrimSpace(p.out.String())
			switch {
			case byLimit && (p.err == nil || !strings.Contains(out, "hard time limit of 300ms reached")):
				t.Errorf("%s: past its limit: %v: %s; want the limit's error", io, p.err, out)
			case !byLimit && p.err != nil:
				t.Errorf("%s: on SIGTERM: %v: %s; want a clean exit", io, p.err, out)
			}
		}
	}
}
