//go:build linux

package director

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/udr-lb/udr/forwarder"
)

// Trace bounds (udr admin --trace).
const (
	DefaultTraceCount    = 1000
	MaxTraceCount        = 1_000_000
	DefaultTraceDuration = 60 * time.Second
	MaxTraceDuration     = 10 * time.Minute
	// TraceWriteTimeout is how long a write of the stream may wait for
	// a reader that does not read: then the trace ends.
	TraceWriteTimeout = 10 * time.Second
	// tracePoll is how often the stream looks at the workers' queues.
	tracePoll = 20 * time.Millisecond
)

// TraceRequest is the body of POST /v1/trace.
type TraceRequest struct {
	Filter   []string `json:"filter"`             // ParseTraceFilter's words
	Count    int      `json:"count,omitempty"`    // frames; 0: DefaultTraceCount
	Duration string   `json:"duration,omitempty"` // a Go duration; "": DefaultTraceDuration
	Frames   bool     `json:"frames,omitempty"`   // send each frame's bytes (for a capture file)
}

// TraceEvent is one line of the stream POST /v1/trace answers: a frame,
// a count of frames skipped, or the end.
type TraceEvent struct {
	// A frame: its time, the explanation, its first bytes (with
	// TraceRequest.Frames) and its length.
	Time   time.Time `json:"time,omitzero"`
	Line   string    `json:"line,omitempty"`
	Frame  []byte    `json:"frame,omitempty"`
	Length int       `json:"len,omitempty"`
	// Skipped is the number of matching frames skipped so far because the
	// trace could not keep up (the workers' queues were full); sent when
	// it grows.
	Skipped uint64 `json:"skipped,omitempty"`
	// End says why the trace ended ("count", "duration"), with the
	// frames sent.
	End    string `json:"end,omitempty"`
	Frames int    `json:"frames,omitempty"`
	// Filter, in the first event, is the filter as understood.
	Filter string `json:"filter,omitempty"`
}

// decodeTraceRequest reads the body of POST /v1/trace and checks its
// bounds.
func decodeTraceRequest(body []byte) (TraceRequest, forwarder.TraceFilter, time.Duration, error) {
	var req TraceRequest
	if err := decodeObject(body, &req, `want a JSON object, {"filter": [...], "count": N, "duration": "60s"}`); err != nil {
		return req, forwarder.TraceFilter{}, 0, err
	}
	f, err := forwarder.ParseTraceFilter(req.Filter)
	if err != nil {
		return req, f, 0, err
	}
	if req.Count == 0 {
		req.Count = DefaultTraceCount
	}
	if req.Count < 0 || req.Count > MaxTraceCount {
		return req, f, 0, fmt.Errorf("count %d: want 1 to %d frames", req.Count, MaxTraceCount)
	}
	d := DefaultTraceDuration
	if req.Duration != "" {
		if d, err = time.ParseDuration(req.Duration); err != nil || d <= 0 || d > MaxTraceDuration {
			return req, f, 0, fmt.Errorf("duration %q: want more than 0 and at most %v", req.Duration, MaxTraceDuration)
		}
	}
	return req, f, d, nil
}

// serveTrace is POST /v1/trace: it streams, as JSON lines (TraceEvent), the
// frames the workers decide that match the filter, until the count or the
// duration is reached or the reader goes. One trace at a time: another is
// refused with 409. The workers never wait for the stream: what it cannot
// keep up with is skipped, and counted.
func (d *Director) serveTrace(w http.ResponseWriter, r *http.Request) {
	body, status, err := readBody(w, r, MaxRequestBody)
	if err != nil {
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), status)
		return
	}
	req, filter, dur, err := decodeTraceRequest(body)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	tr, err := d.ws.StartTrace(filter, 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	defer tr.Stop()
	d.log.Info("trace started", "filter", filter.String(), "count", req.Count, "duration", dur)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(e *TraceEvent) bool {
		// Each write has its own deadline, instead of the control
		// socket's for a whole answer: a reader that stops reading ends
		// the trace within TraceWriteTimeout.
		rc.SetWriteDeadline(time.Now().Add(TraceWriteTimeout))
		return enc.Encode(e) == nil
	}
	if !send(&TraceEvent{Filter: filter.String()}) || rc.Flush() != nil {
		return
	}
	deadline := time.NewTimer(dur)
	defer deadline.Stop()
	tick := time.NewTicker(tracePoll)
	defer tick.Stop()
	sent, skipped, end := 0, uint64(0), ""
	for end == "" {
		select {
		case <-r.Context().Done():
			d.log.Info("trace ended: the reader went", "frames", sent, "skipped", tr.Skipped())
			return
		case <-deadline.C:
			end = "duration"
		case <-tick.C:
		}
		ok := true
		tr.Poll(func(e *forwarder.TraceEntry) bool {
			ev := TraceEvent{Time: e.Time, Line: e.Line, Length: e.Length}
			if req.Frames {
				ev.Frame = e.Frame
			}
			if ok = send(&ev); !ok {
				return false
			}
			sent++
			return sent < req.Count
		})
		if !ok {
			d.log.Info("trace ended: the reader does not read", "frames", sent, "skipped", tr.Skipped())
			return
		}
		if sent >= req.Count {
			end = "count"
		}
		if s := tr.Skipped(); s != skipped {
			skipped = s
			if !send(&TraceEvent{Skipped: s}) {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
	send(&TraceEvent{End: end, Frames: sent, Skipped: skipped})
	rc.Flush()
	d.log.Info("trace ended", "reason", end, "frames", sent, "skipped", skipped)
}
