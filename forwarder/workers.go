package forwarder

import (
	"context"
	"time"

	"github.com/udr-lb/udr/conntrack"
)

// Workers are several Workers that move the frames of one interface
// together: each reads its own Conn (udr run joins them in one
// PACKET_FANOUT group, which hands every frame of a client to one of
// them), and owns its Pipeline and connection table; their Pipelines share
// one Table (PipelineConfig.Shared), the real servers' registry and the
// neighbour table. Nothing passes between them per frame.
//
// What the control plane asks of the director goes to all of them, and
// what it reads is their sum: listings, statistics, flushes. Control
// frames go to the first, which is as good as any: frames leave by the
// same interface.
type Workers []*Worker

// Run runs every Worker until ctx is done or each has returned (Worker.Run).
// When one fails, the others are stopped; the first error is returned.
func (ws Workers) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(ws))
	for _, w := range ws {
		go func() { errs <- w.Run(ctx) }()
	}
	var first error
	for range ws {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// Send queues frame on the first Worker (Worker.Send).
func (ws Workers) Send(frame []byte) bool { return ws[0].Send(frame) }

// Do runs fn on every Worker in turn (Worker.Do), and stops at the first
// error.
func (ws Workers) Do(ctx context.Context, fn func(p *Pipeline, now time.Time)) error {
	for _, w := range ws {
		if err := w.Do(ctx, fn); err != nil {
			return err
		}
	}
	return nil
}

// FlushNodest asks every Worker to flush the connections of deleted real
// servers (Worker.FlushNodest).
func (ws Workers) FlushNodest() {
	for _, w := range ws {
		w.FlushNodest()
	}
}

// Seen returns the lowest registry epoch the Workers' pipelines have
// reached (Pipeline.Seen): dest.Registry.Reap may free only what none of
// them can still hold.
func (ws Workers) Seen() uint64 {
	seen := ws[0].p.Seen()
	for _, w := range ws[1:] {
		seen = min(seen, w.p.Seen())
	}
	return seen
}

// ListConns lists the connection tables of the Workers one after the
// other (Worker.ListConns); fn is called on the caller's goroutine.
func (ws Workers) ListConns(ctx context.Context, fn func([]conntrack.Listed)) error {
	for _, w := range ws {
		if err := w.ListConns(ctx, fn); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the sum of the Workers' published counters; ListStepMax
// and ListStepCPUMax are the largest of theirs.
func (ws Workers) Stats() WorkerStats {
	var sum WorkerStats
	for _, w := range ws {
		sum.add(w.Stats())
	}
	return sum
}

// add adds o to s: counters sum, maxima are the larger.
func (s *WorkerStats) add(o WorkerStats) {
	s.Frames.Add(&o.Frames)
	s.Batches += o.Batches
	s.TxErrors += o.TxErrors
	s.TxUnsent += o.TxUnsent
	s.ControlSent += o.ControlSent
	s.ControlDropped += o.ControlDropped
	s.EventsDropped += o.EventsDropped
	s.ListSteps += o.ListSteps
	s.ListStepMax = max(s.ListStepMax, o.ListStepMax)
	s.ListStepTotal += o.ListStepTotal
	s.ListStepCPUMax = max(s.ListStepCPUMax, o.ListStepCPUMax)
	s.Conns += o.Conns
	s.Capacity += o.Capacity
	s.Expired += o.Expired
	s.Evicted += o.Evicted
	s.Full += o.Full
	s.Dropped += o.Dropped
	s.Defending += o.Defending
}

// PipelineStats returns the sum of the Workers' verdict counters, read
// from their pipelines: call it after Run returned.
func (ws Workers) PipelineStats() Stats {
	var sum Stats
	for _, w := range ws {
		sum.Add(w.p.Stats())
	}
	return sum
}
