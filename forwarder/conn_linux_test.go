//go:build linux

package forwarder

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"

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
}

func newConnLab(t *testing.T) *connLab {
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
	parent, err := l.a.Netlink().LinkByName("veth0")
	if err != nil {
		t.Fatal(err)
	}
	vlan := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "veth0.100", ParentIndex: parent.Attrs().Index}, VlanId: 100}
	if err := l.a.Netlink().LinkAdd(vlan); err != nil {
		t.Fatal(err)
	}
	if err := l.a.Netlink().LinkSetUp(vlan); err != nil {
		t.Fatal(err)
	}
	if err := l.a.AddAddrs("veth0.100", netip.PrefixFrom(l.aVLAN, 24)); err != nil {
		t.Fatal(err)
	}
	if l.aMAC, err = l.a.MAC("veth0"); err != nil {
		t.Fatal(err)
	}
	if l.bMAC, err = l.b.MAC("veth1"); err != nil {
		t.Fatal(err)
	}
	if l.vlanMAC, err = l.a.MAC("veth0.100"); err != nil {
		t.Fatal(err)
	}
	// Static neighbours: no ARP or NDP traffic mixes with the test's.
	neigh := func(h *netlab.Host, ifname string, ip netip.Addr, mac net.HardwareAddr) {
		link, err := h.Netlink().LinkByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		n := &netlink.Neigh{LinkIndex: link.Attrs().Index, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
		if err := h.Netlink().NeighAdd(n); err != nil {
			t.Fatalf("add neighbour %s on %s: %v", ip, ifname, err)
		}
	}
	neigh(l.a, "veth0", l.b4, l.bMAC)
	neigh(l.a, "veth0", l.b6, l.bMAC)
	neigh(l.a, "veth0.100", l.bVLAN, l.bMAC)
	neigh(l.b, "veth1", l.a4, l.aMAC)
	neigh(l.b, "veth1", l.a6, l.aMAC)
	return l
}

