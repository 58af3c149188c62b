//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/udr-lb/udr/forwarder"
)

// rawForwardArg, as netbench's first argument, runs the raw forwarder
// (rawMain) instead of the benchmark: the raw cases start netbench's own
// binary that way in the director.
const rawForwardArg = "-raw-forward"

// rawReady is the line the raw forwarder prints once its socket is open.
const rawReady = "raw forwarder ready"

// The raw forwarder is udr's data path with no decision: the socket udr
// run opens (forwarder.ListenGroup with the same ConnConfig: the VIP
// filter of forwarder.BuildFilter, the receive backend, PACKET_QDISC_BYPASS
// and the rest that Listen sets), read and written in the Worker's batches
// with the Worker's calls (ReadInPlace and Release on a ring, ReadBatch
// into MTU-sized buffers on the socket; WriteBatch). Between the two, each
// IPv4 frame gets a sink's MAC as its destination, picked by a hash of its
// source address, and the director's as its source; any other frame (ARP)
// is dropped. What udr spends beyond it is its pipeline and the Worker's
// bookkeeping (the per-batch read deadline, timers, counters): the raw
// forwarder's rate is udr's ceiling on this kernel.

// rawMain runs the raw forwarder with args (after rawForwardArg) until
// SIGTERM or SIGINT, and returns the exit status. It fails when its hard
// time limit (-limit) passes first.
func rawMain(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := rawForward(ctx, args, os.Stdout); err != nil {
		fmt.Fprintln(stderr, "netbench "+rawForwardArg+":", err)
		return 1
	}
	return 0
}

// rawForward parses args and forwards until ctx is done or the time limit
// passes (an error); it prints rawReady to ready once it receives.
func rawForward(ctx context.Context, args []string, ready io.Writer) error {
	fs := flag.NewFlagSet("netbench "+rawForwardArg, flag.ContinueOnError)
	ioName := fs.String("io", "ring-v2", "receive `backend`: socket, ring or ring-v2")
	ifname := fs.String("iface", "eth0", "`interface` to forward on")
	macList := fs.String("macs", "", "the sinks' `MACs`, comma-separated")
	limit := fs.Duration("limit", 0, "hard time `limit`: past it, the forwarder stops with an error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ioMode, err := forwarder.ParseIO(*ioName)
	if err != nil || ioMode == forwarder.IOAuto {
		return fmt.Errorf("-io %q: want socket, ring or ring-v2", *ioName)
	}
	if *limit <= 0 {
		return errors.New("-limit: want a duration above 0")
	}
	var macs [][6]byte
	for _, s := range strings.Split(*macList, ",") {
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("-macs %q: want Ethernet MACs, comma-separated", *macList)
		}
		macs = append(macs, [6]byte(hw))
	}
	ifi, err := net.InterfaceByName(*ifname)
	if err != nil {
		return err
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("%s: no Ethernet MAC", *ifname)
	}
	own := [6]byte(ifi.HardwareAddr)

	filter, err := forwarder.BuildFilter([]netip.Addr{vip})
	if err != nil {
		return err
	}
	conns, err := forwarder.ListenGroup(*ifname, forwarder.ConnConfig{Filter: filter, IO: ioMode}, 1, nil)
	if err != nil {
		return err
	}
	c := conns[0]
	defer c.Close()
	if c.IO() != ioMode {
		return fmt.Errorf("asked for io %v, got %v", ioMode, c.IO())
	}

	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()
	unblock := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer unblock()
	fmt.Fprintln(ready, rawReady, "io", c.IO())

	var f rawForwarder
	f.init(c, macs, own, ifi.MTU)
	err = f.run(ctx)
	st := c.Stats()
	summary := fmt.Sprintf("read %d frames, forwarded %d, dropped %d not IPv4; kernel drops %d, send errors %d (%d frames unsent)",
		st.RxFrames, st.TxFrames, f.notIPv4, st.RxKernelDrops, f.txErrors, f.txUnsent)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, summary)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("hard time limit of %v reached (%s)", *limit, summary)
	}
	return nil
}

// rawForwarder holds the raw forwarder's batch, allocated once, as the
// Worker's.
type rawForwarder struct {
	conn    forwarder.Conn
	inPlace forwarder.InPlaceConn // conn, when it lends its frames
	bufs    [][]byte              // the receive buffers, when the Conn copies into them
	sizes   []int
	frames  [][]byte // the batch's frames
	out     [][]byte
	macs    [][6]byte
	own     [6]byte

	notIPv4, txErrors, txUnsent uint64
}

// init sizes the batch as udr run's Worker: forwarder.DefaultBatchSize
// frames, buffers of the MTU plus an Ethernet header, a VLAN tag and slack
// when the Conn does not read in place.
func (f *rawForwarder) init(c forwarder.Conn, macs [][6]byte, own [6]byte, mtu int) {
	f.conn, f.macs, f.own = c, macs, own
	if ip, ok := c.(forwarder.InPlaceConn); ok && ip.InPlace() {
		f.inPlace = ip
	}
	n := forwarder.DefaultBatchSize
	f.frames, f.sizes, f.out = make([][]byte, n), make([]int, n), make([][]byte, 0, n)
	if f.inPlace == nil {
		f.bufs = make([][]byte, n)
		for i := range f.bufs {
			f.bufs[i] = make([]byte, mtu+14+4+4)
		}
	}
}

// run forwards batches until ctx is done (its end sets the Conn's read
// deadline, which ends a blocked read) or the Conn fails.
func (f *rawForwarder) run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := f.read()
		if err != nil && n == 0 {
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
				continue
			}
			return err
		}
		out := f.out[:0]
		for _, b := range f.frames[:n] {
			if rawRewrite(b, f.macs, f.own) {
				out = append(out, b)
			} else {
				f.notIPv4++
			}
		}
		if len(out) > 0 {
			if sent, err := f.conn.WriteBatch(out); err != nil {
				f.txErrors++
				f.txUnsent += uint64(len(out) - sent)
			}
		}
		if f.inPlace != nil {
			f.inPlace.Release()
		}
	}
	return nil
}

// read reads a batch into f.frames[:n], as the Worker does: views of the
// ring's memory, or of f.bufs, into which ReadBatch copied them.
func (f *rawForwarder) read() (int, error) {
	if f.inPlace != nil {
		return f.inPlace.ReadInPlace(f.frames)
	}
	n, err := f.conn.ReadBatch(f.bufs, f.sizes)
	for i := range n {
		f.frames[i] = f.bufs[i][:f.sizes[i]]
	}
	return n, err
}

// rawRewrite readies an untagged IPv4 frame for the sink rawSink picks:
// its MAC as the destination, own as the source. It reports false, and
// leaves b as it was, for any other frame.
func rawRewrite(b []byte, macs [][6]byte, own [6]byte) bool {
	if len(b) < 14+20 || b[12] != 0x08 || b[13] != 0x00 {
		return false
	}
	copy(b[0:6], macs[rawSink(binary.BigEndian.Uint32(b[26:30]), len(macs))][:])
	copy(b[6:12], own[:])
	return true
}

// rawSink picks one of n sinks for IPv4 source address src: a
// multiplicative (Fibonacci) hash, scaled to n without a division.
func rawSink(src uint32, n int) int {
	return int(uint64(src*0x9e3779b1) * uint64(n) >> 32)
}
