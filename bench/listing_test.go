package bench

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/forwarder/forwardertest"
	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/udrtest"
)

// fillConns opens n connections, each from its own client address and
// port, on p.
func fillConns(b *testing.B, p *forwarder.Pipeline, vmac []byte, n int) {
	b.Helper()
	vip := netip.AddrPortFrom(udrtest.VIP, 80)
	eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: vmac}
	frame := udrtest.TCP(eth, netip.MustParseAddrPort("198.51.100.1:1024"), vip, udrtest.SYN, nil)
	buf := make([]byte, len(frame))
	const srcAddr, srcPort = 14 + 12, 14 + 20
	for i := range n {
		copy(buf, frame)
		port := 1024 + i%60000
		buf[srcPort], buf[srcPort+1] = byte(port>>8), byte(port)
		// 198.51.100.0/24 and on: distinct per 60,000 connections.
		buf[srcAddr+2], buf[srcAddr+3] = 100+byte(i/60000/256), byte(i/60000)
		buf[14+10], buf[14+11] = 0, 0
		sum := checksum.Checksum(buf[14 : 14+20])
		buf[14+10], buf[14+11] = byte(sum>>8), byte(sum)
		if v, _ := p.Process(buf, epoch); v != forwarder.VerdictForward {
			b.Fatalf("SYN %d: %v", i, v)
		}
	}
}

// BenchmarkListingStall lists a 1,000,000-entry connection table through
// the worker, as udr admin -L -c -n does, while frames flow, and reports
// how long forwarding stopped for the listing: the longest and the mean
// listing step (max-step-µs, mean-step-µs; wall clock, so they include any
// time the worker's thread waited for a CPU), the most CPU time a step
// took (max-step-cpu-µs: the step's own cost), the steps per listing, and, for
// comparison, the old whole-table copy on the same table (whole-copy-ms,
// the better of two), which stopped forwarding for all of its duration.
// ns/op is the time of one whole listing.
func BenchmarkListingStall(b *testing.B) {
	const entries = 1_000_000
	p, vmac := newPipeline(b, 1<<20)
	fillConns(b, p, vmac, entries)
	if n := p.Conns().Len(); n != entries {
		b.Fatalf("%d entries, want %d", n, entries)
	}

	conn := forwardertest.NewConn(64)
	w := forwarder.NewWorker(forwarder.WorkerConfig{Conn: conn, Pipeline: p, Clock: func() time.Time { return epoch }})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() {
		cancel()
		conn.Close()
		<-ran
	}()

	// Frames flow the whole time: batches of 64 ACKs of one established
	// connection, written back and drained.
	eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: vmac}
	ack := udrtest.TCP(eth, netip.MustParseAddrPort("198.51.100.1:1024"), netip.AddrPortFrom(udrtest.VIP, 80), udrtest.ACK, nil)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = ack
	}
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for {
			select {
			case conn.In <- batch:
			case <-stop:
				return
			}
		}
	}()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-conn.Out:
			case <-stop:
				return
			}
		}
	}()

	runtime.GC() // the fill and the whole copy left garbage: collect it untimed
	before := w.Stats()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		lctx, lcancel := context.WithTimeout(ctx, time.Minute)
		err := w.ListConns(lctx, func(chunk []conntrack.Listed) {
			n += len(chunk)
		})
		lcancel()
		if err != nil {
			b.Fatalf("ListConns: %v", err)
		}
		if n < entries {
			b.Fatalf("listed %d, want %d", n, entries)
		}
	}
	b.StopTimer()

	// The old way, on the same table with the same traffic: the worker
	// copied the whole table between two batches (admin.Conns in a
	// call on the worker), and forwarded nothing meanwhile.
	var wholeCopy time.Duration
	for range 2 {
		var took time.Duration
		err := w.Do(ctx, func(p *forwarder.Pipeline, now time.Time) {
			start := time.Now()
			old := admin.Conns(p.Conns(), p.Registry(), p.Ticks(now))
			took = time.Since(start)
			if len(old) != entries {
				b.Errorf("whole copy: %d entries", len(old))
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		if wholeCopy == 0 || took < wholeCopy {
			wholeCopy = took
		}
		runtime.GC()
	}
	close(stop)
	<-fed
	<-drained
	after := w.Stats()
	steps := after.ListSteps - before.ListSteps
	b.ReportMetric(float64(after.ListStepMax.Nanoseconds())/1e3, "max-step-µs")
	b.ReportMetric(float64(after.ListStepCPUMax.Nanoseconds())/1e3, "max-step-cpu-µs")
	b.ReportMetric(float64((after.ListStepTotal-before.ListStepTotal).Nanoseconds())/float64(steps)/1e3, "mean-step-µs")
	b.ReportMetric(float64(steps)/float64(b.N), "steps/op")
	b.ReportMetric(float64(wholeCopy.Nanoseconds())/1e6, "whole-copy-ms")
	b.ReportMetric(float64(after.Frames.Verdicts[forwarder.VerdictForward]-before.Frames.Verdicts[forwarder.VerdictForward])/float64(b.N), "frames-forwarded/op")
}
