package sched

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// step is one new connection to destination address dst at time now.
type step struct {
	dst  string
	now  uint32
	want string
}

// run picks for each step and adds an active connection to the pick.
func run(t *testing.T, s Scheduler, servers []Server, steps []step) {
	t.Helper()
	var got, want []string
	for _, st := range steps {
		i := s.Pick(Flow{Src: netip.MustParseAddr("198.51.100.1").As16(), Dst: netip.MustParseAddr(st.dst).As16(), Now: st.now})
		if i >= 0 {
			servers[i].State.Active.Add(1)
		}
		got, want = append(got, name(servers, i)), append(want, st.want)
	}
	if diff := cmp.Diff(strings.Join(want, " "), strings.Join(got, " ")); diff != "" {
		t.Fatalf("picks (-want +got):\n%s", diff)
	}
}

// X and Y are two destination addresses.
const (
	dstX = "203.0.113.1"
	dstY = "203.0.113.2"
)

func TestLocalityLeastConn(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblc", 0, servers, nil, Options{})
	run(t, s, servers, []step{
		{dstX, 0, "C"}, // miss: wlc
		{dstX, 1, "C"}, // hit: C has 1 active, not above its weight
		{dstX, 2, "B"}, // C has 2 > 1 while B is idle: wlc, entry to B
		{dstX, 3, "B"},
		{dstX, 4, "A"}, // B has 2 > 1 while A is idle
		{dstX, 5, "A"},
		{dstX, 6, "A"}, // A has 2 > 1, but no server is below half its weight
		{dstY, 7, "C"}, // miss: wlc over C=B=512, A=768
	})
}

// TestLocalityLeastConnOverloadFlag: a cache hit does not look at the -x
// overload flag (ip_vs_lblc_schedule checks lblc's own is_overloaded), a
// miss does.
func TestLocalityLeastConnOverloadFlag(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblc", 0, servers, nil, Options{})
	run(t, s, servers, []step{{dstX, 0, "C"}})
	servers[0].State.Overloaded.Store(true)
	run(t, s, servers, []step{{dstX, 1, "C"}, {dstY, 2, "B"}})
}

// TestLocalityLeastConnDestChanged: the cache outlives -d, -a and -e. An
// entry whose server was deleted is rescheduled; one whose server came
// back (same ID, as the kernel takes it back from its trash) is used again;
// one whose server was quiesced is rescheduled.
func TestLocalityLeastConnDestChanged(t *testing.T) {
	all := list("C1 B1 A1")
	s := mustNew(t, "lblc", 0, all, nil, Options{})
	run(t, s, all, []step{{dstX, 0, "C"}, {dstY, 1, "B"}})

	withoutC := all[1:]
	s = mustNew(t, "lblc", 0, withoutC, s, Options{})
	run(t, s, withoutC, []step{{dstY, 2, "B"}})

	s = mustNew(t, "lblc", 0, all, s, Options{}) // C added back
	run(t, s, all, []step{{dstX, 3, "C"}})

	quiesced := list("C0 B1 A1")
	for i := range quiesced {
		quiesced[i].State = all[i].State
	}
	s = mustNew(t, "lblc", 0, quiesced, s, Options{})
	run(t, s, quiesced, []step{{dstX, 4, "A"}}) // wlc: B has 2 active, A 0
}

// TestLocalityLeastConnExpiry: the full check runs every 30 minutes from
// the scheduler's creation (Options.Now, 0 here, as the first pick) and
// drops entries unused for the expiration.
func TestLocalityLeastConnExpiry(t *testing.T) {
	for _, tt := range []struct {
		name       string
		expiration uint32
		now        uint32
		want       string
	}{
		{name: "default kept", now: 86399, want: "C"},
		{name: "default expired at the full check", now: 86400, want: "B"},
		{name: "default long after", now: 10 * 86400, want: "B"},
		{name: "10 minutes kept until the check", expiration: 600, now: 1799, want: "C"},
		{name: "10 minutes expired", expiration: 600, now: 1800, want: "B"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			servers := list("C1 B1 A1")
			s := mustNew(t, "lblc", 0, servers, nil, Options{CacheExpiration: tt.expiration})
			run(t, s, servers, []step{{dstX, 0, "C"}})
			// C now has one active connection: wlc would choose B.
			run(t, s, servers, []step{{dstX, tt.now, tt.want}})
		})
	}
}

