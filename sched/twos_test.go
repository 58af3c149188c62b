package sched

import (
	"math/rand/v2"
	"testing"
)

// scripted returns a Rand that yields vals in turn.
func scripted(vals ...uint32) func() uint32 {
	k := 0
	return func() uint32 {
		v := vals[k%len(vals)]
		k++
		return v
	}
}

// drawing returns a 32-bit value that below(ceil) maps to v.
func drawing(v, ceil uint32) uint32 {
	return uint32((uint64(v)<<32+uint64(ceil)-1)/uint64(ceil)) + 1000
}

func TestTwoChoices(t *testing.T) {
	// List [C1 B1 A2]: total 4, draws in 0..4: 0 and 1 land on C, 2 on B,
	// 3 and 4 on A.
	for _, tt := range []struct {
		name   string
		counts string
		r1, r2 uint32
		want   string
	}{
		{name: "zero lands on the first", r1: 0, r2: 0, want: "C"},
		{name: "equal load keeps choice1", r1: 1, r2: 3, want: "C"},
		{name: "choice2 less loaded", counts: "C:a1", r1: 1, r2: 4, want: "A"},
		{name: "choice1 less loaded", counts: "C:a1", r1: 4, r2: 1, want: "A"},
		{name: "per weight", counts: "B:a1 A:a2,i100", r1: 2, r2: 3, want: "B"},
		{name: "overloaded left out", counts: "C:o", r1: 1, r2: 1, want: "B"}, // total 3: 0 and 1 on B
	} {
		t.Run(tt.name, func(t *testing.T) {
			servers := list("C1 B1 A2")
			counts(servers, tt.counts)
			var total uint32
			for i := range servers {
				if usable(&servers[i]) {
					total += uint32(servers[i].Weight)
				}
			}
			opts := Options{Rand: scripted(drawing(tt.r1, total+1), drawing(tt.r2, total+1))}
			s := mustNew(t, "twos", 0, servers, nil, opts)
			if got := name(servers, s.Pick(Flow{})); got != tt.want {
				t.Fatalf("pick = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestTwoChoicesBelow checks the rejection step of get_random_u32_below:
// with ceil 5, a product whose low half is below 2^32 mod 5 = 1 is drawn
// again.
func TestTwoChoicesBelow(t *testing.T) {
	tc := &TwoChoices{rand: scripted(0, drawing(3, 5))}
	if got := tc.below(5); got != 3 {
		t.Fatalf("below(5) = %d, want 3 (the draw 0 rejected)", got)
	}
	tc = &TwoChoices{rand: scripted(0xffffffff)}
	if got := tc.below(5); got != 4 {
		t.Fatalf("below(5) of 0xffffffff = %d, want 4", got)
	}
}

// TestTwoChoicesRepeatable: the default source has a fixed seed.
func TestTwoChoicesRepeatable(t *testing.T) {
	run := func() string {
		servers := list("D4 C1 B2 A3")
		s := mustNew(t, "twos", 0, servers, nil, Options{})
		return sequence(s, servers, Flow{}, 40, true, false)
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("two runs differ:\n%s\n%s", a, b)
	}
}

// TestTwoChoicesSpread: with equal loads every server is chosen about in
// proportion to its weight (a bit more for the first, which also takes the
// draw 0).
func TestTwoChoicesSpread(t *testing.T) {
	servers := list("C1 B1 A2")
	r := rand.New(rand.NewPCG(9, 9))
	s := mustNew(t, "twos", 0, servers, nil, Options{Rand: r.Uint32})
	hits := map[string]int{}
	const n = 100000
	for range n {
		hits[name(servers, s.Pick(Flow{}))]++
	}
	// choice1 is kept on equal load: P(C) = 2/5, P(B) = 1/5, P(A) = 2/5.
	for who, want := range map[string]float64{"C": 0.4, "B": 0.2, "A": 0.4} {
		if got := float64(hits[who]) / n; got < want-0.01 || got > want+0.01 {
			t.Errorf("share of %s = %.3f, want %.3f", who, got, want)
		}
	}
}

// TestTwoChoicesEditKeepsRandom: the kernel's random source is not per
// service, so an -a, -d or -e (New with prev) goes on with the same
// sequence of draws; a no-op -e changes no pick.
func TestTwoChoicesEditKeepsRandom(t *testing.T) {
	servers := list("C1 B1 A2")
	ref := mustNew(t, "twos", 0, servers, nil, Options{})
	want := sequence(ref, servers, Flow{}, 12, false, false)

	s := mustNew(t, "twos", 0, servers, nil, Options{})
	got := sequence(s, servers, Flow{}, 6, false, false)
	s = mustNew(t, "twos", 0, servers, s, Options{})
	got += " " + sequence(s, servers, Flow{}, 6, false, false)
	if got != want {
		t.Fatalf("picks across an edit = %s, want %s", got, want)
	}
}
