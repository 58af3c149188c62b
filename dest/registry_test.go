package dest

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func key(i int) Key {
	return Key{
		Proto: 6,
		VIP:   netip.MustParseAddrPort("192.0.2.100:80"),
		Real:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%250)}), uint16(1024+i/250)),
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// reapAll reaps as a director whose worker is idle but alive: the worker
// has passed every epoch so far.
func reapAll(r *Registry, now time.Time) []ID {
	var gone []ID
	r.Reap(r.Epoch(), now, func(id ID, _ *State) { gone = append(gone, id) })
	return gone
}

func mustAssign(t *testing.T, r *Registry, k Key) ID {
	t.Helper()
	id, err := r.Assign(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLookupDoesNotAssign(t *testing.T) {
	r := NewRegistry(4)
	if id, ok := r.Lookup(key(1)); ok {
		t.Fatalf("Lookup of an unknown server = %d, true", id)
	}
	if r.Len() != 0 {
		t.Fatalf("Len after a Lookup = %d, want 0", r.Len())
	}
	id := mustAssign(t, r, key(1))
	if got, ok := r.Lookup(key(1)); !ok || got != id {
		t.Fatalf("Lookup = %d, %v; want %d, true", got, ok, id)
	}
	if again := mustAssign(t, r, key(1)); again != id {
		t.Fatalf("second Assign = %d, want %d", again, id)
	}
	if r.Key(id) != key(1) || !r.Holds(id) {
		t.Fatalf("Key(%d) = %v, Holds %v", id, r.Key(id), r.Holds(id))
	}
}

// TestReapLifecycle follows one server out of the table: held while a
// worker may hold the old table and while connections count on it, kept
// in the trash (revivable with its state) for TrashPeriod, then freed, and
// its slot reused under a new ID only after the workers passed the freeing.
func TestReapLifecycle(t *testing.T) {
	r := NewRegistry(64)
	a := mustAssign(t, r, key(1))
	b := mustAssign(t, r, key(2))
	r.Publish([]ID{a, b})
	st := r.State(a)
	st.Active.Add(1)
	st.InPkts.Add(7)

	r.Publish([]ID{b}) // a is deleted
	before := r.Epoch() - 1
	if gone := reapAllAt(r, before, t0); len(gone) != 0 || !r.Holds(a) {
		t.Fatalf("a worker still on the old table: released %v", gone)
	}
	if gone := reapAll(r, t0.Add(time.Hour)); len(gone) != 0 || !r.Holds(a) {
		t.Fatalf("a connection still counted: released %v", gone)
	}
	st.Active.Add(-1)
	if gone := reapAll(r, t0); len(gone) != 0 {
		t.Fatalf("released %v into the trash period", gone)
	}
	// Re-added from the trash: the same ID and statistics.
	if got := mustAssign(t, r, key(1)); got != a || st.InPkts.Load() != 7 {
		t.Fatalf("re-add from the trash = %d with InPkts %d, want %d with 7", got, st.InPkts.Load(), a)
	}
	r.Publish([]ID{a, b})
	r.Publish([]ID{b})
	reapAll(r, t0)
	if gone := reapAll(r, t0.Add(TrashPeriod-time.Second)); len(gone) != 0 {
		t.Fatalf("released %v before TrashPeriod", gone)
	}
	gone := reapAll(r, t0.Add(TrashPeriod))
	if len(gone) != 1 || gone[0] != a {
		t.Fatalf("released %v after TrashPeriod, want [%d]", gone, a)
	}
	if r.Holds(a) || r.Key(a) != (Key{}) {
		t.Fatalf("freed ID %d: Holds %v, Key %v", a, r.Holds(a), r.Key(a))
	}
	if _, ok := r.Lookup(key(1)); ok {
		t.Fatal("Lookup finds a freed server")
	}
	// The slot is not reused before the workers pass the freeing: new
	// servers get other slots.
	c := mustAssign(t, r, key(3))
	if c.Index() == a.Index() {
		t.Fatalf("slot %d reused before the workers passed its freeing", a.Index())
	}
	r.Publish([]ID{b, c})
	reapAllAt(r, r.Epoch(), t0.Add(TrashPeriod))
	if st.InPkts.Load() != 0 {
		t.Fatalf("freed slot kept InPkts %d", st.InPkts.Load())
	}
}

func reapAllAt(r *Registry, seen uint64, now time.Time) []ID {
	var gone []ID
	r.Reap(seen, now, func(id ID, _ *State) { gone = append(gone, id) })
	return gone
}

// TestReapPersistHolds: a persistence template is a reference too.
func TestReapPersistHolds(t *testing.T) {
	r := NewRegistry(4)
	a := mustAssign(t, r, key(1))
	r.Publish([]ID{a})
	r.State(a).Persist.Add(1)
	r.Publish(nil)
	if gone := reapAll(r, t0.Add(24*time.Hour)); len(gone) != 0 {
		t.Fatalf("released %v while a template counts on it", gone)
	}
	r.State(a).Persist.Add(-1)
	reapAll(r, t0)
	if gone := reapAll(r, t0.Add(24*time.Hour)); len(gone) != 1 {
		t.Fatalf("released %v, want a", gone)
	}
}

// TestUnpublishedAssignRetires: IDs a failed compile assigned are freed
// too.
func TestUnpublishedAssignRetires(t *testing.T) {
	r := NewRegistry(4)
	mustAssign(t, r, key(1))
	r.Publish(nil)
	reapAll(r, t0)
	if gone := reapAll(r, t0.Add(TrashPeriod)); len(gone) != 1 {
		t.Fatalf("released %v, want the unpublished ID", gone)
	}
}

// TestRegistryChurn adds and deletes 200,000 distinct servers through a
// registry of 64, as the control plane does with a live worker: it never
// fills, and every reused slot gets a new ID.
func TestRegistryChurn(t *testing.T) {
	const cycles = 200_000
	r := NewRegistry(64)
	stay := mustAssign(t, r, key(0))
	r.Publish([]ID{stay})
	seenIDs := make(map[ID]bool)
	now := t0
	var worker uint64 // the epoch the worker passed: one publish behind
	for i := 1; i <= cycles; i++ {
		id, err := r.Assign(key(i))
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if seenIDs[id] {
			t.Fatalf("cycle %d: ID %d handed out twice", i, id)
		}
		seenIDs[id] = true
		r.Publish([]ID{stay, id})
		r.Reap(worker, now, func(ID, *State) {})
		worker = r.Epoch()
		r.Publish([]ID{stay})
		r.Reap(worker, now, func(ID, *State) {})
		worker = r.Epoch()
		now = now.Add(time.Millisecond)
	}
	if n := r.Len(); n > 64 {
		t.Fatalf("Len = %d", n)
	}
	if r.Key(stay) != key(0) {
		t.Fatal("the server that stayed lost its ID")
	}
}

func TestRegistryFull(t *testing.T) {
	r := NewRegistry(2)
	mustAssign(t, r, key(1))
	mustAssign(t, r, key(2))
	if _, err := r.Assign(key(3)); err == nil || !strings.Contains(err.Error(), "registry full (2 servers)") {
		t.Fatalf("Assign on a full registry: %v", err)
	}
}

// TestRegistryShortFreesTrash: an Assign that finds every ID held by the
// trash fails with a hint, and the next reaps free enough for it.
func TestRegistryShortFreesTrash(t *testing.T) {
	r := NewRegistry(16)
	var ids []ID
	for i := range 16 {
		ids = append(ids, mustAssign(t, r, key(i)))
	}
	r.Publish(ids)
	r.Publish(nil) // all deleted
	reapAll(r, t0) // into the trash; two freed early (16/8)
	reapAll(r, t0) // the workers passed: those two are free
	for i := 100; i < 102; i++ {
		mustAssign(t, r, key(i))
	}
	for i := 102; i < 106; i++ {
		if _, err := r.Assign(key(i)); err == nil || !strings.Contains(err.Error(), "being freed, try again") {
			t.Fatalf("Assign %d with the rest in the trash: %v", i, err)
		}
	}
	reapAll(r, t0)
	reapAll(r, t0)
	for i := 102; i < 106; i++ {
		mustAssign(t, r, key(i))
	}
	if _, ok := r.Lookup(key(15)); !ok {
		t.Fatal("the trash was emptied beyond what was needed")
	}
}