// TestLocalityLeastConnExpiryRefreshed: a lookup refreshes the entry.
func TestLocalityLeastConnExpiryRefreshed(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblc", 0, servers, nil, Options{CacheExpiration: 600})
	run(t, s, servers, []step{{dstX, 0, "C"}})
	for _, st := range []step{{dstX, 1500, "C"}, {dstX, 2000, "C"}, {dstX, 3600, "B"}} {
		servers[0].State.Active.Store(1) // C within its weight, but busier than B
		run(t, s, servers, []step{st})
	}
}

// TestLocalityCacheBounds: over max_size entries, the minute timer drops
// entries idle for 6 minutes, (entries-max)*4/3 at a time; the table never
// holds more than max_size*3/2 entries, and a destination that finds it
// full is still scheduled.
func TestLocalityCacheBounds(t *testing.T) {
	servers := list("B1 A1")
	s := mustNew(t, "lblc", 0, servers, nil, Options{}).(*LocalityLeastConn)
	fl := Flow{}
	dst := func(k int) [16]byte {
		return netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}).As16()
	}
	for k := range 20000 {
		fl.Dst = dst(k)
		s.Pick(fl)
	}
	if got := s.cache.entries; got != 20000 {
		t.Fatalf("entries = %d, want 20000", got)
	}
	fl.Dst, fl.Now = dst(0), 300 // runs at 60..300 find nothing idle
	s.Pick(fl)
	if got := s.cache.entries; got != 20000 {
		t.Fatalf("at 300 s: entries = %d, want 20000", got)
	}
	fl.Dst, fl.Now = dst(1), 400 // the run at 360 drops 4821 idle entries
	s.Pick(fl)
	if got, goal := s.cache.entries, 20000-(20000-cacheMaxSize)*4/3; got > goal || got < goal-200 {
		t.Fatalf("at 400 s: entries = %d, want about %d", got, goal)
	}
	for k := range cacheCapacity + 1000 {
		fl.Dst = dst(100000 + k)
		if s.Pick(fl) < 0 {
			t.Fatalf("no pick for a new destination with the table full")
		}
	}
	if got := s.cache.entries; got != cacheCapacity {
		t.Fatalf("entries = %d, want the bound %d", got, cacheCapacity)
	}
	// Every entry is still found after the removals' backward shifts.
	for k := range 2000 {
		fl.Dst = dst(100000 + k)
		if s.cache.lookup(&fl.Dst) == nil {
			t.Fatalf("entry %d lost", k)
		}
	}
}

func TestLocalityLeastConnReplicated(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblcr", 0, servers, nil, Options{})
	run(t, s, servers, []step{
		{dstX, 0, "C"}, // miss: wlc, set {C}
		{dstX, 1, "C"}, // C has 1 active, not above its weight
		{dstX, 2, "B"}, // C has 2 > 1 while B is idle: wlc, set {B C}
		{dstX, 3, "B"}, // least loaded of the set
		{dstX, 4, "A"}, // B and C at 2, B first; above weight with A idle: set {A B C}
		{dstX, 5, "A"},
		{dstX, 6, "A"}, // all at 2 or more, none below half its weight
		{dstY, 7, "C"}, // miss: C=B=512, A=768
	})
	l := s.(*LocalityLeastConnReplicated)
	e := l.cache.lookup(ptr(netip.MustParseAddr(dstX).As16()))
	if got := setNames(l, e.val); got != "A B C" {
		t.Fatalf("set of X = %s, want A B C", got)
	}
}

// TestLocalityLeastConnReplicatedShrink: a set with several members that
// has not changed for the expiration loses its most loaded member.
func TestLocalityLeastConnReplicatedShrink(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblcr", 0, servers, nil, Options{CacheExpiration: 100}).(*LocalityLeastConnReplicated)
	key := netip.MustParseAddr(dstX).As16()
	run(t, s, servers, []step{{dstX, 0, "C"}})
	servers[0].State.Active.Store(5)                            // C above its weight, B idle
	run(t, s, servers, []step{{dstX, 1, "B"}, {dstX, 50, "B"}}) // set {B C} since 1
	if got := setNames(s, s.cache.lookup(&key).val); got != "B C" {
		t.Fatalf("set = %s, want B C", got)
	}
	servers[1].State.Active.Store(0)
	run(t, s, servers, []step{{dstX, 101, "B"}}) // not after lastmod+100 yet
	servers[1].State.Active.Store(0)
	run(t, s, servers, []step{{dstX, 102, "B"}}) // C, the most loaded, leaves
	if got := setNames(s, s.cache.lookup(&key).val); got != "B" {
		t.Fatalf("set = %s, want B", got)
	}
}

