package bench

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/udrtest"
)

const rules = `-A -t 192.0.2.100:80 -s wrr
-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 2
-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1
`

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newPipeline returns a worker over rules with a connection table of the
// given capacity, both real servers' MACs known, and the VIP MAC.
func newPipeline(b *testing.B, capacity int) (*forwarder.Pipeline, []byte) {
	b.Helper()
	cfg, _, err := admin.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		b.Fatal(err)
	}
	reg := dest.NewRegistry(16)
	neigh := forwarder.NewNeighbors(16)
	neigh.Set(udrtest.RS1, [6]byte(udrtest.RS1MAC))
	neigh.Set(udrtest.RS2, [6]byte(udrtest.RS2MAC))
	opts := forwarder.Options{IfMAC: [6]byte(udrtest.DirectorMAC)}
	opts.VIPMAC = arpresponder.VirtualMAC(opts.IfMAC)
	t, err := forwarder.Compile(cfg, reg, neigh, nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	var cur atomic.Pointer[forwarder.Table]
	cur.Store(t)
	conns := conntrack.New(capacity, reg, conntrack.Options{Seed: 1})
	p := forwarder.NewPipeline(forwarder.PipelineConfig{Table: &cur, Conns: conns, Neighbors: neigh, Registry: reg, Epoch: epoch})
	return p, opts.VIPMAC[:]
}

// BenchmarkPipeline measures one frame through Process: parse, service
// lookup, connection lookup or creation, scheduling, rewrite.
func BenchmarkPipeline(b *testing.B) {
	vip := netip.AddrPortFrom(udrtest.VIP, 80)
	buf := make([]byte, 2048)

	b.Run("established", func(b *testing.B) {
		p, vmac := newPipeline(b, 1<<16)
		eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: vmac}
		cl := netip.AddrPortFrom(udrtest.Client, 40000)
		p.Process(udrtest.TCP(eth, cl, vip, udrtest.SYN, nil), epoch)
		frame := udrtest.TCP(eth, cl, vip, udrtest.ACK|udrtest.PSH, []byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n"))
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			n := copy(buf, frame)
			if v, _ := p.Process(buf[:n], epoch); v != forwarder.VerdictForward {
				b.Fatalf("verdict %v", v)
			}
		}
	})

	b.Run("established-1k", func(b *testing.B) {
		// 1024 established flows, interleaved as a director sees them.
		const flows = 1024
		p, vmac := newPipeline(b, 1<<16)
		eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: vmac}
		frames := make([][]byte, flows)
		for i := range frames {
			cl := netip.AddrPortFrom(udrtest.Client, uint16(10000+i))
			p.Process(udrtest.TCP(eth, cl, vip, udrtest.SYN, nil), epoch)
			frames[i] = udrtest.TCP(eth, cl, vip, udrtest.ACK|udrtest.PSH, []byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n"))
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(frames[0])))
		i := 0
		for b.Loop() {
			n := copy(buf, frames[i%flows])
			i++
			if v, _ := p.Process(buf[:n], epoch); v != forwarder.VerdictForward {
				b.Fatalf("verdict %v", v)
			}
		}
	})

	b.Run("syn", func(b *testing.B) {
		// Every SYN is a new connection from 198.51.100.0/24: the source
		// port and the last octet vary. The table is replaced, untimed,
		// before it fills, so that no insert has to evict.
		const capacity = 1 << 20
		p, vmac := newPipeline(b, capacity)
		eth := udrtest.Eth{Src: udrtest.ClientMAC, Dst: vmac}
		frame := udrtest.TCP(eth, netip.MustParseAddrPort("198.51.100.1:1024"), vip, udrtest.SYN, nil)
		const srcLast, srcPort = 14 + 15, 14 + 20
		b.ReportAllocs()
		var i int
		for b.Loop() {
			i++
			if i%(capacity/2) == 0 {
				b.StopTimer()
				p, _ = newPipeline(b, capacity)
				b.StartTimer()
			}
			n := copy(buf, frame)
			port := 1024 + i%60000
			buf[srcPort], buf[srcPort+1] = byte(port>>8), byte(port)
			buf[srcLast] = byte(i / 60000)
			// The header checksum covers the address just changed.
			buf[14+10], buf[14+11] = 0, 0
			sum := checksum.Checksum(buf[14 : 14+20])
			buf[14+10], buf[14+11] = byte(sum>>8), byte(sum)
			if v, _ := p.Process(buf[:n], epoch); v != forwarder.VerdictForward {
				b.Fatalf("verdict %v", v)
			}
		}
	})

	b.Run("arp", func(b *testing.B) {
		p, _ := newPipeline(b, 1<<10)
		frame := udrtest.ARPRequest(udrtest.Eth{Src: udrtest.ClientMAC, Dst: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, udrtest.Client, udrtest.VIP)
		b.ReportAllocs()
		for b.Loop() {
			n := copy(buf, frame)
			if v, _ := p.Process(buf[:n], epoch); v != forwarder.VerdictReply {
				b.Fatalf("verdict %v", v)
			}
		}
	})
}
