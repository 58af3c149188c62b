package forwarder

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/conntrack"
)

// Listing budget per step.
const (
	// ListingChunk is the most connection entries a listing step copies,
	// and ListingSlots about the most slots it looks at: a step of a
	// 1M-entry table takes well under a millisecond (bench/README.md).
	ListingChunk = 4096
	ListingSlots = 65536
	// ListingIdleWake is the read deadline while a listing is in
	// progress, so that it goes on at about a step a millisecond on an
	// idle link.
	ListingIdleWake = time.Millisecond
	// listingChunks chunks go round between the worker and the lister:
	// the worker fills one while the lister converts another.
	listingChunks = 4
)

// listing is a connection listing in progress: chunks go round between
// the worker (free → filled → full) and the lister (full → converted →
// free).
type listing struct {
	walk      conntrack.Walk
	free      chan []conntrack.Listed
	full      chan []conntrack.Listed // closed when the walk is complete
	abandoned atomic.Bool
}

// ListConns lists the worker's connection table without stopping it for
// more than one step at a time: after each batch (or idle wake, every
// ListingIdleWake while the listing runs) the worker copies at most
// ListingChunk entries, looking at about ListingSlots slots, and fn gets
// them on the caller's goroutine; the chunk is valid until fn returns.
// ListConns returns when the walk is complete, or with ctx's error.
// Listings run one at a time.
//
// The listing is not a point-in-time snapshot: the worker goes on
// forwarding between steps. Every entry that is in the table for the whole
// listing is listed exactly once; entries created or removed meanwhile may
// be listed or not; each shows its state when its step copied it (see
// conntrack.Walk).
func (w *Worker) ListConns(ctx context.Context, fn func([]conntrack.Listed)) error {
	l := &listing{
		free: make(chan []conntrack.Listed, listingChunks),
		full: make(chan []conntrack.Listed, listingChunks),
	}
	for range listingChunks {
		chunk := make([]conntrack.Listed, ListingChunk)
		// Touch every page here, not in the worker's step: fresh memory
		// from the kernel faults on its first write.
		for i := range chunk {
			chunk[i] = conntrack.Listed{}
		}
		l.free <- chunk[:0]
	}
	defer l.abandoned.Store(true) // the worker drops it if it was not done
	select {
	case w.lists <- l:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.wake()
	for {
		select {
		case chunk, ok := <-l.full:
			if !ok {
				return nil
			}
			fn(chunk)
			l.free <- chunk[:0]
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// listStep runs one step of the listing in progress, or starts the next.
func (w *Worker) listStep(now time.Time) {
	l := w.list
	if l == nil {
		select {
		case l = <-w.lists:
			w.list = l
		default:
			return
		}
	}
	if l.abandoned.Load() {
		w.list = nil
		return
	}
	var chunk []conntrack.Listed
	select {
	case chunk = <-l.free:
	default:
		return // the lister has not converted the chunks yet
	}
	start, cpu := time.Now(), threadCPU()
	chunk, done := w.p.Conns().Step(&l.walk, chunk[:0], ListingSlots, w.p.Ticks(now))
	took := time.Since(start)
	// Clamped: the goroutine may have moved to another thread.
	tookCPU := min(max(threadCPU()-cpu, 0), took)
	l.full <- chunk // there is room for every chunk
	if done {
		close(l.full)
		w.list = nil
	}
	s := &w.stats
	s.listSteps.Add(1)
	s.listStepTotal.Add(int64(took))
	if int64(took) > s.listStepMax.Load() {
		s.listStepMax.Store(int64(took))
	}
	if int64(tookCPU) > s.listStepCPUMax.Load() {
		s.listStepCPUMax.Store(int64(tookCPU))
	}
}