// TestLocalityLeastConnReplicatedDeleted: a member deleted from the
// service is skipped.
func TestLocalityLeastConnReplicatedDeleted(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblcr", 0, servers, nil, Options{})
	run(t, s, servers, []step{{dstX, 0, "C"}})
	s = mustNew(t, "lblcr", 0, servers[1:], s, Options{})
	run(t, s, servers[1:], []step{{dstX, 1, "B"}}) // set {B C}, C skipped
	s = mustNew(t, "lblcr", 0, servers, s, Options{})
	run(t, s, servers, []step{{dstX, 2, "B"}}) // C is back but has 1 active
}

// TestDestSet: members go first in the order they join, with no bound; a
// member already there changes nothing; erase unlinks one; the members of
// a dropped entry return to the pool.
func TestDestSet(t *testing.T) {
	servers := list("L1 K1 J1 I1 H1 G1 F1 E1 D1 C1 B1 A1")
	l := mustNew(t, "lblcr", 0, servers, nil, Options{}).(*LocalityLeastConnReplicated)
	var s destSet
	for k := range 12 {
		l.insert(&s, &servers[11-k], uint32(k)) // A first, L last
	}
	if got, want := setNames(l, s), "L K J I H G F E D C B A"; got != want || s.n != 12 {
		t.Fatalf("members = %s (n %d), want %s: the set has no bound", got, s.n, want)
	}
	l.insert(&s, &servers[7], 100) // E again
	if s.lastmod != 11 {
		t.Fatalf("inserting a member again changed lastmod to %d", s.lastmod)
	}
	for k := s.head; k != 0; k = l.pool.elems[k].next {
		if l.pool.elems[k].id == serviceID('G') {
			l.erase(&s, k, 101)
			break
		}
	}
	if got, want := setNames(l, s), "L K J I H F E D C B A"; got != want || s.n != 11 || s.lastmod != 101 {
		t.Fatalf("after erase: members = %s (n %d) lastmod %d, want %s, 11 and 101", got, s.n, s.lastmod, want)
	}
	free := func() int {
		n := 0
		for k := l.pool.free; k != 0; k = l.pool.elems[k].next {
			n++
		}
		return n
	}
	if got := free(); got != setPoolSize-11 {
		t.Fatalf("free members = %d, want %d", got, setPoolSize-11)
	}
	l.pool.release(&s)
	if got := free(); got != setPoolSize || s != (destSet{}) {
		t.Fatalf("after release: free members = %d, set %+v; want %d and the empty set", got, s, setPoolSize)
	}
}

// TestDestSetPoolExhausted: with every member of the pool in use, a new
// member is not recorded and the set is unchanged (the kernel's failed
// allocation in ip_vs_dest_set_insert).
func TestDestSetPoolExhausted(t *testing.T) {
	servers := list("B1 A1")
	l := mustNew(t, "lblcr", 0, servers, nil, Options{}).(*LocalityLeastConnReplicated)
	sets := make([]destSet, setPoolSize)
	for k := range sets {
		l.insert(&sets[k], &servers[1], 1)
	}
	var s destSet
	l.insert(&s, &servers[0], 2)
	if s != (destSet{}) {
		t.Fatalf("set = %+v, want it empty", s)
	}
	l.pool.release(&sets[0])
	l.insert(&s, &servers[0], 3)
	if got := setNames(l, s); got != "B" || s.lastmod != 3 {
		t.Fatalf("members = %s lastmod %d, want B and 3", got, s.lastmod)
	}
}

func setNames(l *LocalityLeastConnReplicated, s destSet) string {
	var out []string
	for k := s.head; k != 0; k = l.pool.elems[k].next {
		out = append(out, string(rune('A'+l.pool.elems[k].id-1)))
	}
	return strings.Join(out, " ")
}

func ptr[T any](v T) *T { return &v }
