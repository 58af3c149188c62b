//go:build linux

package director

import (
	"time"

	"github.com/udr-lb/udr/dest"
)

const (
	// maxConflictMACs bounds how many hosts claiming a VIP are remembered
	// (and so logged once each). The MACs come from frames anyone on the
	// link can send: past the bound they are counted, not remembered.
	maxConflictMACs = 256
	// maxNoNeighIDs bounds how many real servers logged without a MAC
	// are remembered: the registry's capacity.
	maxNoNeighIDs = 1 << 16
	// maxLogsPerSecond bounds the lines logged for the worker's verdicts,
	// all kinds together; the rest are counted.
	maxLogsPerSecond = 10
)

// verdictLog decides which of the worker's verdict events the control loop
// logs: each host claiming a VIP once, each real server without a known
// MAC once until it becomes reachable, and at most maxLogsPerSecond lines
// a second overall. Its zero value is ready; it is owned by the control
// loop.
type verdictLog struct {
	conflicts map[[6]byte]struct{}
	noNeigh   map[dest.ID]struct{}

	// unremembered counts conflicts from MACs beyond maxConflictMACs.
	unremembered uint64
	// suppressed counts lines the rate limit withheld.
	suppressed uint64

	window time.Time // start of the current second
	lines  int       // lines logged in it
}

// conflict reports whether a conflict from mac at now is logged.
func (l *verdictLog) conflict(mac [6]byte, now time.Time) bool {
	if _, ok := l.conflicts[mac]; ok {
		return false
	}
	if l.conflicts == nil {
		l.conflicts = make(map[[6]byte]struct{})
	}
	if len(l.conflicts) < maxConflictMACs {
		l.conflicts[mac] = struct{}{}
	} else {
		l.unremembered++
	}
	return l.allow(now)
}

// noNeighbor reports whether the unknown MAC of real server id, seen at
// now, is logged.
func (l *verdictLog) noNeighbor(id dest.ID, now time.Time) bool {
	if id == 0 {
		return false
	}
	if _, ok := l.noNeigh[id]; ok {
		return false
	}
	if l.noNeigh == nil {
		l.noNeigh = make(map[dest.ID]struct{})
	}
	if len(l.noNeigh) >= maxNoNeighIDs {
		// IDs of servers deleted since are never handed out again (a
		// freed ID's slot comes back under a new ID): start afresh.
		clear(l.noNeigh)
	}
	l.noNeigh[id] = struct{}{}
	return l.allow(now)
}

// reachable forgets the servers logged without a MAC: a server that was
// unknown may be logged again if it is lost.
func (l *verdictLog) reachable() { clear(l.noNeigh) }

// allow applies the overall rate limit.
func (l *verdictLog) allow(now time.Time) bool {
	if now.Sub(l.window) >= time.Second || now.Before(l.window) {
		l.window, l.lines = now, 0
	}
	if l.lines >= maxLogsPerSecond {
		l.suppressed++
		return false
	}
	l.lines++
	return true
}
