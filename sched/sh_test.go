package sched

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// TestSourceHashKey checks the IPVS.md §1.7 test vectors (v6.x hash_32).
func TestSourceHashKey(t *testing.T) {
	for _, tt := range []struct {
		client          string
		key, keyPort40k uint32
	}{
		{"192.168.56.1", 157, 65},
		{"192.168.56.2", 255, 163},
		{"10.0.0.1", 39, 203},
	} {
		a := foldAddr(netip.MustParseAddr(tt.client))
		if got := shKey(a, 0, 0); got != tt.key {
			t.Errorf("key(%s) = %d, want %d", tt.client, got, tt.key)
		}
		if got := shKey(a, 40000, 0); got != tt.keyPort40k {
			t.Errorf("key(%s, sport 40000) = %d, want %d", tt.client, got, tt.keyPort40k)
		}
	}
}

// TestFold checks the IPv6 fold: the XOR of the four 32-bit words.
func TestFold(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::1:2").As16()
	if got, want := fold(&a, true), uint32(0x20010db8^0x00010002); got != want {
		t.Fatalf("fold(2001:db8::1:2) = %#x, want %#x", got, want)
	}
	b := netip.MustParseAddr("192.0.2.1").As16()
	if got, want := fold(&b, false), uint32(0xc0000201); got != want {
		t.Fatalf("fold(192.0.2.1) = %#x, want %#x", got, want)
	}
}

// TestSourceHashBuckets checks ip_vs_sh_reassign's fill.
func TestSourceHashBuckets(t *testing.T) {
	for _, tt := range []struct {
		list string
		want string // owners of the first buckets
	}{
		{list: "B1 A1", want: "B A B A B A"},
		{list: "B2 A1", want: "B B A B B A"},
		{list: "C0 B1 A2", want: "C B A A C B A A"}, // weight 0 still takes one bucket
		{list: "B300 A1", want: "B B B B B B"},      // and the last bucket too, below
	} {
		t.Run(tt.list, func(t *testing.T) {
			servers := list(tt.list)
			h := newSourceHash(servers, 0)
			var got []string
			for _, d := range h.buckets[:len(strings.Fields(tt.want))] {
				got = append(got, name(servers, int(d)))
			}
			if diff := cmp.Diff(tt.want, strings.Join(got, " ")); diff != "" {
				t.Fatalf("buckets (-want +got):\n%s", diff)
			}
			if tt.list == "B300 A1" && name(servers, int(h.buckets[shSize-1])) != "B" {
				t.Fatalf("bucket 255 of %s is not B", tt.list)
			}
		})
	}
	if h := newSourceHash(nil, 0); h.Pick(Flow{}) != -1 || h.buckets[0] != -1 {
		t.Fatalf("empty list: buckets not empty")
	}
}

func TestSourceHash(t *testing.T) {
	clients := []string{"192.168.56.1", "192.168.56.2", "10.0.0.1"}
	for _, tt := range []struct {
		name   string
		list   string
		counts string
		flags  service.SchedFlags
		want   string // one pick per client, sport 40000
	}{
		// Keys 157, 255, 39 are odd: with [B,A] 1:1, odd buckets are A's.
		{name: "1:1", list: "B1 A1", want: "A A A"},
		// With 2:1 bucket k is A's when k%3 == 2: keys 157, 255, 39 are not,
		// port keys 65, 163, 203 give A B A.
		{name: "2:1", list: "B2 A1", want: "B B B"},
		{name: "2:1 sh-port", list: "B2 A1", flags: service.SchedFlag2, want: "A B A"},
		// The owner quiesced or overloaded: no server, or with sh-fallback
		// the owner of bucket (key + key) & 255 (even, so B) for offset 0.
		{name: "quiesced", list: "B1 A0", want: "- - -"},
		{name: "overloaded", list: "B1 A1", counts: "A:o", want: "- - -"},
		{name: "fallback", list: "B1 A1", counts: "A:o", flags: service.SchedFlag1, want: "B B B"},
		{name: "fallback none left", list: "B1 A1", counts: "A:o B:o", flags: service.SchedFlag1, want: "- - -"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			servers := list(tt.list)
			counts(servers, tt.counts)
			s := mustNew(t, "sh", tt.flags, servers, nil, Options{})
			var got []string
			for _, c := range clients {
				got = append(got, name(servers, s.Pick(flow4(c, 40000, "192.0.2.100"))))
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Fatalf("picks = %s, want %s", g, tt.want)
			}
		})
	}
}

