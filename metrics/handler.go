package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/udr-lb/udr/internal/bounded"
)

// Handler returns an http.Handler that serves the metrics of c and of
// more (the BGP speaker's), with the Go runtime's and the process's, in
// the Prometheus exposition formats. It builds its own registry: nothing
// is registered globally.
func Handler(c prometheus.Collector, more ...prometheus.Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, x := range append([]prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, more...) {
		if err := reg.Register(x); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	}), nil
}

// MaxConns is the most connections the metrics endpoint holds at once,
// or less under a low descriptor limit (bounded.ConnCap): Prometheus
// scrapes over one keep-alive connection per server.
const MaxConns = 64

// Limits are the metrics endpoint's bounds, with at most maxConns
// connections: a request within 10 s (headers within 5 s), its answer
// within 30 s, a keep-alive connection idle for a minute at most.
func Limits(maxConns int, log *slog.Logger) bounded.Limits {
	return bounded.Limits{
		MaxConns:          maxConns,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		Name:              "metrics",
		Logger:            log,
	}
}

// Serve serves h on ln (for udr, a listener on 127.0.0.1) at /metrics,
// within lim (Limits), until ctx is done, then shuts the server down,
// giving scrapes in progress a few seconds. It returns nil after ctx is
// done, and the server's error otherwise; it closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, lim bounded.Limits) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := bounded.New(mux, lim)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shut down metrics server on %s: %w", ln.Addr(), err)
	}
	return nil
}
