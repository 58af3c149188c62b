package bounded

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Limits bound a Server. Zero fields are not defaults: every field must be
// set (New panics otherwise), so that no listener of udr goes unbounded by
// omission.
type Limits struct {
	// MaxConns is the most connections held at once (ConnCap).
	MaxConns int
	// ReadHeaderTimeout bounds the wait for a request's headers, from the
	// connection's first byte or the end of the previous request.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the handler and the writing of its response,
	// from the end of the request's headers.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes int

	// Name names the listener in the log line that says its cap was
	// reached (at most once a minute); Logger nil: no line.
	Name   string
	Logger *slog.Logger
	// Counters, when set, are counted into (the metrics read them);
	// nil: the Server's own.
	Counters *Counters
}

// Counters count what a Server's cap did. They may be read at any time.
type Counters struct {
	Held       atomic.Int64  // connections held now
	IdleClosed atomic.Uint64 // idle connections closed to make room for a new one
	Waited     atomic.Uint64 // new connections that waited for a busy one to end
}

// Server is an http.Server within Limits, for one listener.
type Server struct {
	srv *http.Server
	lim Limits
	ln  *listener
}

// New returns a Server of h within lim.
func New(h http.Handler, lim Limits) *Server {
	if lim.MaxConns <= 0 || lim.ReadHeaderTimeout <= 0 || lim.ReadTimeout <= 0 || lim.WriteTimeout <= 0 ||
		lim.IdleTimeout <= 0 || lim.MaxHeaderBytes <= 0 {
		panic("bounded.New: every limit must be set")
	}
	if lim.Counters == nil {
		lim.Counters = new(Counters)
	}
	s := &Server{lim: lim}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ConnState: func(c net.Conn, st http.ConnState) {
			if bc, ok := c.(*conn); ok {
				bc.l.setState(bc, st)
			}
		},
	}
	return s
}

// Serve serves on ln, holding at most MaxConns of its connections, until
// Shutdown or Close; it returns http.ErrServerClosed then. Call it once.
func (s *Server) Serve(ln net.Listener) error {
	s.ln = newListener(ln, s.lim.MaxConns, s.lim.Logger, s.lim.Name, s.lim.Counters)
	return s.srv.Serve(s.ln)
}

// Shutdown stops accepting, closes idle connections and waits, until ctx
// is done, for the others to end (http.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// Stats are a Server's counters, read at once.
type Stats struct {
	Held       int    // connections held now
	IdleClosed uint64 // idle connections closed to make room for a new one
	Waited     uint64 // new connections that waited for a busy one to end
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	n := s.lim.Counters
	return Stats{Held: int(n.Held.Load()), IdleClosed: n.IdleClosed.Load(), Waited: n.Waited.Load()}
}
