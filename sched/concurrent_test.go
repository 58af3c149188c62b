package sched

import (
	"sync"
	"testing"
)

// TestConcurrentPick: rr and wrr publish their position with
// compare-and-swap, so picks from several goroutines form one kernel
// sequence: over whole cycles every server gets exactly its share.
// Meanwhile New reads the schedulers as prev (run with -race).
func TestConcurrentPick(t *testing.T) {
	for _, tt := range []struct {
		sched string
		list  string
		want  map[string]int
	}{
		{sched: "rr", list: "D1 C1 B1 A1", want: map[string]int{"A": 2000, "B": 2000, "C": 2000, "D": 2000}},
		{sched: "wrr", list: "D1 C2 B3 A2", want: map[string]int{"A": 2000, "B": 3000, "C": 2000, "D": 1000}},
		{sched: "lblc", list: "B1 A1"},
		{sched: "lblcr", list: "B1 A1"},
		{sched: "twos", list: "B1 A1"},
	} {
		t.Run(tt.sched, func(t *testing.T) {
			servers := list(tt.list)
			s := mustNew(t, tt.sched, 0, servers, nil, Options{})
			const workers, each = 8, 1000
			counts := make([]map[string]int, workers)
			var wg sync.WaitGroup
			for w := range workers {
				counts[w] = map[string]int{}
				wg.Go(func() {
					fl := Flow{}
					for k := range each {
						fl.Dst[15], fl.Now = byte(k), uint32(k)
						counts[w][name(servers, s.Pick(fl))]++
					}
				})
			}
			for range 20 {
				mustNew(t, tt.sched, 0, servers, s, Options{})
			}
			wg.Wait()
			got := map[string]int{}
			for _, c := range counts {
				for k, v := range c {
					got[k] += v
				}
			}
			if tt.want != nil {
				for k, v := range tt.want {
					if got[k] != v {
						t.Fatalf("picks per server = %v, want %v", got, tt.want)
					}
				}
			}
		})
	}
}
