package sched

import "testing"

func TestRoundRobin(t *testing.T) {
	for _, tt := range []struct {
		name    string
		weights []int32 // in the order added
		setup   func([]Server)
		want    string
	}{
		// IPVS.md §1.1: A then B added, list [B, A].
		{name: "two equal", weights: []int32{1, 1}, want: "B A B A B A"},
		{name: "weights ignored", weights: []int32{5, 1, 3}, want: "C B A C B A C"},
		{name: "quiesced skipped", weights: []int32{1, 0, 1}, want: "C A C A C"},
		{
			name:    "overloaded skipped",
			weights: []int32{1, 1, 1},
			setup:   func(s []Server) { s[0].State.Overloaded.Store(true) }, // C
			want:    "B A B A",
		},
		{name: "one usable", weights: []int32{0, 2, 0}, want: "B B B"},
		{name: "none", weights: []int32{0, 0}, want: "- - -"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			servers := added(tt.weights...)
			if tt.setup != nil {
				tt.setup(servers)
			}
			s := mustNew(t, "rr", 0, servers, nil, Options{})
			if got := sequence(s, servers, Flow{}, len(tt.want)/2+1, false, false); got != tt.want {
				t.Fatalf("picks = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRoundRobinOverloadChanges: the position stays on the last pick, so a
// server that becomes overloaded is skipped and, once cleared, comes back
// at its turn.
func TestRoundRobinOverloadChanges(t *testing.T) {
	servers := added(1, 1, 1) // [C B A]
	s := mustNew(t, "rr", 0, servers, nil, Options{})
	got := sequence(s, servers, Flow{}, 2, false, false) // C B
	servers[2].State.Overloaded.Store(true)              // A
	got += " " + sequence(s, servers, Flow{}, 3, false, false)
	servers[2].State.Overloaded.Store(false)
	got += " " + sequence(s, servers, Flow{}, 3, false, false)
	if want := "C B C B C B A C"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
}

// TestRoundRobinDestChanged follows the kernel across -a, -e and -d: the
// position stays on its server; when that server is deleted it moves to
// the entry before it (ip_vs_rr_del_dest).
func TestRoundRobinDestChanged(t *testing.T) {
	all := added(1, 1, 1, 1) // [D C B A]
	without := func(id int) []Server {
		var out []Server
		for _, s := range all {
			if int(s.ID) != id {
				out = append(out, s)
			}
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		first int // picks before the change
		after []Server
		want  string // picks after the change
	}{
		// Position on C; C deleted: on D, so B is next (not D, as from the head).
		{name: "delete current", first: 2, after: without(3), want: "B A D B"},
		// Position on C; B deleted: still on C, so A is next.
		{name: "delete other", first: 2, after: without(2), want: "A D C A"},
		// Position on D (the head entry); D deleted: back to the list head.
		{name: "delete first", first: 1, after: without(4), want: "C B A C"},
		// Position on A (the last entry); A deleted: on B, so D is next.
		{name: "delete last", first: 4, after: without(1), want: "D C B D"},
		// Position on B; E added at the head: still on B, so A is next.
		{name: "add", first: 3, after: append(added(1, 1, 1, 1, 1)[:1], all...), want: "A E D C B"},
		// Position on C; B's weight edited: still on C.
		{name: "edit", first: 2, after: []Server{all[0], all[1], {ID: 2, Weight: 3, State: all[2].State}, all[3]}, want: "B A D C B"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prev := mustNew(t, "rr", 0, all, nil, Options{})
			sequence(prev, all, Flow{}, tt.first, false, false)
			s := mustNew(t, "rr", 0, tt.after, prev, Options{})
			if got := sequence(s, tt.after, Flow{}, len(tt.want)/2+1, false, false); got != tt.want {
				t.Fatalf("picks after the change = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRoundRobinOtherPrev: a prev of another scheduler means init_service.
func TestRoundRobinOtherPrev(t *testing.T) {
	servers := added(1, 1, 1)
	prev := mustNew(t, "wrr", 0, servers, nil, Options{})
	s := mustNew(t, "rr", 0, servers, prev, Options{})
	if got, want := sequence(s, servers, Flow{}, 4, false, false), "C B A C"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
}
