package sched

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// mhServers returns servers at 192.168.56.x:80 (x in list order) with the
// given weights, IDs from 1.
func mhServers(hosts []byte, weights ...int32) []Server {
	s := make([]Server, len(hosts))
	for i, h := range hosts {
		s[i] = Server{
			ID:         dest.ID(h),
			Addr:       netip.AddrFrom4([4]byte{192, 168, 56, h}),
			Port:       80,
			Weight:     weights[i],
			LastWeight: weights[i],
			State:      new(dest.State),
		}
	}
	return s
}

// owners counts the slots each server owns, by ID.
func owners(m *Maglev) map[dest.ID]int {
	n := map[dest.ID]int{}
	for _, d := range m.table {
		if d >= 0 {
			n[m.servers[d].ID]++
		}
	}
	return n
}

// TestMaglevVectors checks the IPVS.md §1.11 vectors.
func TestMaglevVectors(t *testing.T) {
	for _, tt := range []struct {
		host         byte
		offset, skip uint32
	}{
		{183, 389, 455},
		{184, 1372, 1573},
	} {
		a := foldAddr(netip.AddrFrom4([4]byte{192, 168, 56, tt.host}))
		if got := maglevHash(a, 80, &maglevKey1, 0) % maglevSize; got != tt.offset {
			t.Errorf(".%d:80 offset = %d, want %d", tt.host, got, tt.offset)
		}
		if got := maglevHash(a, 80, &maglevKey2, 0)%(maglevSize-1) + 1; got != tt.skip {
			t.Errorf(".%d:80 skip = %d, want %d", tt.host, got, tt.skip)
		}
	}
	for _, tt := range []struct {
		client string
		slot   uint32
		want   byte
	}{
		{"192.168.56.1", 3320, 184},
		{"10.0.0.1", 3711, 183},
	} {
		a := foldAddr(netip.MustParseAddr(tt.client))
		if got := maglevHash(a, 0, &maglevKey1, 0) % maglevSize; got != tt.slot {
			t.Errorf("slot(%s) = %d, want %d", tt.client, got, tt.slot)
		}
	}

	// .183 added, then .184: list [.184, .183], weights 1:1.
	servers := mhServers([]byte{184, 183}, 1, 1)
	m := mustNew(t, "mh", 0, servers, nil, Options{}).(*Maglev)
	if got := owners(m); got[184] != 2047 || got[183] != 2046 {
		t.Errorf("slots: .184 %d, .183 %d, want 2047 and 2046", got[184], got[183])
	}
	for client, want := range map[string]byte{"192.168.56.1": 184, "10.0.0.1": 183} {
		if i := m.Pick(flow4(client, 40000, "192.0.2.100")); i < 0 || servers[i].ID != dest.ID(want) {
			t.Errorf("%s picked %d, want .%d", client, i, want)
		}
	}
}

// TestMaglevSpread: slots are shared in proportion to the weights within
// a few percent.
func TestMaglevSpread(t *testing.T) {
	for _, weights := range [][]int32{
		{1, 1, 1, 1, 1},
		{1, 2, 3},
		{1000, 3000}, // gcd 1000
		{1, 100},     // max/gcd 100 needs 7 bits: shifted right by 1
		{5, 0, 5},    // last weight 0: no slot
	} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			hosts := make([]byte, len(weights))
			var total int32
			for i := range hosts {
				hosts[i] = byte(10 + i)
				total += weights[i]
			}
			servers := mhServers(hosts, weights...)
			m := mustNew(t, "mh", 0, servers, nil, Options{}).(*Maglev)
			got := owners(m)
			for i, s := range servers {
				want := float64(weights[i]) / float64(total)
				if weights[i] == 1 && total == 101 {
					want = 1.0 / 51 // turns 1 and 50 after the shift
				}
				share := float64(got[s.ID]) / maglevSize
				if share < want-0.02 || share > want+0.02 {
					t.Errorf("server %d (weight %d): %.3f of the slots, want %.3f±0.02", i, weights[i], share, want)
				}
			}
		})
	}
}

