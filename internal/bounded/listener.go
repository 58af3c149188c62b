package bounded

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// listener caps the connections accepted from a net.Listener: Accept
// returns a connection only when one of the n slots is free, closing the
// longest-idle connection to free one (see the package doc). At most one
// connection beyond n is held at any time: the one Accept waits with.
type listener struct {
	net.Listener
	slots chan struct{} // one element per connection held
	woke  chan struct{} // a connection turned idle while Accept waits
	done  chan struct{} // closed by Close
	once  sync.Once
	log   *slog.Logger
	name  string

	mu      sync.Mutex
	idle    map[*conn]time.Time // held connections with no request in progress, since when
	lastLog time.Time

	n       *Counters
	waiting atomic.Bool // Accept holds a connection and waits for a slot
}

func newListener(ln net.Listener, n int, log *slog.Logger, name string, counters *Counters) *listener {
	return &listener{
		n:        counters,
		Listener: ln,
		slots:    make(chan struct{}, max(n, 1)),
		woke:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		log:      log,
		name:     name,
		idle:     make(map[*conn]time.Time),
	}
}

// Accept waits for a connection and for a slot to hold it in.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	full := false
	for {
		select {
		case l.slots <- struct{}{}:
			l.n.Held.Add(1)
			return &conn{Conn: c, l: l}, nil
		default:
		}
		if !full {
			full = true
			l.logFull()
		}
		if l.closeIdle() {
			continue
		}
		// Every connection is busy with a request: wait until one
		// ends or turns idle.
		l.waiting.Store(true)
		select {
		case l.slots <- struct{}{}:
			l.waiting.Store(false)
			l.n.Waited.Add(1)
			l.n.Held.Add(1)
			return &conn{Conn: c, l: l}, nil
		case <-l.woke:
			l.waiting.Store(false)
		case <-l.done:
			l.waiting.Store(false)
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener; connections already accepted stay.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// closeIdle closes the connection that has been idle longest, if any, and
// reports whether it did: its slot is free when it returns.
func (l *listener) closeIdle() bool {
	l.mu.Lock()
	var oldest *conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	l.n.IdleClosed.Add(1)
	oldest.Close()
	return true
}

// setState follows http.Server.ConnState: a connection is idle while it
// is new (no request yet) or between requests.
func (l *listener) setState(c *conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateNew, http.StateIdle:
		if !c.closed {
			l.idle[c] = time.Now()
		}
		select {
		case l.woke <- struct{}{}:
		default:
		}
	default:
		delete(l.idle, c)
	}
}

// logFull says, at most once a minute, that the cap was reached.
func (l *listener) logFull() {
	if l.log == nil {
		return
	}
	l.mu.Lock()
	now := time.Now()
	quiet := now.Sub(l.lastLog) < time.Minute
	if !quiet {
		l.lastLog = now
	}
	l.mu.Unlock()
	if !quiet {
		l.log.Warn("connections at the listener's cap: the longest idle is closed for each new one, or the new one waits",
			"listener", l.name, "address", l.Addr().String(), "cap", cap(l.slots),
			"idle_closed", l.n.IdleClosed.Load(), "waited", l.n.Waited.Load())
	}
}

// conn is a connection holding a slot; closing it frees the slot once.
type conn struct {
	net.Conn
	l      *listener
	closed bool // guarded by l.mu
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	was := c.closed
	c.closed = true
	delete(c.l.idle, c)
	c.l.mu.Unlock()
	if !was {
		c.l.n.Held.Add(-1)
		<-c.l.slots
	}
	return err
}

// CloseWrite lets http.Server close a TCP connection gracefully.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
