//go:build linux

package director

import (
	"testing"
	"time"

	"github.com/udr-lb/udr/dest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mac(i int) [6]byte { return [6]byte{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

// The conflict map's keys are MACs that anyone on the link chooses: it
// remembers maxConflictMACs of them and counts the rest.
func TestVerdictLogConflictMACsBounded(t *testing.T) {
	var l verdictLog
	const strangers = 100000
	for i := range strangers {
		// One a second: the rate limit stays out of the way.
		l.conflict(mac(i), t0.Add(time.Duration(i)*time.Second))
	}
	if n := len(l.conflicts); n != maxConflictMACs {
		t.Fatalf("%d conflicting MACs remembered, want %d", n, maxConflictMACs)
	}
	if l.unremembered != strangers-maxConflictMACs {
		t.Errorf("%d counted as not remembered, want %d", l.unremembered, strangers-maxConflictMACs)
	}
	now := t0.Add(time.Duration(strangers) * time.Second)
	if l.conflict(mac(0), now) {
		t.Error("a remembered MAC was logged again")
	}
}

// Each MAC and each server is logged once, and all of them together at
// most maxLogsPerSecond times a second; what is withheld is counted.
func TestVerdictLogRateLimit(t *testing.T) {
	var l verdictLog
	logged := 0
	for i := range 50 {
		if l.conflict(mac(i), t0.Add(time.Duration(i)*time.Millisecond)) {
			logged++
		}
		if l.noNeighbor(dest.ID(i+1), t0.Add(time.Duration(i)*time.Millisecond)) {
			logged++
		}
	}
	if logged != maxLogsPerSecond || l.suppressed != 100-maxLogsPerSecond {
		t.Fatalf("in one second: %d lines logged, %d suppressed; want %d and %d", logged, l.suppressed, maxLogsPerSecond, 100-maxLogsPerSecond)
	}
	if !l.conflict(mac(1000), t0.Add(time.Second)) {
		t.Error("a new MAC a second later was not logged")
	}
	if l.noNeighbor(dest.ID(1), t0.Add(2*time.Second)) {
		t.Error("a server already logged was logged again")
	}
	l.reachable()
	if !l.noNeighbor(dest.ID(1), t0.Add(3*time.Second)) {
		t.Error("a server lost again after it became reachable was not logged")
	}
	if l.noNeighbor(0, t0.Add(4*time.Second)) {
		t.Error("no server (ID 0) was logged")
	}
}
