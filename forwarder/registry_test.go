package forwarder

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/internal/udrtest"
	"github.com/udr-lb/udr/service"
)

// swap compiles cfg over the running table and swaps it in as the director
// does: the table first, then its IDs published, then a reap.
func (h *harness) swap(tb testing.TB, cfg *service.Config, now time.Time, release func(dest.ID, *dest.State)) {
	tb.Helper()
	t, err := Compile(cfg, h.reg, h.neigh, h.cur.Load(), h.opts)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	h.cur.Store(t)
	h.reg.Publish(t.DestIDs())
	h.reg.Reap(h.p.Seen(), now, release)
}

// TestRegistryChurnWithTraffic adds and deletes 200,000 distinct real
// servers through Compile, 64 IDs for them all, as the director does, with
// the pipeline giving each a TCP connection while it is in the table: most
// are reset (CLOSE, 10 s), one in 500 stays ESTABLISHED (900 s). An ID is
// released only once no table names it and no entry counts on it, and the
// registry never fills.
func TestRegistryChurnWithTraffic(t *testing.T) {
	cycles := 200_000
	if raceDetector {
		cycles = 20_000 // still 300 times the IDs
	}
	h := newHarness(t, rules2, 4096)
	churn := service.Key{Proto: service.TCP, Addr: udrtest.VIP, Port: 8080}
	base := h.cur.Load().Config().Clone()
	base.Services = append(base.Services, &service.Service{Key: churn, Scheduler: "rr"})
	vip := netip.AddrPortFrom(udrtest.VIP, 8080)
	mac := [6]byte{0x02, 0, 0, 0, 0, 0x99}
	released := 0
	release := func(id dest.ID, st *dest.State) {
		released++
		if n := st.Active.Load() + st.Inactive.Load() + st.Persist.Load(); n != 0 {
			t.Fatalf("ID %#x released with %d entries counted on it", id, n)
		}
		for _, live := range h.cur.Load().DestIDs() {
			if live == id {
				t.Fatalf("ID %#x released while the table names it", id)
			}
		}
	}
	now := epoch
	h.swap(t, base, now, release)
	for i := range cycles {
		rip := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%250)})
		h.neigh.Set(rip, mac)
		with := base.Clone()
		with.Services[len(with.Services)-1].Dests = []service.Dest{{Addr: rip, Port: uint16(1024 + i/250), Weight: 1, LastWeight: 1}}
		h.swap(t, with, now, release)

		cport := client(uint16(1024 + i%60000))
		flags := []int{udrtest.SYN, udrtest.ACK, udrtest.RST}
		if i%500 == 0 {
			flags = flags[:2] // stays ESTABLISHED
		}
		for _, fl := range flags {
			if v, out := h.p.Process(udrtest.TCP(h.toVIP(), cport, vip, fl, nil), now); v != VerdictForward || !bytes.Equal(out[:6], mac[:]) {
				t.Fatalf("cycle %d: flags %#x to the new server: %v", i, fl, v)
			}
		}
		h.p.Sweep(now, 256) // the worker, between batches

		h.swap(t, base, now, release)
		if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), cport, vip, udrtest.ACK, nil), now); v != VerdictDestRemoved {
			t.Fatalf("cycle %d: a packet after the delete: %v, want dest-removed", i, v)
		}
		h.p.Sweep(now, 256)
		now = now.Add(500 * time.Millisecond)
	}
	if released < cycles-100 {
		t.Errorf("%d IDs released over %d cycles", released, cycles)
	}
	// The servers that stayed kept theirs throughout.
	if v, out := h.p.Process(udrtest.UDP(h.toVIP(), client(7), vip53, []byte("q")), now); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
		t.Errorf("after the churn, a datagram to :53: %v", v)
	}
}

