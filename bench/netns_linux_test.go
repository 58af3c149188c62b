//go:build linux

package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// BenchmarkNetnsUDP measures a live director in a closed loop: 64 client
// sockets (64 connections) in a client namespace each send a 64-byte UDP
// datagram to VIP:5300 and wait for its echo; udr (one worker, AF_PACKET,
// veth and a bridge) forwards each to one of two real servers, which echo
// it straight back to the client, as DR does. One op is one round trip;
// ns/op is the inverse of the transactions per second through the director.
// UDR_TEST_IO (ring, ring-v2, socket, auto; default socket) selects udr's receive
// backend. Run as root:
//
//	go test -run '^$' -bench NetnsUDP -benchtime 100000x ./bench
//
// The load is bounded: at most b.N round trips and 20 s.
func BenchmarkNetnsUDP(b *testing.B) {
	netlab.Privileged(b)
	lab, err := drlab.New("bench", drlab.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lab.Close() })

	rules := filepath.Join(b.TempDir(), "rules")
	os.WriteFile(rules, []byte("-A -u 192.0.2.100:5300 -s rr\n"+
		"-a -u 192.0.2.100:5300 -r 192.0.2.11:5300 -g -w 1\n"+
		"-a -u 192.0.2.100:5300 -r 192.0.2.12:5300 -g -w 1\n"), 0o644)

	var received atomic.Uint64 // datagrams the real servers received
	for _, rs := range lab.RS {
		var pc net.PacketConn
		if err := rs.Run(func() (err error) { pc, err = net.ListenPacket("udp", "192.0.2.100:5300"); return err }); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				received.Add(1)
				pc.WriteTo(buf[:n], from) // bound to the VIP: from the VIP, straight to the client
			}
		}()
	}

	reachable := make(chan struct{}, 4)
	log := slog.New(&watchHandler{Handler: slog.NewTextHandler(io.Discard, nil), match: "real server reachable", hit: reachable})
	var d *director.Director
	backend, err := forwarder.ParseIO(os.Getenv("UDR_TEST_IO"))
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("UDR_TEST_IO") == "" {
		backend = forwarder.IOSocket
	}
	if err := lab.Director.Run(func() (err error) {
		d, err = director.New(director.Config{Settings: director.Settings{Iface: "eth0", IO: backend}, Rules: rules, Logger: log})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; d.Close() })
	for range 2 {
		select {
		case <-reachable:
		case <-time.After(10 * time.Second):
			b.Fatal("real servers not reachable within 10 s")
		}
	}

	const senders = 64
	conns := make([]net.Conn, senders)
	for i := range conns {
		if err := lab.Client.Run(func() (err error) { conns[i], err = net.Dial("udp", "192.0.2.100:5300"); return err }); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	payload := make([]byte, 64-8-20-14-4) // a 64-byte frame with its FCS
	deadline := time.Now().Add(20 * time.Second)
	var lost atomic.Uint64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N / senders
	for i, c := range conns {
		n := per
		if i == 0 {
			n += b.N % senders
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for j := 0; j < n && time.Now().Before(deadline); j++ {
				c.Write(payload)
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					lost.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rtt/s")
	b.ReportMetric(float64(lost.Load()), "lost")
	st := d.Stats()
	b.Logf("%d round trips in %v, %d lost; real servers received %d; director forwarded %d; socket %+v",
		b.N, elapsed.Round(time.Millisecond), lost.Load(), received.Load(), st.Verdicts[0], d.ConnStats())
}

// watchHandler signals hit for every log record whose message is match.
type watchHandler struct {
	slog.Handler
	match string
	hit   chan<- struct{}
}

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.match {
		select {
		case h.hit <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithAttrs(as), match: h.match, hit: h.hit}
}
