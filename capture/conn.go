package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// MaxFrameSize is the largest frame a Conn reads: pcap's largest snapshot
// length. A reader's buffers of this size take any frame of a capture.
const MaxFrameSize = 262144

// Conn is a capture as a forwarder.Conn: ReadBatch returns the frames of
// the input one at a time, WriteBatch appends frames to the output. It is
// not safe for concurrent use.
type Conn struct {
	src     packetSource
	sink    sink // nil: frames written are discarded
	next    []byte
	nextCI  gopacket.CaptureInfo
	hasNext bool
	start   time.Time
	any     bool      // the input has a frame
	pending error     // the read error after the frames read ahead
	t       time.Time // time stamp of the frame last read
	read    int       // frames read
	written int       // frames written
	comment string
	err     error // the first write error; every later write fails with it
	closed  bool
}

// MaxFrame is the longest pcap record read: tcpdump's largest snap length
// (MAXIMUM_SNAPLEN), four times the largest frame GSO makes.
const MaxFrame = 262144

// Format is the format of a capture written.
type Format uint8

// Formats.
const (
	PCAP   Format = iota // libpcap's classic format
	PCAPNG               // pcapng: frames may carry a comment
)

// New returns a Conn that reads the pcap or pcapng stream in (told apart
// by its magic number) and, when out is not nil, writes a capture of the
// given format to out. It reads the first frame, so that Start is known
// before the first ReadBatch.
func New(in io.Reader, out io.Writer, format Format) (*Conn, error) {
	src, err := open(in)
	if err != nil {
		return nil, err
	}
	c := &Conn{src: src}
	if out != nil {
		if c.sink, err = newSink(out, format); err != nil {
			return nil, err
		}
	}
	if err := c.peek(); err != nil {
		return nil, fmt.Errorf("read frame 1: %w", err)
	}
	c.start, c.any = c.nextCI.Timestamp, c.hasNext
	return c, nil
}

// peek reads the next frame ahead; at the end of the input, or on error,
// it leaves hasNext false.
func (c *Conn) peek() error {
	c.hasNext = false
	data, ci, err := c.src.ReadPacketData()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	c.next, c.nextCI, c.hasNext = data, ci, true
	return nil
}

// Start returns the time stamp of the capture's first frame, and false
// when it has none.
func (c *Conn) Start() (time.Time, bool) { return c.start, c.any }

// Time returns the time stamp of the frame last read: the clock of the
// worker that reads c.
func (c *Conn) Time() time.Time { return c.t }

// Frames returns how many frames were read.
func (c *Conn) Frames() int { return c.read }

// ReadBatch reads the next frame into bufs[0]. At the end of the input it
// returns io.EOF; after Close, net.ErrClosed. A frame longer than bufs[0]
// is an error.
func (c *Conn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	if !c.hasNext {
		if c.pending != nil {
			return 0, fmt.Errorf("read frame %d: %w", c.read+1, c.pending)
		}
		return 0, io.EOF
	}
	if len(bufs) == 0 || len(sizes) == 0 {
		return 0, nil
	}
	if len(c.next) > len(bufs[0]) {
		return 0, fmt.Errorf("read frame %d: %d bytes, longer than the %d-byte buffer", c.read+1, len(c.next), len(bufs[0]))
	}
	sizes[0] = copy(bufs[0], c.next)
	c.t = c.nextCI.Timestamp
	c.read++
	// A read error ahead is reported by the next read, after this frame.
	c.pending = c.peek()
	return 1, nil
}

// SetComment sets the pcapng comment of the frames the next WriteBatch
// writes; it is then cleared. A pcap output has no comments.
func (c *Conn) SetComment(s string) { c.comment = s }

// WriteBatch appends the frames to the output, stamped with Time. The
// first error sticks: this and every later WriteBatch, and Flush, return
// it.
func (c *Conn) WriteBatch(bufs [][]byte) (int, error) {
	comment := c.comment
	c.comment = ""
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.sink == nil {
		return len(bufs), nil
	}
	for i, b := range bufs {
		ci := gopacket.CaptureInfo{Timestamp: c.t, CaptureLength: len(b), Length: len(b)}
		if err := c.sink.write(ci, b, comment); err != nil {
			c.err = fmt.Errorf("write frame %d: %w", c.read, err)
			return i, c.err
		}
		c.written++
	}
	return len(bufs), nil
}

// Flush writes what the output buffers and returns the first write error.
func (c *Conn) Flush() error {
	if c.err != nil {
		return c.err
	}
	if c.sink != nil {
		if err := c.sink.flush(); err != nil {
			c.err = err
			return err
		}
	}
	return nil
}

// Close makes later reads and writes fail with net.ErrClosed. It closes
// neither the input nor the output, and does not flush.
func (c *Conn) Close() error {
	c.closed = true
	return nil
}

type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// open opens a pcap or pcapng stream, told apart by its magic number.
func open(r io.Reader) (packetSource, error) {
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
	// A record is read whole: no longer than MaxFrame, whatever snap
	// length the file declares. (pcapng records are read as their bytes
	// arrive, never ahead of what the file holds.)
	pr.SetSnaplen(min(pr.Snaplen(), MaxFrame))
	if lt := pr.LinkType(); lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("pcap: link type %v, want Ethernet", lt)
	}
	return pr, nil
}

type sink interface {
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

func newSink(w io.Writer, format Format) (sink, error) {
	if format == PCAPNG {
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
