package forwarder

import (
	"net/netip"
	"testing"

	"github.com/udr-lb/udr/internal/udrtest"
)

// BenchmarkStages times each stage of an established-flow frame on its own,
// to show where BenchmarkPipeline's time goes (bench/README.md).
func BenchmarkStages(b *testing.B) {
	h := newHarness(b, rules2, 1<<16)
	est := udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.ACK, nil)
	h.p.Process(udrtest.TCP(h.toVIP(), client(1), vip80, udrtest.SYN, nil), epoch)
	buf := make([]byte, 2048)
	n := copy(buf, est)
	var f frame
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			f.decode(buf[:n])
		}
	})
	t := h.cur.Load()
	b.Run("vip", func(b *testing.B) {
		for b.Loop() {
			t.index.isVIP(&f.key.VIP)
		}
	})
	b.Run("service", func(b *testing.B) {
		for b.Loop() {
			t.lookup(6, &f.key.VIP, 80)
		}
	})
	k := f.key
	b.Run("conn-lookup", func(b *testing.B) {
		for b.Loop() {
			h.p.conns.LookupRef(&k, 5)
		}
	})
	b.Run("conn-update", func(b *testing.B) {
		for b.Loop() {
			h.p.conns.Update(k, 0x10, 5)
		}
	})
	b.Run("conn-lookup-update", func(b *testing.B) {
		// As the pipeline does it: one probe, then the update in place.
		for b.Loop() {
			if _, ref, ok := h.p.conns.LookupRef(&f.key, 5); ok {
				h.p.conns.UpdateRef(ref, 0x10, 5)
			}
		}
	})
	b.Run("decode-conn", func(b *testing.B) {
		// Decode, then look the connection up and update it, as one
		// frame does: the key read is the one decode just wrote.
		var g frame
		for b.Loop() {
			n := copy(buf, est)
			g.decode(buf[:n])
			if _, ref, ok := h.p.conns.LookupRef(&g.key, 5); ok {
				h.p.conns.UpdateRef(ref, 0x10, 5)
			}
		}
	})
	b.Run("clock", func(b *testing.B) {
		for b.Loop() {
			h.p.Ticks(epoch)
		}
	})
	b.Run("process-not-vip", func(b *testing.B) {
		// Decode and the fixed costs of Process, up to the VIP check.
		other := udrtest.TCP(h.toVIP(), client(1), netip.MustParseAddrPort("192.0.2.200:80"), udrtest.ACK, nil)
		for b.Loop() {
			n := copy(buf, other)
			h.p.Process(buf[:n], epoch)
		}
	})
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			n := copy(buf, est)
			h.p.Process(buf[:n], epoch)
		}
	})
}