// TestSourceHashProperties: the same client always gets the same server,
// servers share clients in proportion to their weights within a few
// percent, and adding a server moves only part of the clients.
func TestSourceHashProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	clients := make([]Flow, 50000)
	for k := range clients {
		clients[k] = randomFlow(r, 0)
	}
	before := list("D1 C1 B1 A1")
	s := mustNew(t, "sh", 0, before, nil, Options{})
	owner := make([]dest.ID, len(clients))
	share := map[dest.ID]int{}
	for k, fl := range clients {
		i := s.Pick(fl)
		if j := s.Pick(fl); j != i {
			t.Fatalf("client %d: picks %d then %d", k, i, j)
		}
		owner[k] = before[i].ID
		share[owner[k]]++
	}
	for id, n := range share {
		if f := float64(n) / float64(len(clients)); f < 0.23 || f > 0.27 {
			t.Errorf("server %d has %.3f of the clients, want 0.25±0.02", id, f)
		}
	}
	// Quiescing D (weight 1 to 0) keeps the table, since a weight-0 server
	// still takes one bucket: with sh-fallback only D's clients move.
	after := list("D0 C1 B1 A1")
	for k := range after {
		after[k].State = before[k].State
	}
	s = mustNew(t, "sh", service.SchedFlag1, after, s, Options{})
	moved := 0
	for k, fl := range clients {
		got := after[s.Pick(fl)].ID
		switch {
		case owner[k] == serviceID('D') && got == owner[k]:
			t.Fatalf("client %d still on the quiesced server", k)
		case owner[k] != serviceID('D') && got != owner[k]:
			t.Fatalf("client %d moved from %d to %d", k, owner[k], got)
		case got != owner[k]:
			moved++
		}
	}
	if moved != share[serviceID('D')] {
		t.Fatalf("%d clients moved, want D's %d", moved, share[serviceID('D')])
	}
}

// TestWithFlags: -E that changes only -b keeps the scheduler; sh and mh
// read the flags at each pick, the others ignore them.
func TestWithFlags(t *testing.T) {
	servers := list("C1 B1 A1")
	w := mustNew(t, "wrr", 0, servers, nil, Options{})
	if WithFlags(w, service.SchedFlag1) != w {
		t.Errorf("WithFlags(wrr) made a new scheduler")
	}
	for _, name := range []string{"sh", "mh"} {
		s := mustNew(t, name, 0, servers, nil, Options{})
		withPort := mustNew(t, name, service.SchedFlag2, servers, nil, Options{})
		n := WithFlags(s, service.SchedFlag2)
		differ := false
		for port := uint16(1); port < 200; port++ {
			fl := Flow{Src: [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: 7}, SrcPort: port}
			if n.Pick(fl) != withPort.Pick(fl) {
				t.Fatalf("%s: WithFlags(sh-port) picks %d for port %d, a new %s with the flag %d", name, n.Pick(fl), port, name, withPort.Pick(fl))
			}
			differ = differ || n.Pick(fl) != s.Pick(fl)
		}
		if !differ {
			t.Errorf("%s: the port flag changed no pick", name)
		}
		if WithFlags(s, 0) != s {
			t.Errorf("%s: WithFlags with the same flags made a new scheduler", name)
		}
	}
}
