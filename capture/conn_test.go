package capture

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pcapOf returns a pcap of frames, frame i stamped t0 + i seconds.
func pcapOf(t *testing.T, frames ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func frame(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// Each read returns one frame, and Time is that frame's time stamp.
func TestConnReadsOneFramePerBatch(t *testing.T) {
	c, err := New(bytes.NewReader(pcapOf(t, frame(1, 60), frame(2, 70))), nil, PCAP)
	if err != nil {
		t.Fatal(err)
	}
	if start, ok := c.Start(); !ok || !start.Equal(t0) {
		t.Fatalf("Start = %v, %v; want %v, true", start, ok, t0)
	}
	bufs := [][]byte{make([]byte, 100), make([]byte, 100)}
	sizes := make([]int, 2)
	for i, want := range [][]byte{frame(1, 60), frame(2, 70)} {
		n, err := c.ReadBatch(bufs, sizes)
		if err != nil || n != 1 {
			t.Fatalf("read %d: %d frames, %v; want 1, nil", i, n, err)
		}
		if !bytes.Equal(bufs[0][:sizes[0]], want) {
			t.Errorf("frame %d differs", i)
		}
		if got := c.Time(); !got.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Errorf("frame %d: Time %v", i, got)
		}
	}
	if n, err := c.ReadBatch(bufs, sizes); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read at the end: %d, %v; want 0, EOF", n, err)
	}
	c.Close()
	if _, err := c.ReadBatch(bufs, sizes); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v, want net.ErrClosed", err)
	}
}

// A frame longer than the buffer is an error naming the frame, not a
// silent truncation; a truncated file fails at the frame it cuts.
func TestConnReadErrors(t *testing.T) {
	c, err := New(bytes.NewReader(pcapOf(t, frame(1, 60), frame(2, 200))), nil, PCAP)
	if err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
	if n, err := c.ReadBatch(bufs, sizes); n != 1 || err != nil {
		t.Fatalf("frame 1: %d, %v", n, err)
	}
	if _, err := c.ReadBatch(bufs, sizes); err == nil || err.Error() != "read frame 2: 200 bytes, longer than the 100-byte buffer" {
		t.Fatalf("frame 2: %v", err)
	}

	data := pcapOf(t, frame(1, 60), frame(2, 60))
	c, err = New(bytes.NewReader(data[:len(data)-10]), nil, PCAP)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.ReadBatch(bufs, sizes); n != 1 || err != nil {
		t.Fatalf("frame 1 of a cut file: %d, %v", n, err)
	}
	if _, err := c.ReadBatch(bufs, sizes); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("frame 2 of a cut file: %v, want an unexpected EOF", err)
	}
}

// Frames written carry the time stamp of the frame last read and, in
// pcapng, the comment set for them.
func TestConnWritesPcapNG(t *testing.T) {
	var out bytes.Buffer
	c, err := New(bytes.NewReader(pcapOf(t, frame(1, 60), frame(2, 60))), &out, PCAPNG)
	if err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
	c.ReadBatch(bufs, sizes)
	c.ReadBatch(bufs, sizes)
	c.SetComment("forward")
	if n, err := c.WriteBatch([][]byte{frame(3, 60), frame(4, 60)}); n != 2 || err != nil {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
	c.WriteBatch([][]byte{frame(5, 60)}) // the comment was for the batch before
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&out, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		b       byte
		comment string
	}{{3, "forward"}, {4, "forward"}, {5, ""}} {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if data[0] != want.b || !ci.Timestamp.Equal(t0.Add(time.Second)) {
			t.Errorf("frame %d: %x at %v, want %x at %v", i, data[0], ci.Timestamp, want.b, t0.Add(time.Second))
		}
		var comment string
		if len(opts.Comments) > 0 {
			comment = opts.Comments[0]
		}
		if comment != want.comment {
			t.Errorf("frame %d: comment %q, want %q", i, comment, want.comment)
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// The first write error sticks.
func TestConnWriteErrorSticks(t *testing.T) {
	c, err := New(bytes.NewReader(pcapOf(t, frame(1, 60))), &failWriter{n: 24}, PCAP) // room for the file header only
	if err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
	c.ReadBatch(bufs, sizes)
	n, err := c.WriteBatch([][]byte{frame(3, 60)})
	if n != 0 || err == nil || !strings.HasPrefix(err.Error(), "write frame 1: ") || !strings.HasSuffix(err.Error(), "disk full") {
		t.Fatalf("WriteBatch: %d, %v; want 0, write frame 1: ...: disk full", n, err)
	}
	if _, err2 := c.WriteBatch([][]byte{frame(3, 60)}); err2 != err {
		t.Errorf("second WriteBatch: %v, want the first error", err2)
	}
	if err2 := c.Flush(); err2 != err {
		t.Errorf("Flush after a failed write: %v, want the first error", err2)
	}
}
