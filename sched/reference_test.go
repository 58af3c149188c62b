package sched

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The slow models below restate each kernel rule in the plainest terms,
// with no shared code, and the tests check the fast schedulers against
// them over random situations [wireguard-go SlowRouter].

// slowLeast returns the first usable server with the smallest cost.
func slowLeast(servers []Server, cost func(*Server) *big.Rat) int {
	best := -1
	var bc *big.Rat
	for i := range servers {
		s := &servers[i]
		if s.Weight <= 0 || s.State.Overloaded.Load() {
			continue
		}
		if c := cost(s); best < 0 || c.Cmp(bc) < 0 {
			best, bc = i, c
		}
	}
	return best
}

func ratio(num int64, den int32) *big.Rat { return big.NewRat(num, int64(den)) }

var slowModels = map[string]func([]Server) int{
	"lc": func(s []Server) int {
		return slowLeast(s, func(d *Server) *big.Rat {
			return ratio(256*int64(d.State.Active.Load())+int64(d.State.Inactive.Load()), 1)
		})
	},
	"wlc": func(s []Server) int {
		return slowLeast(s, func(d *Server) *big.Rat {
			return ratio(256*int64(d.State.Active.Load())+int64(d.State.Inactive.Load()), d.Weight)
		})
	},
	"sed": func(s []Server) int {
		return slowLeast(s, func(d *Server) *big.Rat { return ratio(int64(d.State.Active.Load())+1, d.Weight) })
	},
	"nq": func(s []Server) int {
		for i := range s {
			if s[i].Weight > 0 && !s[i].State.Overloaded.Load() && s[i].State.Active.Load() == 0 {
				return i
			}
		}
		return slowLeast(s, func(d *Server) *big.Rat { return ratio(int64(d.State.Active.Load())+1, d.Weight) })
	},
}

// randomSituation returns n servers with random weights, counts and
// overload flags.
func randomSituation(r *rand.Rand) []Server {
	weights := []int32{0, 1, 1, 2, 3, 4, 6, 8, 12, 100}
	servers := make([]int32, 1+r.IntN(7))
	for i := range servers {
		servers[i] = weights[r.IntN(len(weights))]
	}
	s := added(servers...)
	for i := range s {
		s[i].State.Active.Store(int32(r.IntN(30)))
		s[i].State.Inactive.Store(int32(r.IntN(1000)))
		s[i].State.Overloaded.Store(r.IntN(5) == 0)
	}
	return s
}

// churn changes the counts and flags a little, as traffic would.
func churn(r *rand.Rand, s []Server) {
	i := r.IntN(len(s))
	switch r.IntN(4) {
	case 0:
		if s[i].State.Active.Load() > 0 {
			s[i].State.Active.Add(-1)
		}
	case 1:
		s[i].State.Inactive.Add(int32(r.IntN(300)))
	case 2:
		s[i].State.Overloaded.Store(!s[i].State.Overloaded.Load())
	}
}

func TestLeastConnReference(t *testing.T) {
	for name, slow := range slowModels {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(21, 22))
			for round := range 500 {
				servers := randomSituation(r)
				s := mustNew(t, name, 0, servers, nil, Options{})
				for k := range 40 {
					want, got := slow(servers), s.Pick(Flow{})
					if got != want {
						t.Fatalf("round %d pick %d: got %d, slow model %d; servers %s", round, k, got, want, describe(servers))
					}
					if got >= 0 {
						servers[got].State.Active.Add(1)
					}
					churn(r, servers)
				}
			}
		})
	}
}

// slowWRR restates wrr as the sequence of (cw, server) pairs the kernel
// walks: at current weight cw, every server with weight >= cw in list
// order; then cw-di, down to 1, then mw again. A pick is the next pair
// after (cl, cw) whose server is not overloaded. With none usable, the
// kernel's stop guard leaves (head, mw) when it started at the head or
// above di, else (cl, 1).
type slowWRR struct {
	cl, cw, di, mw int32
}

func newSlowWRR(servers []Server) *slowWRR {
	m := &slowWRR{cl: -1}
	m.di = slowGCD(servers)
	for _, s := range servers {
		if s.Weight-(m.di-1) > m.mw {
			m.mw = s.Weight - (m.di - 1)
		}
	}
	m.cw = m.mw
	return m
}

func slowGCD(servers []Server) int32 {
	g := big.NewInt(0)
	for _, s := range servers {
		if s.Weight > 0 {
			g.GCD(nil, nil, g, big.NewInt(int64(s.Weight)))
		}
	}
	if g.Sign() == 0 {
		return 1
	}
	return int32(g.Int64())
}

func (m *slowWRR) pick(servers []Server) int {
	if m.mw == 0 {
		return -1
	}
	usableAny := false
	for i := range servers {
		usableAny = usableAny || servers[i].Weight > 0 && !servers[i].State.Overloaded.Load()
	}
	if !usableAny {
		if m.cl == -1 || m.cw > m.di {
			m.cl, m.cw = -1, m.mw
		} else {
			m.cw = 1
		}
		return -1
	}
	cw, from := m.cw, int(m.cl)+1
	for {
		for i := from; i < len(servers); i++ {
			if servers[i].Weight >= cw && !servers[i].State.Overloaded.Load() {
				m.cl, m.cw = int32(i), cw
				return i
			}
		}
		from = 0
		if cw -= m.di; cw <= 0 {
			cw = m.mw
		}
	}
}

func TestWeightedRoundRobinReference(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for round := range 2000 {
		servers := randomSituation(r)
		s := mustNew(t, "wrr", 0, servers, nil, Options{}).(*WeightedRoundRobin)
		m := newSlowWRR(servers)
		for k := range 60 {
			want, got := m.pick(servers), s.Pick(Flow{})
			cl, cw := unpackWRR(s.state.Load())
			if got != want || cl != m.cl || cw != m.cw {
				t.Fatalf("round %d pick %d: got %d (cl=%d cw=%d), slow model %d (cl=%d cw=%d); di=%d mw=%d servers %s",
					round, k, got, cl, cw, want, m.cl, m.cw, m.di, m.mw, describe(servers))
			}
			if r.IntN(3) == 0 {
				churn(r, servers)
			}
		}
	}
}

func describe(servers []Server) string {
	var out string
	for _, s := range servers {
		out += fmt.Sprintf("[%s w=%d a=%d i=%d o=%v]", name(servers, indexOf(servers, s.ID)),
			s.Weight, s.State.Active.Load(), s.State.Inactive.Load(), s.State.Overloaded.Load())
	}
	return out
}
