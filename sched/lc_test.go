package sched

import (
	"strings"
	"testing"
)

// TestLeastConnFamily checks lc, wlc, sed, nq, fo and ovf on hand-computed
// sequences. With active (inactive) each pick adds a connection to the
// chosen server, as a TCP (UDP) connection table would.
func TestLeastConnFamily(t *testing.T) {
	for _, tt := range []struct {
		sched, name   string
		list, counts  string
		active, inact bool
		want          string
	}{
		// lc: minimum active×256+inactive, first in list on ties.
		{sched: "lc", name: "equal", list: "C1 B1 A1", active: true, want: "C B A C B A"},
		{sched: "lc", name: "inactive counts", list: "C1 B1 A1", counts: "C:i3 B:i1 A:i2", active: true, want: "B A C B A C"},
		{sched: "lc", name: "weight ignored", list: "C1 B5 A0", active: true, want: "C B C B"},
		{sched: "lc", name: "overloaded", list: "C1 B1 A1", counts: "C:o", active: true, want: "B A B A"},
		{sched: "lc", name: "udp", list: "C1 B1 A1", counts: "C:i1", inact: true, want: "B A C B A C"},

		// wlc: minimum overhead/weight; IPVS.md §1.4 example first.
		{sched: "wlc", name: "equal", list: "B1 A1", active: true, want: "B A B A"},
		{sched: "wlc", name: "inactive counts", list: "B1 A1", counts: "B:i300 A:a1", active: true, want: "A B A B"},
		{sched: "wlc", name: "1:2", list: "B1 A2", active: true, want: "B A A B A A B"},
		{sched: "wlc", name: "1:2:3", list: "C1 B2 A3", active: true, want: "C B A A B A C"},
		{sched: "wlc", name: "quiesced and overloaded", list: "D0 C1 B2 A3", counts: "A:o", active: true, want: "C B B C B B"},

		// sed: (active+1)/weight, inactive ignored.
		{sched: "sed", name: "1:2", list: "B1 A2", active: true, want: "A B A A B A"},
		{sched: "sed", name: "inactive ignored", list: "B1 A1", counts: "B:i1000 A:a1", active: true, want: "B B A B A"},
		{sched: "sed", name: "udp", list: "C2 B3 A3", inact: true, want: "B B B"},

		// nq: the first idle server, else sed.
		{sched: "nq", name: "1:2", list: "B1 A2", active: true, want: "B A A A B"},
		{sched: "nq", name: "idle later in list", list: "C5 B1 A1", counts: "C:a3 B:a2", active: true, want: "A C C"},
		{sched: "nq", name: "udp", list: "C0 B1 A1", counts: "B:o", inact: true, want: "A A A"},

		// fo: highest weight, first in list on ties.
		{sched: "fo", name: "tie", list: "C1 B3 A3", active: true, want: "B B B"},
		{sched: "fo", name: "failover", list: "C1 B3 A3", counts: "B:o", active: true, want: "A A A"},
		{sched: "fo", name: "quiesced", list: "C0 B1", want: "B B"},
		{sched: "fo", name: "none", list: "C0 B3 A3", counts: "B:o A:o", want: "- -"},

		// ovf: highest weight until active > weight, then overflow.
		{sched: "ovf", name: "overflow", list: "C1 B2 A2", active: true, want: "B B B A A A C C -"},
		{sched: "ovf", name: "already full", list: "B1 A3", counts: "A:a5", active: true, want: "B B -"},
		{sched: "ovf", name: "overloaded", list: "B2 A2", counts: "B:o", active: true, want: "A A A -"},
		{sched: "ovf", name: "udp never fills", list: "B1 A2", inact: true, want: "A A A A"},
	} {
		t.Run(tt.sched+"/"+tt.name, func(t *testing.T) {
			servers := list(tt.list)
			counts(servers, tt.counts)
			s := mustNew(t, tt.sched, 0, servers, nil, Options{})
			n := len(strings.Fields(tt.want))
			if got := sequence(s, servers, Flow{}, n, tt.active, tt.inact); got != tt.want {
				t.Fatalf("picks = %s, want %s", got, tt.want)
			}
		})
	}
}
