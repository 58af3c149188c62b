package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// added returns servers as the kernel lists them after -a of the given
// weights in order: the k-th added server has ID k, is named by the k-th
// letter (A first) and has address 192.0.2.10+k; the list is reversed,
// the most recently added first.
func added(weights ...int32) []Server {
	s := make([]Server, len(weights))
	for k, w := range weights {
		s[len(weights)-1-k] = Server{
			ID:         dest.ID(k + 1),
			Addr:       netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + k)}),
			Port:       80,
			Weight:     w,
			LastWeight: w,
			State:      new(dest.State),
		}
	}
	return s
}

// name returns the letter of the server at index i, or "-" for no pick.
func name(servers []Server, i int) string {
	if i < 0 {
		return "-"
	}
	return string(rune('A' + servers[i].ID - 1))
}

// sequence picks n times. With active (inactive) set, each pick adds one
// active (inactive) connection to the chosen server, as the connection
// table would for a TCP (UDP) connection that stays open.
func sequence(s Scheduler, servers []Server, fl Flow, n int, active, inactive bool) string {
	got := make([]string, n)
	for k := range got {
		i := s.Pick(fl)
		got[k] = name(servers, i)
		if i >= 0 && active {
			servers[i].State.Active.Add(1)
		}
		if i >= 0 && inactive {
			servers[i].State.Inactive.Add(1)
		}
	}
	return strings.Join(got, " ")
}

// mustNew is New that fails the test on error.
func mustNew(t testing.TB, name string, flags service.SchedFlags, servers []Server, prev Scheduler, opts Options) Scheduler {
	t.Helper()
	s, err := New(name, flags, servers, prev, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return s
}

// flow4 returns a flow from client src:sport to the virtual IP vip:80.
func flow4(src string, sport uint16, vip string) Flow {
	return Flow{
		Src:     netip.MustParseAddr(src).As16(),
		Dst:     netip.MustParseAddr(vip).As16(),
		SrcPort: sport,
		DstPort: 80,
	}
}

// randomFlow returns a flow from a random client to one of a few VIPs.
func randomFlow(r *rand.Rand, now uint32) Flow {
	fl := Flow{SrcPort: uint16(r.Uint32()), DstPort: 80, Now: now}
	fl.Src = netip.AddrFrom4([4]byte{198, 51, byte(r.IntN(256)), byte(r.IntN(256))}).As16()
	fl.Dst = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(4))}).As16()
	return fl
}

func TestNames(t *testing.T) {
	want := []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
	if diff := cmp.Diff(want, Names); diff != "" {
		t.Fatalf("Names (-want +got):\n%s", diff)
	}
	for _, n := range append(Names, "none") {
		if _, err := New(n, 0, added(1, 2), nil, Options{}); err != nil {
			t.Errorf("New(%q): %v", n, err)
		}
	}
}

func TestNewUnknown(t *testing.T) {
	_, err := New("wrrr", 0, added(1), nil, Options{})
	if !errors.Is(err, ErrUnknown) {
		t.Fatalf("New(wrrr) error = %v, want ErrUnknown", err)
	}
	want := `scheduler "wrrr": unknown, want one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos`
	if err.Error() != want {
		t.Fatalf("New(wrrr) error:\n got %s\nwant %s", err, want)
	}
}

func TestNone(t *testing.T) {
	s := mustNew(t, "none", 0, added(1), nil, Options{})
	if i := s.Pick(Flow{}); i != -1 {
		t.Fatalf("none picked %d, want -1", i)
	}
}

// allFlags lists flag sets that change how a scheduler looks up a server.
var allFlags = []service.SchedFlags{0, service.SchedFlag1, service.SchedFlag2, service.SchedFlag1 | service.SchedFlag2}

// TestNeverUnavailable checks, for every scheduler, that a quiesced or
// overloaded server is never picked, over random situations, and that
// Pick returns -1 when no server is available.
func TestNeverUnavailable(t *testing.T) {
	for _, n := range Names {
		for _, flags := range allFlags {
			t.Run(fmt.Sprintf("%s/flags=%#x", n, uint32(flags)), func(t *testing.T) {
				r := rand.New(rand.NewPCG(7, uint64(flags)))
				for round := range 50 {
					servers := added(3, 0, 1, 2, 0, 5, 1, 4)
					for i := range servers {
						servers[i].LastWeight = int32(1 + r.IntN(4)) // mh: quiesced servers keep slots
						servers[i].State.Overloaded.Store(r.IntN(3) == 0)
						servers[i].State.Active.Store(int32(r.IntN(20)))
						servers[i].State.Inactive.Store(int32(r.IntN(200)))
					}
					s := mustNew(t, n, flags, servers, nil, Options{})
					for k := range 200 {
						i := s.Pick(randomFlow(r, uint32(k)))
						if i < 0 {
							continue
						}
						if !usable(&servers[i]) {
							t.Fatalf("round %d pick %d: server %s weight %d overloaded %v picked", round, k,
								name(servers, i), servers[i].Weight, servers[i].State.Overloaded.Load())
						}
						servers[i].State.Active.Add(1)
					}
				}
			})
		}
	}
}

