//go:build linux

package forwarder

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/internal/udrtest"
)

// TestPrivilegedListenGroup sends, from a peer, the frames of sixteen
// clients (TCP and UDP flows, a later IPv4 fragment, an ICMP error about a
// connection sent by a router) and of IPv6 fragments and an ICMPv6 error,
// and an ARP request, to two sockets of one fanout group, with each
// backend: the kernel runs the fanout program and every frame reaches
// exactly one socket, all of a client's on the same, ARP on the first, and
// both sockets get clients.
func TestPrivilegedListenGroup(t *testing.T) {
	netlab.Privileged(t)
	forEachIO(t, func(t *testing.T, io IO) {
		l := newConnLab(t)
		tx := listenIn(t, l.a, "veth0", ConnConfig{IO: IOSocket})
		fanout, err := BuildFanout(32, 128)
		if err != nil {
			t.Fatal(err)
		}
		var group []*PacketConn
		if err := l.b.Run(func() (err error) {
			group, err = ListenGroup("veth1", ConnConfig{IO: io}, 2, fanout)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range group {
			t.Cleanup(func() { c.Close() })
			if c.IO() != io {
				t.Fatalf("ListenGroup with IO %s gave %s", io, c.IO())
			}
		}

		eth := udrtest.Eth{Src: l.aMAC, Dst: l.bMAC}
		retarget := func(f []byte) []byte {
			copy(f[0:6], l.bMAC)
			copy(f[6:12], l.aMAC)
			return f
		}
		router := netip.MustParseAddr("203.0.113.1")
		client := map[string]string{} // frame → its client's name
		var frames [][]byte
		add := func(name string, f []byte) {
			client[string(f)] = name
			frames = append(frames, f)
		}
		for i := range 16 {
			a := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
			name := a.String()
			add(name, udrtest.TCP(eth, netip.AddrPortFrom(a, uint16(1000+i)), vip80, udrtest.SYN, nil))
			add(name, udrtest.TCP(eth, netip.AddrPortFrom(a, uint16(2000+i)), netip.AddrPortFrom(udrtest.VIP, 443), udrtest.SYN, nil))
			add(name, udrtest.UDP(eth, netip.AddrPortFrom(a, uint16(3000+i)), vip53, []byte{byte(i)}))
			add(name, retarget(laterFragment4(a)))
			add(name, retarget(icmpError4(a, router)))
		}
		c6 := netip.MustParseAddr("2001:db8::50") // fragments6's client
		for _, f := range fragments6(eth, 5000, 9, make([]byte, 200)) {
			add(c6.String(), f)
		}
		add(c6.String(), retarget(icmpError6(c6, netip.MustParseAddr("2001:db8::1"))))
		arp := udrtest.ARPRequest(udrtest.Eth{Src: l.aMAC, Dst: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.200"))
		add("arp", arp)

		// Read both sockets until they are quiet.
		got := make([]map[string]int, len(group)) // frame → times read, per socket
		var wg sync.WaitGroup
		for i, c := range group {
			got[i] = map[string]int{}
			wg.Go(func() {
				bufs, sizes := connBufs(64, 2048), make([]int, 64)
				for {
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					n, err := c.ReadBatch(bufs, sizes)
					for j := range n {
						if f := string(bufs[j][:sizes[j]]); client[f] != "" {
							got[i][f]++
						}
					}
					if err != nil {
						if !errors.Is(err, os.ErrDeadlineExceeded) {
							t.Errorf("socket %d: %v", i, err)
						}
						return
					}
				}
			})
		}
		if _, err := tx.WriteBatch(frames); err != nil {
			t.Fatal(err)
		}
		wg.Wait()

		socketOf := map[string]int{} // client → its socket
		perSocket := make([]int, len(group))
		for _, f := range frames {
			name, reads, at := client[string(f)], 0, -1
			for i := range got {
				if n := got[i][string(f)]; n > 0 {
					reads += n
					at = i
				}
			}
			if reads != 1 {
				t.Errorf("a frame of %s was read %d times, want once", name, reads)
				continue
			}
			if s, ok := socketOf[name]; ok && s != at {
				t.Errorf("frames of %s reached sockets %d and %d", name, s, at)
			}
			if _, ok := socketOf[name]; !ok {
				perSocket[at]++
			}
			socketOf[name] = at
		}
		if s := socketOf["arp"]; s != 0 {
			t.Errorf("ARP reached socket %d, want the first", s)
		}
		if perSocket[0] == 0 || perSocket[1] == 0 {
			t.Errorf("clients per socket: %v, want both sockets used", perSocket)
		}
		t.Logf("clients per socket: %v", perSocket)
	})
}
