package forwarder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// ReplayConfig describes one run of the pipeline over a capture file.
type ReplayConfig struct {
	Config    *service.Config
	Options   Options
	Neighbors *Neighbors                            // static neighbours; more are learnt from ARP in the input
	Registry  *dest.Registry                        // nil: a new one
	Capacity  int                                   // connection table capacity; 0: DefaultCapacity
	In        io.Reader                             // pcap or pcapng, Ethernet link type
	Out       io.Writer                             // nil: no output capture
	PcapNG    bool                                  // write Out as pcapng, with the explanation as each packet's comment
	Explain   func(n int, d *Decision, line string) // called per input frame with its explanation; nil: none
}

// DefaultCapacity is the connection table capacity when none is given.
const DefaultCapacity = 1 << 20

// ReplayResult is what a replay saw and did.
type ReplayResult struct {
	Frames    int
	Stats     Stats
	Forwarded map[dest.ID]int // forwarded frames per real server
	Table     *Table
	Pipeline  *Pipeline
	Last      time.Time // timestamp of the last frame: "now" for listings
}

// Replay runs the pipeline over every frame of c.In, with the clock set to
// each frame's timestamp, and writes every forwarded and reply frame to
// c.Out with the timestamp of the frame that caused it. The same input
// gives byte-identical output.
func Replay(c ReplayConfig) (*ReplayResult, error) {
	src, err := openCapture(c.In)
	if err != nil {
		return nil, err
	}
	reg := c.Registry
	if reg == nil {
		reg = dest.NewRegistry(1 << 16)
	}
	neigh := c.Neighbors
	if neigh == nil {
		neigh = NewNeighbors(1 << 16)
	}
	t, err := Compile(c.Config, reg, neigh, nil, c.Options)
	if err != nil {
		return nil, err
	}
	capacity := c.Capacity
	if capacity == 0 {
		capacity = DefaultCapacity
	}
	var cur atomic.Pointer[Table]
	cur.Store(t)
	conns := conntrack.New(capacity, reg, conntrack.Options{Timeouts: c.Config.Timeouts, Seed: 1})
	res := &ReplayResult{Forwarded: make(map[dest.ID]int), Table: t}

	var sink captureSink
	if c.Out != nil {
		if sink, err = newCaptureSink(c.Out, c.PcapNG); err != nil {
			return nil, err
		}
	}
	var p *Pipeline
	explainer := newExplainer(t, neigh, reg)
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read frame %d: %w", res.Frames+1, err)
		}
		res.Frames++
		if p == nil {
			// The connection clock starts at the first frame.
			p = NewPipeline(PipelineConfig{Table: &cur, Conns: conns, Neighbors: neigh, Registry: reg, Epoch: ci.Timestamp})
		}
		res.Last = ci.Timestamp
		p.Sweep(ci.Timestamp, 64)
		v, out := p.Process(data, ci.Timestamp)
		d := p.Decision()
		if v == VerdictForward {
			res.Forwarded[d.Dest]++
		}
		var line string
		if c.Explain != nil || (c.PcapNG && out != nil) {
			line = explainer.line(d, data)
		}
		if c.Explain != nil {
			c.Explain(res.Frames, d, line)
		}
		if out != nil && sink != nil {
			oci := gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: len(out), Length: len(out)}
			if err := sink.write(oci, out, line); err != nil {
				return nil, fmt.Errorf("write frame %d: %w", res.Frames, err)
			}
		}
	}
	if sink != nil {
		if err := sink.flush(); err != nil {
			return nil, err
		}
	}
	if p != nil {
		res.Stats = *p.Stats()
	}
	res.Pipeline = p
	return res, nil
}

type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// openCapture opens a pcap or pcapng stream, told apart by its magic number.
func openCapture(r io.Reader) (packetSource, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read capture header: %w", err)
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		if lt := ng.LinkType(); lt != layers.LinkTypeEthernet {
			return nil, fmt.Errorf("pcapng: link type %v, want Ethernet", lt)
		}
		return ng, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	if lt := pr.LinkType(); lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("pcap: link type %v, want Ethernet", lt)
	}
	return pr, nil
}

type captureSink interface {
	write(ci gopacket.CaptureInfo, data []byte, comment string) error
	flush() error
}

type pcapSink struct{ w *pcapgo.Writer }

func (s pcapSink) write(ci gopacket.CaptureInfo, data []byte, _ string) error {
	return s.w.WritePacket(ci, data)
}
func (s pcapSink) flush() error { return nil }

type ngSink struct{ w *pcapgo.NgWriter }

func (s ngSink) write(ci gopacket.CaptureInfo, data []byte, comment string) error {
	var opts pcapgo.NgPacketOptions
	if comment != "" {
		opts.Comments = []string{comment}
	}
	return s.w.WritePacketWithOptions(ci, data, opts)
}
func (s ngSink) flush() error { return s.w.Flush() }

func newCaptureSink(w io.Writer, ng bool) (captureSink, error) {
	if ng {
		intf := pcapgo.DefaultNgInterface
		intf.LinkType = layers.LinkTypeEthernet
		intf.OS = "" // the same bytes on every platform
		nw, err := pcapgo.NewNgWriterInterface(w, intf, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "udr replay"}})
		if err != nil {
			return nil, err
		}
		return ngSink{nw}, nil
	}
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	return pcapSink{pw}, nil
}
