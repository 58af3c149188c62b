package forwarder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/udrtest"
	"github.com/udr-lb/udr/service"
)

// An idle worker wakes for the next connection timer: a UDP connection
// leaves the table, and its server's InActConn, within a few milliseconds
// of its deadline, with no frame and an idle wake of an hour.
func TestWorkerExpiresOnTimeIdle(t *testing.T) {
	start := time.Now()
	clock := func() time.Time { return epoch.Add(time.Since(start)) }
	r := startWorker(t, WorkerConfig{IdleWake: time.Hour, Clock: clock}, 1<<16)
	r.h.p.Conns().SetTimeouts(service.Timeouts{UDP: 1})
	udp := udrtest.UDP(r.h.toVIP(), netip.AddrPortFrom(udrtest.Client, 2000), vip53, []byte("q"))
	sent := clock()
	if v, _ := r.h.p.Process(udp, sent); v != VerdictForward {
		t.Fatalf("datagram: %v", v)
	}
	st := r.h.reg.State(r.h.p.Decision().Dest)
	r.run(t)
	deadline := sent.Add(time.Second)
	// The count is still there at seen at the latest, and gone at gone:
	// a reading that began well after the deadline and still finds it is
	// late, however long the test itself waited for a CPU.
	var seen time.Time
	for {
		asked := clock()
		if st.Inactive.Load() == 0 {
			break
		}
		seen = asked
		if asked.After(deadline.Add(2 * time.Second)) {
			t.Fatalf("InActConn %d, %d entries 3 s after the datagram (timeout 1 s)", st.Inactive.Load(), r.w.Stats().Conns)
		}
		time.Sleep(time.Millisecond)
	}
	gone := clock()
	// The clock counts 10 ms ticks: the datagram's tick began up to 10 ms
	// before it.
	if gone.Before(deadline.Add(-10 * time.Millisecond)) {
		t.Fatalf("expired %v after the datagram, before its 1 s timeout", gone.Sub(sent))
	}
	// Generous for a loaded machine; the worker itself wakes at the tick.
	if late := seen.Sub(deadline); late > 100*time.Millisecond {
		t.Errorf("still counted %v after its deadline", late)
	}
	t.Logf("expired between %v and %v after its deadline", seen.Sub(deadline), gone.Sub(deadline))
	for r.w.Stats().Conns != 0 {
		if clock().After(deadline.Add(2 * time.Second)) {
			t.Fatalf("%d entries published after the expiry", r.w.Stats().Conns)
		}
		time.Sleep(time.Millisecond)
	}
}

// FlushNodest expires a deleted server's connections FlushDelay after the
// request, on an idle link, in steps; the other server's stay.
func TestWorkerFlushNodest(t *testing.T) {
	start := time.Now()
	clock := func() time.Time { return epoch.Add(time.Since(start)) }
	r := startWorker(t, WorkerConfig{IdleWake: time.Hour, Clock: clock}, 1<<16)
	r.fill(t, 2000) // rr: half on each server
	svc := r.h.cur.Load().Config().Services[0]
	id1, _ := r.h.reg.Lookup(svc.DestKey(service.Dest{Addr: udrtest.RS1, Port: 80}))
	id2, _ := r.h.reg.Lookup(svc.DestKey(service.Dest{Addr: udrtest.RS2, Port: 80}))
	s1, s2 := r.h.reg.State(id1), r.h.reg.State(id2)
	if s1.Active.Load() != 1000 || s2.Active.Load() != 1000 {
		t.Fatalf("ActiveConn %d and %d, want 1000 each", s1.Active.Load(), s2.Active.Load())
	}
	r.run(t)
	// -d of 192.0.2.12:80.
	r.h.reload(t, `-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1
-A -u 192.0.2.100:53 -s rr
-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1
`)
	asked := time.Now()
	r.w.FlushNodest()
	for s2.Active.Load() != 0 {
		if time.Since(asked) > testTimeout {
			t.Fatalf("deleted server's ActiveConn %d after %v", s2.Active.Load(), testTimeout)
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(asked)
	if took < FlushDelay {
		t.Errorf("flushed %v after the request, before FlushDelay", took)
	}
	t.Logf("flushed %v after the request", took)
	if s1.Active.Load() != 1000 {
		t.Errorf("remaining server's ActiveConn %d, want 1000", s1.Active.Load())
	}
	for r.w.Stats().Conns != 1000 {
		if time.Since(asked) > testTimeout {
			t.Fatalf("%d entries, want 1000", r.w.Stats().Conns)
		}
		time.Sleep(time.Millisecond)
	}
}

// TickTime is the start of a tick, before and after the clock wraps.
func TestTickTime(t *testing.T) {
	h := newHarness(t, workerRules, 64)
	p := h.p
	if got, want := p.TickTime(p.Ticks(epoch.Add(1234*time.Millisecond))+7), epoch.Add(1300*time.Millisecond); !got.Equal(want) {
		t.Errorf("TickTime 7 ticks after 1.234 s = %v, want %v", got.Sub(epoch), want.Sub(epoch))
	}
	// 500 days on: 4,320,000,000 ticks, past the uint32 wrap.
	later := epoch.Add(500*24*time.Hour + 5*time.Millisecond)
	now := p.Ticks(later)
	if got, want := p.TickTime(now+100), epoch.Add(500*24*time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("TickTime a second after 500 days = %v, want %v", got.Sub(epoch), want.Sub(epoch))
	}
	if got := p.Ticks(p.TickTime(now + 3)); got != now+3 {
		t.Errorf("Ticks(TickTime(%d)) = %d", now+3, got)
	}
}