// listen opens a PacketConn on ifname inside h, closed by t.Cleanup, with a
// read deadline that bounds the test.
func listenIn(t *testing.T, h *netlab.Host, ifname string, cfg ConnConfig) *PacketConn {
	t.Helper()
	var c *PacketConn
	if err := h.Run(func() (err error) {
		c, err = Listen(ifname, cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
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
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 7)))
		if err != nil {
			return err
		}
		_, err = c.Write(payload)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
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
		n, err := c.ReadBatchTypes(bufs, sizes, types)
		if err != nil {
			t.Fatalf("ReadBatchTypes: %v (have %d of %d frames)", err, len(frames), len(marks))
		}
		for i := range n {
			f := bufs[i][:sizes[i]]
			if bytes.Contains(f, marks[len(frames)]) {
				frames = append(frames, append([]byte(nil), f...))
				kinds = append(kinds, types[i])
			} else {
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

func connBufs(n, size int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs
}

// verifyChecksum reports whether the TCP or UDP checksum of frame is
// correct, computed the slow way (RFC 1071) independently of csum.go.
func verifyChecksum(t *testing.T, frame []byte) bool {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var pseudo []byte
	var l4 []byte
	var proto uint8
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		pseudo = append(append(pseudo, ip.SrcIP.To4()...), ip.DstIP.To4()...)
		proto = uint8(ip.Protocol)
		l4 = ip.Payload
	case *layers.IPv6:
		pseudo = append(append(pseudo, ip.SrcIP...), ip.DstIP...)
		proto = uint8(ip.NextHeader)
		l4 = ip.Payload
	default:
		t.Fatalf("frame is not IP: %v", p)
	}
	pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(l4)))
	pseudo = append(pseudo, 0, 0, 0, proto)
	var sum uint32
	for _, b := range [][]byte{pseudo, l4} {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
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

func TestPrivilegedConnChecksumVLANEcho(t *testing.T) {
	l := newConnLab(t)
	filter, err := BuildFilter([]netip.Addr{l.b4, l.b6, l.bVLAN})
	if err != nil {
		t.Fatal(err)
	}
	conn := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter})
	// A second socket without PACKET_IGNORE_OUTGOING sees conn's output
	// as PACKET_OUTGOING frames and must drop them by type.
	fallback := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, keepOutgoing: true})

	marks := [][]byte{[]byte("udp4-partial"), []byte("udp6-partial"), []byte("vlan-partial")}
	socks := []*net.UDPConn{
		sendUDP(t, l.a, l.a4, l.b4, marks[0]),
		sendUDP(t, l.a, l.a6, l.b6, marks[1]),
		sendUDP(t, l.a, l.aVLAN, l.bVLAN, marks[2]),
	}
	frames, kinds := readUntil(t, conn, marks...)
	if diff := cmp.Diff([]PktType{PktHost, PktHost, PktHost}, kinds); diff != "" {
		t.Errorf("packet types (-want +got):\n%s", diff)
	}
	st := conn.Stats()
	if st.RxChecksumFixed < 3 {
		t.Errorf("RxChecksumFixed = %d, want 3 or more: the veth should deliver local UDP as CHECKSUM_PARTIAL", st.RxChecksumFixed)
	}
	for i, f := range frames {
		if !verifyChecksum(t, f) {
			t.Errorf("frame %q: checksum not completed: % x", marks[i], f)
		}
	}
	vlan := frames[2]
	if got := binary.BigEndian.Uint16(vlan[ethType:]); got != etherTypeVLAN {
		t.Fatalf("VLAN frame EtherType = %#04x, want the restored 802.1Q tag", got)
	}
	if id := binary.BigEndian.Uint16(vlan[ethType+2:]) & 0x0fff; id != 100 || st.RxVLANRestored == 0 {
		t.Fatalf("VLAN id = %d (RxVLANRestored %d), want 100", id, st.RxVLANRestored)
	}

	// Echo every frame back: a's kernel verifies the checksums and hands
	// the datagrams to the sockets.
	for _, f := range frames {
		echo(t, f)
	}
	if n, err := conn.WriteBatch(frames); n != len(frames) || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, len(frames))
	}
	for i, s := range socks {
		buf := make([]byte, 64)
		n, err := s.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], marks[i]) {
			t.Fatalf("echo of %q at the sender: %q, %v", marks[i], buf[:n], err)
		}
	}

	// Neither socket returns conn's output: the next frame each returns
	// is the one a sends now.
	sendUDP(t, l.a, l.a4, l.b4, []byte("after-echo"))
	readUntil(t, conn, []byte("after-echo"))
	got, _ := readUntil(t, fallback, append(marks, []byte("after-echo"))...)
	for _, f := range got[:3] {
		if bytes.Equal(f[0:6], l.aMAC) || bytes.Equal(f[0:6], l.vlanMAC) {
			t.Fatalf("fallback socket returned an echoed frame: % x", f[:14])
		}
	}
	if out := fallback.Stats().RxOutgoing; out < 3 {
		t.Errorf("fallback RxOutgoing = %d, want 3 or more", out)
	}
	if out := conn.Stats().RxOutgoing; out != 0 {
		t.Errorf("RxOutgoing with PACKET_IGNORE_OUTGOING = %d, want 0", out)
	}
}

func TestPrivilegedConnTCPChecksum(t *testing.T) {
	l := newConnLab(t)
	filter, err := BuildFilter([]netip.Addr{l.b4, l.b6})
	if err != nil {
		t.Fatal(err)
	}
	conn := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter})
	for _, dst := range []netip.Addr{l.b4, l.b6} {
		// b listens nowhere: its kernel answers RST, while conn reads the
		// SYN the client's kernel left CHECKSUM_PARTIAL.
		go l.a.Run(func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(dst, 9).String(), 5*time.Second)
			if err == nil {
				c.Close()
			}
			return nil
		})
		port := binary.BigEndian.AppendUint16(nil, 9)
		bufs, sizes := connBufs(4, 2048), make([]int, 4)
		found := false
		for range 50 {
			n, err := conn.ReadBatch(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				p := gopacket.NewPacket(bufs[i][:sizes[i]], layers.LayerTypeEthernet, gopacket.Default)
				tcp, ok := p.TransportLayer().(*layers.TCP)
				if !ok || !tcp.SYN || !bytes.Equal(tcp.Contents[2:4], port) {
					continue
				}
				found = true
				if !verifyChecksum(t, bufs[i][:sizes[i]]) {
					t.Errorf("SYN to %s: checksum not completed", dst)
				}
			}
			if found {
				break
			}
		}
		if !found {
			t.Fatalf("no SYN to %s read in 50 batches", dst)
		}
	}
	if conn.Stats().RxChecksumFixed < 2 {
		t.Errorf("RxChecksumFixed = %d, want 2 or more", conn.Stats().RxChecksumFixed)
	}
}

