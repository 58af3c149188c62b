package stats

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEstimatorStepResponse feeds a constant load and checks the rates
// after each 2-second tick against the sequences in IPVS.md §6.
func TestEstimatorStepResponse(t *testing.T) {
	tests := []struct {
		name  string
		step  Counters // increase per tick (2 s)
		rate  func(Rates) uint64
		wants []uint64
	}{
		{
			name:  "100 conn/s",
			step:  Counters{Conns: 200},
			rate:  func(r Rates) uint64 { return r.CPS },
			wants: []uint64{25, 44, 58, 68, 76, 82, 87, 90},
		},
		{
			name:  "100 packets/s",
			step:  Counters{InPkts: 200},
			rate:  func(r Rates) uint64 { return r.InPPS },
			wants: []uint64{25, 44, 58, 68, 76, 82, 87, 90},
		},
		{
			name:  "1000000 bytes/s",
			step:  Counters{InBytes: 2_000_000},
			rate:  func(r Rates) uint64 { return r.InBPS },
			wants: []uint64{250000, 437500, 578125, 683594},
		},
		{
			name:  "1000000 bytes/s out",
			step:  Counters{OutBytes: 2_000_000},
			rate:  func(r Rates) uint64 { return r.OutBPS },
			wants: []uint64{250000, 437500, 578125, 683594},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Estimator
			var c Counters
			var got []uint64
			for range tt.wants {
				c = c.Add(tt.step)
				e.Tick(c)
				got = append(got, tt.rate(e.Rates()))
			}
			if diff := cmp.Diff(tt.wants, got); diff != "" {
				t.Fatalf("rates after each tick (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEstimatorDecay checks that the average falls to exactly zero once the
// traffic stops: the difference is shifted as a signed value, so -3 >> 2
// is -1, not a huge unsigned number, and the average never sticks above 0.
func TestEstimatorDecay(t *testing.T) {
	var e Estimator
	e.Tick(Counters{Conns: 1}) // 512 scaled: avg 128, shown as 0 conn/s
	var avgs []uint64
	for e.cps != 0 && len(avgs) < 100 {
		e.Tick(Counters{Conns: 1})
		avgs = append(avgs, e.cps)
	}
	want := []uint64{96, 72, 54, 40, 30, 22, 16, 12, 9, 6, 4, 3, 2, 1, 0}
	if diff := cmp.Diff(want, avgs); diff != "" {
		t.Fatalf("scaled cps while idle (-want +got):\n%s", diff)
	}
}

func TestEstimatorReset(t *testing.T) {
	var e Estimator
	e.Tick(Counters{Conns: 1000, InBytes: 1 << 20})
	if e.Rates() == (Rates{}) {
		t.Fatal("rates are zero after traffic")
	}
	e.Reset(Counters{Conns: 5000, InBytes: 1 << 30})
	if got := e.Rates(); got != (Rates{}) {
		t.Fatalf("rates after Reset = %+v, want zero", got)
	}
	// The next tick measures from the counters given to Reset.
	e.Tick(Counters{Conns: 5200, InBytes: 1<<30 + 2_000_000})
	want := Rates{CPS: 25, InBPS: 250000}
	if got := e.Rates(); got != want {
		t.Fatalf("rates after Reset and one tick = %+v, want %+v", got, want)
	}
}

func TestEstimatorAllocs(t *testing.T) {
	var e Estimator
	var c Counters
	var r Rates
	if a := testing.AllocsPerRun(1000, func() {
		c.Conns += 7
		e.Tick(c)
		r = e.Rates()
	}); a != 0 {
		t.Fatalf("Tick and Rates allocs = %v, want 0", a)
	}
	_ = r
}

func TestCountersSub(t *testing.T) {
	a := Counters{Conns: 10, InPkts: 20, OutPkts: 30, InBytes: 40, OutBytes: 50}
	b := Counters{Conns: 1, InPkts: 2, OutPkts: 3, InBytes: 4, OutBytes: 5}
	want := Counters{Conns: 9, InPkts: 18, OutPkts: 27, InBytes: 36, OutBytes: 45}
	if diff := cmp.Diff(want, a.Sub(b)); diff != "" {
		t.Fatalf("Sub (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(a, a.Sub(b).Add(b)); diff != "" {
		t.Fatalf("Sub then Add (-want +got):\n%s", diff)
	}
}