func TestNoneAvailable(t *testing.T) {
	for _, n := range Names {
		for _, flags := range allFlags {
			t.Run(fmt.Sprintf("%s/flags=%#x", n, uint32(flags)), func(t *testing.T) {
				cases := map[string][]Server{
					"empty":      added(),
					"quiesced":   added(0, 0, 0),
					"overloaded": added(1, 2, 3),
					"mixed":      added(0, 2, 0),
					"no MAC":     added(1, 2, 3),
					"mixed MAC":  added(0, 2, 1),
				}
				for i := range cases["overloaded"] {
					cases["overloaded"][i].State.Overloaded.Store(true)
				}
				cases["mixed"][1].State.Overloaded.Store(true)
				// udr's own reason: the real server's MAC is unknown.
				for i := range cases["no MAC"] {
					cases["no MAC"][i].State.NoNeighbor.Store(true)
				}
				for _, srv := range cases["mixed MAC"] {
					switch srv.Weight {
					case 2:
						srv.State.Overloaded.Store(true)
					case 1:
						srv.State.NoNeighbor.Store(true)
					}
				}
				for c, servers := range cases {
					for i := range servers {
						servers[i].LastWeight = 1
					}
					s := mustNew(t, n, flags, servers, nil, Options{})
					r := rand.New(rand.NewPCG(1, 1))
					for k := range 20 {
						if i := s.Pick(randomFlow(r, uint32(k))); i != -1 {
							t.Fatalf("%s: pick %d = %d, want -1", c, k, i)
						}
					}
				}
			})
		}
	}
}

// TestPickAllocs proves that Pick allocates nothing, for every scheduler.
func TestPickAllocs(t *testing.T) {
	for _, n := range append(Names, "none") {
		for _, flags := range allFlags {
			t.Run(fmt.Sprintf("%s/flags=%#x", n, uint32(flags)), func(t *testing.T) {
				servers := added(1, 2, 0, 3)
				servers[0].State.Overloaded.Store(true) // exercise the fallbacks
				servers[1].State.Active.Store(4)
				s := mustNew(t, n, flags, servers, nil, Options{})
				r := rand.New(rand.NewPCG(3, 4))
				flows := make([]Flow, 64)
				for k := range flows {
					flows[k] = randomFlow(r, uint32(k*100))
				}
				k := 0
				if a := testing.AllocsPerRun(1000, func() {
					s.Pick(flows[k%len(flows)])
					k++
				}); a != 0 {
					t.Fatalf("Pick allocs = %v, want 0", a)
				}
			})
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range Names {
		b.Run(n, func(b *testing.B) {
			servers := added(1, 2, 3, 4, 5, 6, 7, 8)
			s := mustNew(b, n, 0, servers, nil, Options{})
			r := rand.New(rand.NewPCG(5, 6))
			flows := make([]Flow, 1024)
			for k := range flows {
				flows[k] = randomFlow(r, uint32(k))
			}
			b.ReportAllocs()
			for k := 0; b.Loop(); k++ {
				s.Pick(flows[k&1023])
			}
		})
	}
}

// counts sets connection counts and overload flags by server letter:
// "B:a2 A:i300 C:o" gives B 2 active, A 300 inactive, C the overload flag.
func counts(servers []Server, spec string) {
	for _, f := range strings.Fields(spec) {
		i := indexOf(servers, serviceID(f[0]))
		for _, part := range strings.Split(f[2:], ",") {
			v, _ := strconv.Atoi(part[1:]) // empty for "o"
			switch part[0] {
			case 'a':
				servers[i].State.Active.Store(int32(v))
			case 'i':
				servers[i].State.Inactive.Store(int32(v))
			case 'o':
				servers[i].State.Overloaded.Store(true)
			}
		}
	}
}

// list builds servers in list order from "C1 B2 A3": a letter (which gives
// the ID, A = 1) and a weight per server.
func list(spec string) []Server {
	var out []Server
	for _, f := range strings.Fields(spec) {
		w, err := strconv.Atoi(f[1:])
		if err != nil {
			panic(err)
		}
		st := new(dest.State)
		st.Weight.Store(int32(w)) // as forwarder.Compile mirrors it
		out = append(out, Server{
			ID:         dest.ID(f[0]-'A') + 1,
			Addr:       netip.AddrFrom4([4]byte{192, 0, 2, 10 + f[0] - 'A' + 1}),
			Port:       80,
			Weight:     int32(w),
			LastWeight: int32(w),
			State:      st,
		})
	}
	return out
}

// serviceID returns the ID list gives the server named by letter c.
func serviceID(c byte) dest.ID { return dest.ID(c-'A') + 1 }

// idsOf converts ints to IDs.
func idsOf(ns ...int) []dest.ID {
	out := make([]dest.ID, len(ns))
	for i, n := range ns {
		out[i] = dest.ID(n)
	}
	return out
}