// TestMaglevDisruption: adding or removing a server moves few slots
// between the other servers (Maglev paper, §3.4).
func TestMaglevDisruption(t *testing.T) {
	hosts := []byte{20, 19, 18, 17, 16, 15, 14, 13, 12, 11}
	build := func(hosts []byte) *Maglev {
		w := make([]int32, len(hosts))
		for i := range w {
			w[i] = 1
		}
		return mustNew(t, "mh", 0, mhServers(hosts, w...), nil, Options{}).(*Maglev)
	}
	owner := func(m *Maglev, slot int) dest.ID { return m.servers[m.table[slot]].ID }
	base := build(hosts[1:]) // nine servers
	for _, tt := range []struct {
		name  string
		other *Maglev
		gone  dest.ID // the server added or removed
	}{
		{name: "add", other: build(hosts), gone: 20},
		{name: "remove", other: build(hosts[2:]), gone: 19},
	} {
		t.Run(tt.name, func(t *testing.T) {
			collateral := 0
			for slot := range maglevSize {
				a, b := owner(base, slot), owner(tt.other, slot)
				if a != b && a != tt.gone && b != tt.gone {
					collateral++
				}
			}
			f := float64(collateral) / maglevSize
			t.Logf("%s: %.2f%% of the slots moved between servers that stayed", tt.name, 100*f)
			if f > 0.05 {
				t.Fatalf("%.1f%% of the slots moved between servers that stayed, want at most 5%%", 100*f)
			}
		})
	}
}

// TestMaglevQuiesce: weight 0 with the last weight kept leaves the table as
// it was; the server's clients fail, or with mh-fallback move elsewhere,
// and no other client moves.
func TestMaglevQuiesce(t *testing.T) {
	before := mhServers([]byte{13, 12, 11}, 2, 2, 2)
	mb := mustNew(t, "mh", 0, before, nil, Options{}).(*Maglev)
	after := mhServers([]byte{13, 12, 11}, 0, 2, 2)
	after[0].LastWeight = 2
	for _, flags := range []service.SchedFlags{0, service.SchedFlag1} {
		ma := mustNew(t, "mh", flags, after, nil, Options{}).(*Maglev)
		if ma.table != mb.table {
			t.Fatalf("table changed when a server was quiesced")
		}
		for k := range 3000 {
			fl := flow4(fmt.Sprintf("198.51.100.%d", k%250), uint16(k), "192.0.2.1")
			fl.Src[13] = byte(k / 250)
			was, now := before[mb.Pick(fl)].ID, ma.Pick(fl)
			switch {
			case was != 13 && (now < 0 || after[now].ID != was):
				t.Fatalf("flags %#x: client %d moved off server %d", flags, k, was)
			case was == 13 && flags == 0 && now != -1:
				t.Fatalf("client %d of the quiesced server got %d, want -1", k, now)
			case was == 13 && flags != 0 && (now < 0 || after[now].ID == 13):
				t.Fatalf("client %d of the quiesced server: fallback got %d", k, now)
			}
		}
	}
	// Added with weight 0, it never had a weight: no slot at all.
	added0 := mhServers([]byte{13, 12, 11}, 0, 2, 2)
	if n := owners(mustNew(t, "mh", 0, added0, nil, Options{}).(*Maglev))[13]; n != 0 {
		t.Fatalf("server added with weight 0 owns %d slots", n)
	}
}

// TestMaglevPort: with mh-port the source port takes part in the hash.
func TestMaglevPort(t *testing.T) {
	servers := mhServers([]byte{13, 12, 11}, 1, 1, 1)
	m := mustNew(t, "mh", service.SchedFlag2, servers, nil, Options{})
	plain := mustNew(t, "mh", 0, servers, nil, Options{})
	seen := map[int]bool{}
	for port := range uint16(64) {
		fl := flow4("198.51.100.7", 1024+port, "192.0.2.1")
		seen[m.Pick(fl)] = true
		if a, b := plain.Pick(fl), plain.Pick(flow4("198.51.100.7", 0, "192.0.2.1")); a != b {
			t.Fatalf("without mh-port the port changed the pick: %d vs %d", a, b)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("with mh-port 64 ports of one client reached %d servers, want 3", len(seen))
	}
}

func TestMaglevTooMany(t *testing.T) {
	servers := make([]Server, maglevSize+1)
	_, err := New("mh", 0, servers, nil, Options{})
	if err == nil || errors.Is(err, ErrUnknown) {
		t.Fatalf("New(mh) with %d servers: error %v, want a size error", len(servers), err)
	}
}