// TestFragmentAfterIDFreed: a later fragment whose real server's ID was
// freed and handed to another server is dropped, not sent to the other
// server.
func TestFragmentAfterIDFreed(t *testing.T) {
	const v6Rules = `-A -u [2001:db8::100]:5000 -s rr
-a -u [2001:db8::100]:5000 -r [2001:db8::11]:5000 -g -w 1
`
	cfg, _, err := admin.ParseRules(strings.NewReader(v6Rules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	// A registry of 2: every ID freed is soon needed again.
	h := &harness{reg: dest.NewRegistry(2), neigh: NewNeighbors(2)}
	h.opts = Options{IfMAC: [6]byte(udrtest.DirectorMAC)}
	h.opts.VIPMAC = arpresponder.VirtualMAC(h.opts.IfMAC)
	h.vmac = h.opts.VIPMAC
	conns := conntrack.New(64, h.reg, conntrack.Options{Seed: 1, Timeouts: service.Timeouts{UDP: 1}})
	h.p = NewPipeline(PipelineConfig{Table: &h.cur, Conns: conns, Neighbors: h.neigh, Registry: h.reg, Epoch: epoch})
	h.neigh.Set(mustAddr("2001:db8::11"), [6]byte(udrtest.RS1MAC))
	h.neigh.Set(mustAddr("2001:db8::12"), [6]byte(udrtest.RS2MAC))
	nop := func(dest.ID, *dest.State) {}
	h.swap(t, cfg, epoch, nop)

	frags := fragments6(h.toVIP(), 4000, 0x1000, bytes.Repeat([]byte{1}, 150))
	if v, out := h.p.Process(bytes.Clone(frags[0]), epoch); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS1MAC) {
		t.Fatalf("first fragment: %v", v)
	}
	id11 := h.cur.Load().DestIDs()[0]
	// ::11 is replaced by ::12; its connection expires; its ID is freed
	// early, the registry being short, and its slot goes to ::13 while the
	// datagram's later fragments are still expected (30 s).
	only12 := cfg.Clone()
	only12.Services[0].Dests[0].Addr = mustAddr("2001:db8::12")
	now := epoch
	for range 3 {
		now = now.Add(2 * time.Second)
		h.swap(t, only12, now, nop)
		h.p.Sweep(now, 64)
	}
	mac13 := [6]byte{0x02, 0, 0, 0, 0, 0x13}
	h.neigh.Set(mustAddr("2001:db8::13"), mac13)
	with13 := only12.Clone()
	with13.Services[0].Dests = append(with13.Services[0].Dests, service.Dest{Addr: mustAddr("2001:db8::13"), Port: 5000, Weight: 1, LastWeight: 1})
	h.swap(t, with13, now, nop)
	id13, _ := h.reg.Lookup(with13.Services[0].DestKey(with13.Services[0].Dests[1]))
	if id13.Index() != id11.Index() || id13 == id11 {
		t.Fatalf("::13 has ID %#x, ::11 had %#x: want ::11's slot under a new ID", id13, id11)
	}
	if v, out := h.p.Process(bytes.Clone(frags[1]), now); v != VerdictFragment {
		t.Errorf("a later fragment of a freed server's datagram: %v to %x, want fragment (dropped)", v, out[:6])
	}
}

// TestReaddAfterTrashPeriod: a real server deleted and added back within
// the kernel's trash period comes back with its statistics
// (ip_vs_trash_get_dest); one added back after the kernel would have freed
// it starts from zero, as a new dest does (ip_vs_new_dest).
func TestReaddAfterTrashPeriod(t *testing.T) {
	for _, tc := range []struct {
		after   time.Duration // from the delete to the re-add
		inPkts  uint64
		sameID  bool
		comment string
	}{
		{time.Minute, 2, true, "within the trash period"},
		{dest.TrashPeriod + time.Minute, 0, false, "after the trash period"},
	} {
		h := newHarness(t, rules2, 64)
		with := h.cur.Load().Config().Clone()
		without := with.Clone()
		without.Services[0].Dests = without.Services[0].Dests[1:] // rs2 goes
		now := epoch
		h.swap(t, with, now, func(dest.ID, *dest.State) {})
		for _, fl := range []int{udrtest.SYN, udrtest.RST} { // to rs2; SYN_RECV (60 s)
			if v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, fl, nil), now); v != VerdictForward || !bytes.Equal(out[:6], udrtest.RS2MAC) {
				t.Fatalf("flags %#x: %v, want forwarded to rs2", fl, v)
			}
		}
		rs2 := h.cur.Load().services[0].servers[0].ID
		h.p.FlushCounters()
		if got := h.reg.State(rs2).InPkts.Load(); got != 2 {
			t.Fatalf("rs2 InPkts %d, want 2", got)
		}

		h.swap(t, without, now, func(dest.ID, *dest.State) {})
		now = now.Add(2 * time.Minute)
		h.p.Sweep(now, 1<<10) // the connection is over
		h.swap(t, without, now, func(dest.ID, *dest.State) {})
		now = now.Add(tc.after)
		h.p.Sweep(now, 1<<10)
		h.swap(t, without, now, func(dest.ID, *dest.State) {})
		h.swap(t, with, now, func(dest.ID, *dest.State) {})

		id := h.cur.Load().services[0].servers[0].ID
		st := h.reg.State(id)
		if (id == rs2) != tc.sameID || st.InPkts.Load() != tc.inPkts || st.Conns.Load() != tc.inPkts/2 {
			t.Errorf("re-added %s: ID %#x (was %#x), InPkts %d, Conns %d; want the same ID %v, InPkts %d",
				tc.comment, id, rs2, st.InPkts.Load(), st.Conns.Load(), tc.sameID, tc.inPkts)
		}
	}
}
