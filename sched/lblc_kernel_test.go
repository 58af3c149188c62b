package sched

import (
	"net/netip"
	"testing"
)

// TestLocalityTimerFromInit: the collection timer of lblc and lblcr starts
// when the scheduler is bound to the service (ip_vs_lblc_init_svc,
// ip_vs_lblcr_init_svc: mod_timer(jiffies + CHECK_EXPIRE_INTERVAL)), not at
// the first pick: the full checks fall every 30 minutes from then.
func TestLocalityTimerFromInit(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		t.Run(name, func(t *testing.T) {
			servers := list("C1 B1 A1")
			// Bound at 0; the first connection comes at 1000.
			s := mustNew(t, name, 0, servers, nil, Options{CacheExpiration: 600})
			run(t, s, servers, []step{{dstX, 1000, "C"}})
			// The full check at 1800 drops the entry, unused since
			// 1000 (1000+600 <= 1800): wlc picks B over the busier C.
			run(t, s, servers, []step{{dstX, 1850, "B"}})
		})
	}
}

// TestLocalityLeastConnReplicatedLargeSet: an lblcr server set has no size
// limit (ip_vs_dest_set_insert): all ten servers that joined it are still
// candidates for its least loaded member.
func TestLocalityLeastConnReplicatedLargeSet(t *testing.T) {
	servers := list("J1 I1 H1 G1 F1 E1 D1 C1 B1 A1")
	s := mustNew(t, "lblcr", 0, servers, nil, Options{})
	// Each pick finds the set's members busy (2 active, weight 1) while
	// the next server is idle: it joins the set. J first, A last.
	for k := range servers {
		for j := range servers {
			servers[j].State.Active.Store(0)
			if j < k {
				servers[j].State.Active.Store(2)
			}
		}
		want := name(servers, k)
		if i := s.Pick(Flow{Dst: netip.MustParseAddr(dstX).As16(), Now: uint32(k)}); i != k {
			t.Fatalf("pick %d: %s, want %s", k, name(servers, i), want)
		}
	}
	// J, the first member, is now the least loaded and within its
	// weight: the set returns it without asking wlc.
	for j := range servers {
		servers[j].State.Active.Store(1)
	}
	servers[0].State.Active.Store(0)
	if i := s.Pick(Flow{Dst: netip.MustParseAddr(dstX).As16(), Now: 20}); i != 0 {
		t.Fatalf("pick: %s, want J, the least loaded member of the set", name(servers, i))
	}
}

// TestLocalityLeastConnReplicatedShrinkWeighsDeleted: when a set sheds its
// most loaded member (ip_vs_dest_set_max), a member deleted from the
// service still counts with its weight and connections, as the kernel
// keeps the dest (in its trash) while the set refers to it.
func TestLocalityLeastConnReplicatedShrinkWeighsDeleted(t *testing.T) {
	servers := list("C1 B1 A1")
	s := mustNew(t, "lblcr", 0, servers, nil, Options{CacheExpiration: 100})
	run(t, s, servers, []step{{dstX, 0, "C"}})
	servers[0].State.Active.Store(5)           // C above its weight, B idle
	run(t, s, servers, []step{{dstX, 1, "B"}}) // set {B C} since 1
	// C is deleted; its five connections go on.
	s = mustNew(t, "lblcr", 0, servers[1:], s, Options{CacheExpiration: 100})
	servers[1].State.Active.Store(1) // B at its weight, A idle
	// At 102 the set sheds C, its most loaded member: B stays, and is
	// returned (1 active is not above its weight).
	run(t, s, servers[1:], []step{{dstX, 102, "B"}})
	servers[1].State.Active.Store(1)
	run(t, s, servers[1:], []step{{dstX, 103, "B"}})
}

// TestLocalityTimerFromOptionsNow: the timer starts at Options.Now, and a
// scheduler built from prev (an -a, -d or -e) keeps prev's timer.
func TestLocalityTimerFromOptionsNow(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		t.Run(name, func(t *testing.T) {
			servers := list("C1 B1 A1")
			load := func(c int32) {
				for i := range servers {
					servers[i].State.Active.Store(0)
				}
				servers[0].State.Active.Store(c)
			}
			// Bound at 500: the full checks fall at 2300, 4100, ...
			s := mustNew(t, name, 0, servers, nil, Options{CacheExpiration: 600, Now: 500})
			load(0)
			run(t, s, servers, []step{{dstX, 1000, "C"}})
			load(0)
			run(t, s, servers, []step{{dstY, 1000, "C"}})
			s = mustNew(t, name, 0, servers, s, Options{CacheExpiration: 600, Now: 2000})
			// With C busier than B, a kept entry still says C, a
			// dropped one lets wlc choose B.
			load(1)
			run(t, s, servers, []step{{dstX, 1900, "C"}}) // no check since 500
			load(1)
			run(t, s, servers, []step{{dstY, 2350, "B"}}) // the check at 2300 dropped Y
		})
	}
}
