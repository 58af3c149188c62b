package capture

import (
	"context"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/service"
)

// ReplayConfig describes one run of the pipeline over a capture file.
type ReplayConfig struct {
	Config    *service.Config
	Options   forwarder.Options
	Neighbors *forwarder.Neighbors                            // static neighbours; more are learnt from ARP in the input
	Registry  *dest.Registry                                  // nil: a new one
	Capacity  int                                             // connection table capacity; 0: forwarder.DefaultCapacity
	In        io.Reader                                       // pcap or pcapng, Ethernet link type
	Out       io.Writer                                       // nil: no output capture
	PcapNG    bool                                            // write Out as pcapng, with the explanation as each packet's comment
	Explain   func(n int, d *forwarder.Decision, line string) // called per input frame with its explanation; nil: none
}

// ReplayResult is what a replay saw and did.
type ReplayResult struct {
	Frames    int
	Stats     forwarder.Stats
	Forwarded map[dest.ID]int // forwarded frames per real server
	Table     *forwarder.Table
	Pipeline  *forwarder.Pipeline // nil when the input has no frame
	Last      time.Time           // time stamp of the last frame: "now" for listings
}

// Replay runs c.In through a forwarder.Worker, as udr run does with the
// live socket: each frame is a batch of its own, whose clock is the frame's
// time stamp (the connection clock starts at the first frame), and the
// connection timers due by that time run before it. Every forwarded and reply
// frame is written to c.Out with the time stamp of the frame that caused
// it. The same input gives byte-identical output.
func Replay(c ReplayConfig) (*ReplayResult, error) {
	format := PCAP
	if c.PcapNG {
		format = PCAPNG
	}
	conn, err := New(c.In, c.Out, format)
	if err != nil {
		return nil, err
	}
	reg := c.Registry
	if reg == nil {
		reg = dest.NewRegistry(1 << 16)
	}
	neigh := c.Neighbors
	if neigh == nil {
		neigh = forwarder.NewNeighbors(1 << 16)
	}
	t, err := forwarder.Compile(c.Config, reg, neigh, nil, c.Options)
	if err != nil {
		return nil, err
	}
	capacity := c.Capacity
	if capacity == 0 {
		capacity = forwarder.DefaultCapacity
	}
	res := &ReplayResult{Forwarded: make(map[dest.ID]int), Table: t}
	start, ok := conn.Start()
	if !ok {
		return res, conn.Flush()
	}
	var cur atomic.Pointer[forwarder.Table]
	cur.Store(t)
	conns := conntrack.New(capacity, reg, conntrack.Options{Timeouts: c.Config.Timeouts, Seed: 1})
	p := forwarder.NewPipeline(forwarder.PipelineConfig{Table: &cur, Conns: conns, Neighbors: neigh, Registry: reg, Epoch: start})
	explainer := forwarder.NewExplainer(t, neigh, reg)
	observe := func(frame []byte, v forwarder.Verdict, out []byte) {
		res.Frames++
		d := p.Decision()
		if v == forwarder.VerdictForward {
			res.Forwarded[d.Dest]++
		}
		var line string
		if c.Explain != nil || (c.PcapNG && out != nil) {
			line = explainer.Line(d, frame)
		}
		if c.Explain != nil {
			c.Explain(res.Frames, d, line)
		}
		if out != nil {
			conn.SetComment(line)
		}
	}
	w := forwarder.NewWorker(forwarder.WorkerConfig{
		Conn:      conn,
		Pipeline:  p,
		BatchSize: 1, // each frame has its own time (see the package doc)
		FrameSize: MaxFrameSize,
		Clock:     conn.Time,
		// Every timer due by a frame's time runs before the frame, however
		// many: a replay has no latency to protect.
		SweepBudget: math.MaxInt,
		Observe:     observe,
		// The counters are read from the pipeline at the end.
		PublishInterval: time.Hour,
	})
	if err := w.Run(context.Background()); err != nil {
		return nil, err
	}
	if err := conn.Flush(); err != nil {
		return nil, err
	}
	res.Stats = *p.Stats()
	res.Pipeline = p
	res.Last = conn.Time()
	return res, nil
}
