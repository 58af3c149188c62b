package sched

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// addOneByOne reproduces ipvsadm -A on an empty service followed by one -a
// per weight: a scheduler over no servers, then one New with prev per -a.
func addOneByOne(t *testing.T, sched string, weights ...int32) (Scheduler, []Server) {
	t.Helper()
	full := added(weights...)
	s := mustNew(t, sched, 0, nil, nil, Options{})
	for k := 1; k <= len(full); k++ {
		s = mustNew(t, sched, 0, full[len(full)-k:], s, Options{})
	}
	return s, full
}

// TestWeightedRoundRobinTable checks every row of the IPVS.md §1.2 table.
func TestWeightedRoundRobinTable(t *testing.T) {
	for _, tt := range []struct {
		name    string
		weights []int32 // in the order added
		init    bool    // bound by init_service (-E ... -s wrr) instead of -a one by one
		want    string
	}{
		{name: "A2 B1", weights: []int32{2, 1}, want: "B A A B A A B A A"},
		{name: "A1 B2", weights: []int32{1, 2}, want: "B A B B A B B A B"},
		{name: "A1 B1", weights: []int32{1, 1}, want: "B A B A"},
		{name: "A3 B2 C1", weights: []int32{3, 2, 1}, want: "C B A A B A C B A A B A"},
		{name: "A5 B3", weights: []int32{5, 3}, want: "B A A A B A B A B A A A B A B A"},
		{name: "A2 B1 init", weights: []int32{2, 1}, init: true, want: "A B A A B A"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Scheduler
			var servers []Server
			if tt.init {
				servers = added(tt.weights...)
				s = mustNew(t, "wrr", 0, servers, nil, Options{})
			} else {
				s, servers = addOneByOne(t, "wrr", tt.weights...)
			}
			n := len(strings.Fields(tt.want))
			if got := sequence(s, servers, Flow{}, n, false, false); got != tt.want {
				t.Fatalf("picks = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestLVSDRWalkthrough is the demo's sequence: rs1 then rs2 added with
// weight 1, eight connections, then ipvsadm -e sets rs1's weight to 2 and
// twelve more connections follow.
func TestLVSDRWalkthrough(t *testing.T) {
	s, servers := addOneByOne(t, "wrr", 1, 1) // [rs2 rs1]
	rs := func(i int) string {
		if i < 0 {
			return "-"
		}
		return "rs" + string(rune('0'+servers[i].ID))
	}
	picks := func(s Scheduler, n int) string {
		var out []string
		for range n {
			out = append(out, rs(s.Pick(Flow{})))
		}
		return strings.Join(out, " ")
	}
	if got, want := picks(s, 8), "rs2 rs1 rs2 rs1 rs2 rs1 rs2 rs1"; got != want {
		t.Fatalf("weights 1:1: picks = %s, want %s", got, want)
	}
	edited := append([]Server(nil), servers...)
	edited[1].Weight, edited[1].LastWeight = 2, 2 // ipvsadm -e rs1 -w 2: upd_dest
	servers = edited
	s = mustNew(t, "wrr", 0, edited, s, Options{})
	if got, want := picks(s, 12), "rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1 rs2 rs1 rs1"; got != want {
		t.Fatalf("after -e rs1 -w 2: picks = %s, want %s", got, want)
	}
}

// TestWeightedRoundRobinDestChanged checks ip_vs_wrr_dest_changed's
// arithmetic on the carried current weight.
func TestWeightedRoundRobinDestChanged(t *testing.T) {
	for _, tt := range []struct {
		name          string
		before, after string // list order: name and weight per server
		picks         int    // before the change
		wantCW        int32
		want          string // picks after the change
	}{
		// init: di=1, mw=6, cw=6; three picks of A leave cw=4. B's weight
		// becomes 2: di=2, mw=5, cw=(4/2)*2+1=5.
		{name: "rounded to di", before: "B1 A6", after: "B2 A6", picks: 3, wantCW: 5, want: "A A B A A A B A A A"},
		// init: di=1, mw=2, cw=2. B deleted: di=2, mw=1; cw>mw, so cw=mw.
		{name: "above mw", before: "B1 A2", after: "A2", wantCW: 1, want: "A A A"},
		// init: di=1, mw=3, cw=3; B, then B again at cw=2. C added: cw=2 kept
		// (init_service would start at 3: B B A ...), the walk restarts at
		// the head.
		{name: "kept", before: "B3 A2", after: "C1 B3 A2", picks: 2, wantCW: 2, want: "B A C B A B B A"},
		// Every weight 0: mw=0, the pick fails. C added: cw=0 becomes mw=1.
		{name: "from zero", before: "B0 A0", after: "C4 B0 A0", picks: 1, wantCW: 1, want: "C C C"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := list(tt.before)
			prev := mustNew(t, "wrr", 0, before, nil, Options{})
			sequence(prev, before, Flow{}, tt.picks, false, false)
			after := list(tt.after)
			s := mustNew(t, "wrr", 0, after, prev, Options{}).(*WeightedRoundRobin)
			if cl, cw := unpackWRR(s.state.Load()); cl != -1 || cw != tt.wantCW {
				t.Fatalf("state after the change: cl=%d cw=%d, want cl=-1 cw=%d", cl, cw, tt.wantCW)
			}
			n := len(strings.Fields(tt.want))
			if got := sequence(s, after, Flow{}, n, false, false); got != tt.want {
				t.Fatalf("picks after the change = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestWeightedRoundRobinOverloaded: overloaded servers are skipped; when
// every server is, the pick fails and the state is left where the kernel
// leaves it, so that the sequence resumes as the kernel's does.
func TestWeightedRoundRobinOverloaded(t *testing.T) {
	servers := list("C1 B2 A3")
	s := mustNew(t, "wrr", 0, servers, nil, Options{})
	got := sequence(s, servers, Flow{}, 2, false, false) // cw=3: A; cw=2: B
	servers[2].State.Overloaded.Store(true)              // A
	got += " " + sequence(s, servers, Flow{}, 3, false, false)
	for i := range servers {
		servers[i].State.Overloaded.Store(true)
	}
	got += " " + sequence(s, servers, Flow{}, 2, false, false)
	for i := range servers {
		servers[i].State.Overloaded.Store(false)
	}
	got += " " + sequence(s, servers, Flow{}, 6, false, false)
	// After B at cw=2 with A overloaded: cw=1: C, B; cw=3: nothing, cw=2: B.
	// All overloaded from (B, cw=2): the passes at cw=2 and cw=1 find
	// nothing and the walk gives up at the head with cw=3; the next one
	// from the head too. Cleared: cw=3: A; cw=2: B A; cw=1: C B A.
	if want := "A B C B B - - A B A C B A"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
}

// TestWeightedRoundRobinStop: from (B, cw=1) with every server overloaded
// the walk wraps once and stops at B itself (the kernel's stop guard), so
// the position stays on B and A comes next, not B from the head.
func TestWeightedRoundRobinStop(t *testing.T) {
	servers := list("B1 A1")
	s := mustNew(t, "wrr", 0, servers, nil, Options{})
	got := sequence(s, servers, Flow{}, 1, false, false)
	for i := range servers {
		servers[i].State.Overloaded.Store(true)
	}
	got += " " + sequence(s, servers, Flow{}, 1, false, false)
	if cl, cw := unpackWRR(s.(*WeightedRoundRobin).state.Load()); cl != 0 || cw != 1 {
		t.Fatalf("state after the failed pick: cl=%d cw=%d, want cl=0 cw=1", cl, cw)
	}
	for i := range servers {
		servers[i].State.Overloaded.Store(false)
	}
	got += " " + sequence(s, servers, Flow{}, 2, false, false)
	if want := "B - A B"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
}

// TestNewAddedIsOneByOne: NewAdded gives the scheduler that one New per -a
// gives, for random weights (0 included), by the picks that follow.
func TestNewAddedIsOneByOne(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"wrr", "rr", "wlc", "lc", "sh", "mh", "dh", "lblc", "twos", "fo"} {
		for range 300 {
			weights := make([]int32, r.IntN(12))
			for i := range weights {
				weights[i] = int32(r.IntN(7))
			}
			want, servers := addOneByOne(t, name, weights...)
			got, err := NewAdded(name, 0, added(weights...), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if w, g := sequence(want, servers, Flow{}, 40, false, false), sequence(got, servers, Flow{}, 40, false, false); g != w {
				t.Fatalf("%s, weights %v in the order added: NewAdded picks %s, one New per -a %s", name, weights, g, w)
			}
		}
	}
}
