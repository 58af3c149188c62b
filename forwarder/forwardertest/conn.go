package forwardertest

import (
	"net"
	"os"
	"sync"
	"time"
)

// Conn is a channel-backed forwarder.Conn. A test sends batches of frames
// on In (each send is one ReadBatch, split if it exceeds the reader's
// buffers), receives each WriteBatch's frames, copied, on Out, and makes
// the next WriteBatch fail by sending an error on WriteErr. Reads honour
// SetReadDeadline and return os.ErrDeadlineExceeded when it passes; Close
// unblocks them with net.ErrClosed.
type Conn struct {
	In       chan [][]byte
	Out      chan [][]byte
	WriteErr chan error

	mu       sync.Mutex
	deadline time.Time
	kick     chan struct{} // a new deadline was set
	pending  [][]byte      // the rest of a batch larger than the buffers
	done     chan struct{}
	close    sync.Once
}

// NewConn returns a Conn whose In, Out and WriteErr channels hold up to
// depth batches (or errors) each.
func NewConn(depth int) *Conn {
	return &Conn{
		In:       make(chan [][]byte, depth),
		Out:      make(chan [][]byte, depth),
		WriteErr: make(chan error, depth),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// ReadBatch blocks until a batch arrives on In, the deadline passes or the
// Conn is closed, then copies up to len(bufs) frames of the batch.
func (c *Conn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	for {
		select {
		case <-c.done:
			return 0, net.ErrClosed
		default:
		}
		c.mu.Lock()
		if len(c.pending) > 0 {
			n := c.fill(bufs, sizes, c.pending)
			c.pending = c.pending[n:]
			c.mu.Unlock()
			return n, nil
		}
		dl := c.deadline
		c.mu.Unlock()
		var timeout <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-c.done:
			return 0, net.ErrClosed
		case batch := <-c.In:
			c.mu.Lock()
			n := c.fill(bufs, sizes, batch)
			c.pending = batch[n:]
			c.mu.Unlock()
			return n, nil
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		case <-c.kick:
			// Look at the new deadline.
		}
	}
}

func (c *Conn) fill(bufs [][]byte, sizes []int, batch [][]byte) int {
	n := min(len(bufs), len(sizes), len(batch))
	for i := range n {
		sizes[i] = copy(bufs[i], batch[i])
	}
	return n
}

// WriteBatch fails with the error waiting on WriteErr, if any, having sent
// nothing; otherwise it sends a copy of bufs on Out, blocking until there
// is room or the Conn is closed.
func (c *Conn) WriteBatch(bufs [][]byte) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	select {
	case err := <-c.WriteErr:
		return 0, err
	default:
	}
	batch := make([][]byte, len(bufs))
	for i, b := range bufs {
		batch[i] = append([]byte(nil), b...)
	}
	select {
	case c.Out <- batch:
		return len(bufs), nil
	case <-c.done:
		return 0, net.ErrClosed
	}
}

// SetReadDeadline sets when a blocked or later ReadBatch gives up; the
// zero time means never.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// Close unblocks ReadBatch and WriteBatch; later calls fail with
// net.ErrClosed.
func (c *Conn) Close() error {
	c.close.Do(func() { close(c.done) })
	return nil
}