// frameTo builds a UDP/IPv4 frame from a to b4 with a correct checksum.
func (l *connLab) frameTo(t *testing.T, dst net.HardwareAddr, payload []byte) []byte {
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

func TestPrivilegedConnBatchAllocs(t *testing.T) {
	l := newConnLab(t)
	filter, err := BuildFilter([]netip.Addr{l.b4})
	if err != nil {
		t.Fatal(err)
	}
	rx := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, BatchSize: 16})
	noIP, err := BuildFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: noIP, BatchSize: 16})

	const batch = 8
	out := make([][]byte, batch)
	for i := range out {
		out[i] = l.frameTo(t, l.bMAC, []byte(fmt.Sprintf("alloc-%d", i)))
	}
	bufs, sizes := connBufs(batch, 2048), make([]int, batch)
	var failed error
	round := func() {
		if n, err := tx.WriteBatch(out); n != batch || err != nil {
			failed = fmt.Errorf("WriteBatch = %d, %v", n, err)
			return
		}
		for got := 0; got < batch; {
			n, err := rx.ReadBatch(bufs[got:], sizes[got:])
			if err != nil {
				failed = fmt.Errorf("ReadBatch: %w", err)
				return
			}
			got += n
		}
	}
	round() // warm up: the poller registers its descriptors
	allocs := testing.AllocsPerRun(50, round)
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Fatalf("WriteBatch+ReadBatch of %d frames allocs = %v, want 0", batch, allocs)
	}
	if st := tx.Stats(); st.TxFrames != 51*batch+batch {
		t.Errorf("TxFrames = %d, want %d", st.TxFrames, 52*batch)
	}
	for i := range batch {
		if !bytes.Equal(bufs[i][:sizes[i]], out[i]) {
			t.Fatalf("frame %d read back differs:\n got % x\nwant % x", i, bufs[i][:sizes[i]], out[i])
		}
	}
}

func TestPrivilegedConnDrops(t *testing.T) {
	l := newConnLab(t)
	virtualMAC := [6]byte{0x02, 0x00, 0x5e, 0x00, 0x01, 0x01}
	filter, err := BuildFilter([]netip.Addr{l.b4})
	if err != nil {
		t.Fatal(err)
	}
	rx := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, ExtraMACs: [][6]byte{virtualMAC}})
	if rx.Promiscuous() {
		t.Error("Promiscuous() = true: the PACKET_MR_UNICAST membership was refused")
	}
	tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: filter})

	// Too large, too small, a tagged frame of the largest size allowed.
	big := l.frameTo(t, l.bMAC, make([]byte, 1500-28+1)) // 1515 bytes
	runt := big[:10]
	tagged := l.frameTo(t, l.bMAC, make([]byte, 1500-28))
	tagged = append(tagged[:12:12], append([]byte{0x81, 0x00, 0x00, 0x07}, tagged[12:]...)...)
	small := l.frameTo(t, net.HardwareAddr(virtualMAC[:]), []byte("small-to-virtual-mac"))
	n, err := tx.WriteBatch([][]byte{big, runt, tagged, big, small})
	if n != 5 || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want 5, nil", n, err)
	}
	want := ConnStats{TxFrames: 2, TxOversize: 2, TxRunt: 1}
	if diff := cmp.Diff(want, tx.Stats()); diff != "" {
		t.Errorf("sender stats (-want +got):\n%s", diff)
	}

	// The tagged frame does not fit 100-byte buffers; the small one does
	// and moves to bufs[0].
	bufs, sizes, types := connBufs(4, 100), make([]int, 4), make([]PktType, 4)
	total, got := 0, 0
	for range 10 {
		n, err := rx.ReadBatchTypes(bufs, sizes, types)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n > 0 && bytes.Contains(bufs[0][:sizes[0]], []byte("small-to-virtual-mac")) {
			got++
			if types[0] != PktOtherHost {
				t.Errorf("frame to the virtual MAC has type %d, want PktOtherHost", types[0])
			}
			break
		}
	}
	if got != 1 || total != 1 {
		t.Fatalf("read %d frames, %d of them the small one; want exactly the small one", total, got)
	}
	if st := rx.Stats(); st.RxTruncated != 1 {
		t.Errorf("RxTruncated = %d, want 1", st.RxTruncated)
	}
	for i, b := range bufs {
		if len(b) != 100 {
			t.Errorf("bufs[%d] has length %d after the swap, want 100", i, len(b))
		}
	}
}
