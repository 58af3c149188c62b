//go:build linux

package forwarder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/udr-lb/udr/internal/checksum"
	"github.com/udr-lb/udr/internal/netlab"
)

// connLab is two namespaces joined by a veth pair: a (veth0) sends with
// real sockets, b (veth1) runs the PacketConns under test.
type connLab struct {
	a, b         *netlab.Host
	aMAC, bMAC   net.HardwareAddr
	vlanMAC      net.HardwareAddr // a's veth0.100
	a4, b4       netip.Addr
	a6, b6       netip.Addr
	aVLAN, bVLAN netip.Addr // on a's veth0.100, and b's address for it
	hasVLAN      bool       // the kernel supports VLAN devices (8021q)
}

func newConnLab(t testing.TB) *connLab {
	t.Helper()
	lab := netlab.ForTest(t, "conn")
	l := &connLab{
		a4: netip.MustParseAddr("192.0.2.1"), b4: netip.MustParseAddr("192.0.2.2"),
		a6: netip.MustParseAddr("2001:db8::1"), b6: netip.MustParseAddr("2001:db8::2"),
		aVLAN: netip.MustParseAddr("198.51.100.1"), bVLAN: netip.MustParseAddr("198.51.100.2"),
	}
	var err error
	if l.a, err = lab.AddHost("a"); err != nil {
		t.Fatal(err)
	}
	if l.b, err = lab.AddHost("b"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Pair(l.a, "veth0", l.b, "veth1"); err != nil {
		t.Fatal(err)
	}
	if err := l.a.AddAddrs("veth0", netip.PrefixFrom(l.a4, 24), netip.PrefixFrom(l.a6, 64)); err != nil {
		t.Fatal(err)
	}
	if err := l.b.AddAddrs("veth1", netip.PrefixFrom(l.b4, 24), netip.PrefixFrom(l.b6, 64)); err != nil {
		t.Fatal(err)
	}
	// a tags its 198.51.100.0/24 traffic with VLAN 100; b has no VLAN
	// interface, so only the PacketConn sees those frames.
	switch err := l.a.AddVLAN("veth0", "veth0.100", 100); {
	case errors.Is(err, unix.EOPNOTSUPP):
		// Kernels built without 8021q; TestConnKeep covers the tag
		// restoration without a device.
		t.Logf("no VLAN devices on this kernel (%v): testing without a tagged flow", err)
	case err != nil:
		t.Fatal(err)
	default:
		l.hasVLAN = true
		if err := l.a.AddAddrs("veth0.100", netip.PrefixFrom(l.aVLAN, 24)); err != nil {
			t.Fatal(err)
		}
		if l.vlanMAC, err = l.a.MAC("veth0.100"); err != nil {
			t.Fatal(err)
		}
	}
	if l.aMAC, err = l.a.MAC("veth0"); err != nil {
		t.Fatal(err)
	}
	if l.bMAC, err = l.b.MAC("veth1"); err != nil {
		t.Fatal(err)
	}
	// Static neighbours: no ARP or NDP traffic mixes with the test's.
	neigh := func(h *netlab.Host, ifname string, ip netip.Addr, mac net.HardwareAddr) {
		if err := h.AddNeighbor(ifname, ip, mac); err != nil {
			t.Fatal(err)
		}
	}
	neigh(l.a, "veth0", l.b4, l.bMAC)
	neigh(l.a, "veth0", l.b6, l.bMAC)
	if l.hasVLAN {
		neigh(l.a, "veth0.100", l.bVLAN, l.bMAC)
	}
	neigh(l.b, "veth1", l.a4, l.aMAC)
	neigh(l.b, "veth1", l.a6, l.aMAC)
	// The link-local addresses come asynchronously: a send before them
	// can be lost on a busy machine.
	for _, h := range []*netlab.Host{l.a, l.b} {
		if err := h.WaitIPv6(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// listen opens a PacketConn on ifname inside h, closed by t.Cleanup, with a
// read deadline that bounds the test.
func listenIn(t testing.TB, h *netlab.Host, ifname string, cfg ConnConfig) *PacketConn {
	t.Helper()
	var c *PacketConn
	if err := h.Run(func() (err error) {
		c, err = Listen(ifname, cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if cfg.IO != IOAuto && c.IO() != cfg.IO {
		t.Fatalf("Listen with IO %s gave %s", cfg.IO, c.IO())
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// sendUDP sends payload from h's socket bound to src to dst:7 (so the
// kernel fills the checksum CHECKSUM_PARTIAL), and returns the socket.
func sendUDP(t *testing.T, h *netlab.Host, src, dst netip.Addr, payload []byte) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := h.Run(func() (err error) {
		// Unconnected: the ICMP port unreachable that b's kernel answers
		// is not reported as an error on later reads.
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			return err
		}
		_, err = c.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, 7))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

// readUntil reads from c until it has a frame containing each of marks,
// within a bounded number of batches, and returns those frames in order.
func readUntil(t *testing.T, c *PacketConn, marks ...[]byte) ([][]byte, []PktType) {
	t.Helper()
	bufs, sizes, types := connBufs(8, 2048), make([]int, 8), make([]PktType, 8)
	var frames [][]byte
	var kinds []PktType
	for range 100 {
		var n int
		var err error
		if c.InPlace() {
			// As the Worker reads: the frames copied below are the ring's.
			c.Release()
			n, err = c.ReadInPlaceTypes(bufs, types)
			for i := range n {
				sizes[i] = len(bufs[i])
			}
		} else {
			n, err = c.ReadBatchTypes(bufs, sizes, types)
		}
		if err != nil {
			t.Fatalf("read: %v (have %d of %d frames)", err, len(frames), len(marks))
		}
		for i := range n {
			f := bufs[i][:sizes[i]]
			if bytes.Contains(f, marks[len(frames)]) {
				frames = append(frames, append([]byte(nil), f...))
				kinds = append(kinds, types[i])
			} else {
				for _, m := range marks[:len(frames)] {
					if bytes.Contains(f, m) {
						t.Fatalf("frame with %q returned twice (own output?): % x", m, f)
					}
				}
				for _, m := range marks[len(frames):] {
					if bytes.Contains(f, m) {
						t.Fatalf("frame with %q arrived before %q", m, marks[len(frames)])
					}
				}
			}
			if len(frames) == len(marks) {
				return frames, kinds
			}
		}
	}
	t.Fatalf("read 100 batches without the frames marked %q", marks[len(frames):])
	return nil, nil
}

// ioBackends are the receive backends every PacketConn test runs with.
var ioBackends = []IO{IOSocket, IORing, IORingV2}

// forEachIO runs f as a subtest with each receive backend.
func forEachIO(t *testing.T, f func(t *testing.T, io IO)) {
	for _, io := range ioBackends {
		t.Run("io="+io.String(), func(t *testing.T) { f(t, io) })
	}
}

func connBufs(n, size int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs
}

// verifyChecksum reports whether the TCP or UDP checksum of frame is
// correct, with the addresses, protocol and transport bytes as gopacket
// decodes them, independently of csum.go's parsing.
func verifyChecksum(t *testing.T, frame []byte) bool {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		pseudo := checksum.Pseudo(ip.SrcIP.To4(), ip.DstIP.To4(), uint8(ip.Protocol), len(ip.Payload))
		return checksum.Valid(checksum.Add(pseudo, ip.Payload))
	case *layers.IPv6:
		pseudo := checksum.Pseudo(ip.SrcIP, ip.DstIP, uint8(ip.NextHeader), len(ip.Payload))
		return checksum.Valid(checksum.Add(pseudo, ip.Payload))
	}
	t.Fatalf("frame is not IP: %v", p)
	return false
}

// echo turns a received UDP frame into its reply in place: MACs, addresses
// and ports swapped. The checksum stays valid: its sum does not depend on
// the order of the words.
func echo(t *testing.T, frame []byte) {
	t.Helper()
	var mac [6]byte
	copy(mac[:], frame[0:6])
	copy(frame[0:6], frame[6:12])
	copy(frame[6:12], mac[:])
	off := ethHdrLen
	if et := binary.BigEndian.Uint16(frame[ethType:]); et == etherTypeVLAN {
		off += vlanLen
	}
	var l4 int
	swap := func(a, b, n int) {
		tmp := make([]byte, n)
		copy(tmp, frame[a:a+n])
		copy(frame[a:a+n], frame[b:b+n])
		copy(frame[b:b+n], tmp)
	}
	switch frame[off] >> 4 {
	case 4:
		swap(off+12, off+16, 4)
		l4 = off + int(frame[off]&0xf)*4
	case 6:
		swap(off+8, off+24, 16)
		l4 = off + ipv6HdrLen
	default:
		t.Fatalf("echo: not IP: % x", frame[:off+1])
	}
	swap(l4, l4+2, 2)
}

// frameTo builds a UDP/IPv4 frame from a to b4 with a correct checksum.
func (l *connLab) frameTo(t testing.TB, dst net.HardwareAddr, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: l.aMAC, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: l.a4.AsSlice(), DstIP: l.b4.AsSlice()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
