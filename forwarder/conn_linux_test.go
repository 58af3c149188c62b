//go:build linux

package forwarder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestPrivilegedConnChecksumVLANEcho(t *testing.T) {
	forEachIO(t, func(t *testing.T, io IO) {
		l := newConnLab(t)
		filter, err := BuildFilter([]netip.Addr{l.b4, l.b6, l.bVLAN})
		if err != nil {
			t.Fatal(err)
		}
		conn := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, IO: io})
		// A second socket without PACKET_IGNORE_OUTGOING sees conn's output
		// as PACKET_OUTGOING frames and must drop them by type.
		// It has no filter: the echoes are not addressed to a VIP.
		fallback := listenIn(t, l.b, "veth1", ConnConfig{keepOutgoing: true, IO: io})

		marks := [][]byte{[]byte("udp4-partial"), []byte("udp6-partial")}
		socks := []*net.UDPConn{
			sendUDP(t, l.a, l.a4, l.b4, marks[0]),
			sendUDP(t, l.a, l.a6, l.b6, marks[1]),
		}
		if l.hasVLAN {
			marks = append(marks, []byte("vlan-partial"))
			socks = append(socks, sendUDP(t, l.a, l.aVLAN, l.bVLAN, marks[2]))
		}
		frames, kinds := readUntil(t, conn, marks...)
		for i, k := range kinds {
			if k != PktHost {
				t.Errorf("frame %q has packet type %d, want PktHost", marks[i], k)
			}
		}
		st := conn.Stats()
		if st.RxChecksumFixed < uint64(len(marks)) {
			t.Errorf("RxChecksumFixed = %d, want %d or more: the veth should deliver local UDP as CHECKSUM_PARTIAL", st.RxChecksumFixed, len(marks))
		}
		for i, f := range frames {
			if !verifyChecksum(t, f) {
				t.Errorf("frame %q: checksum not completed: % x", marks[i], f)
			}
		}
		if l.hasVLAN {
			vlan := frames[2]
			if got := binary.BigEndian.Uint16(vlan[ethType:]); got != etherTypeVLAN {
				t.Fatalf("VLAN frame EtherType = %#04x, want the restored 802.1Q tag", got)
			}
			if id := binary.BigEndian.Uint16(vlan[ethType+2:]) & 0x0fff; id != 100 || st.RxVLANRestored == 0 {
				t.Fatalf("VLAN id = %d (RxVLANRestored %d), want 100", id, st.RxVLANRestored)
			}
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
		readUntil(t, fallback, append(marks, []byte("after-echo"))...)
		if out := fallback.Stats().RxOutgoing; out < uint64(len(marks)) {
			t.Errorf("fallback RxOutgoing = %d, want %d or more", out, len(marks))
		}
		if out := conn.Stats().RxOutgoing; out != 0 {
			t.Errorf("RxOutgoing with PACKET_IGNORE_OUTGOING = %d, want 0", out)
		}
	})
}

func TestPrivilegedConnTCPChecksum(t *testing.T) {
	forEachIO(t, func(t *testing.T, io IO) {
		l := newConnLab(t)
		filter, err := BuildFilter([]netip.Addr{l.b4, l.b6})
		if err != nil {
			t.Fatal(err)
		}
		conn := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, IO: io})
		for _, dst := range []netip.Addr{l.b4, l.b6} {
			// b listens nowhere: its kernel answers RST, while conn reads the
			// SYN the client's kernel left CHECKSUM_PARTIAL.
			dialed := make(chan struct{})
			go func() {
				defer close(dialed)
				l.a.Run(func() error {
					c, err := net.DialTimeout("tcp", netip.AddrPortFrom(dst, 9).String(), 5*time.Second)
					if err == nil {
						c.Close()
					}
					return nil
				})
			}()
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
			<-dialed // refused by b's RST, or timed out
			if !found {
				t.Fatalf("no SYN to %s read in 50 batches", dst)
			}
		}
		if conn.Stats().RxChecksumFixed < 2 {
			t.Errorf("RxChecksumFixed = %d, want 2 or more", conn.Stats().RxChecksumFixed)
		}
	})
}

func TestPrivilegedConnBatchAllocs(t *testing.T) {
	forEachIO(t, func(t *testing.T, io IO) {
		l := newConnLab(t)
		filter, err := BuildFilter([]netip.Addr{l.b4})
		if err != nil {
			t.Fatal(err)
		}
		rx := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, BatchSize: 16, IO: io})
		noIP, err := BuildFilter(nil)
		if err != nil {
			t.Fatal(err)
		}
		tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: noIP, BatchSize: 16, IO: io})
		// The frames come back to veth0 through a third socket.
		back := listenIn(t, l.a, "veth0", ConnConfig{Filter: filter, BatchSize: 16, IO: io})

		const batch = 8
		out := make([][]byte, batch)
		for i := range out {
			out[i] = l.frameTo(t, l.bMAC, []byte(fmt.Sprintf("alloc-%d", i)))
		}
		bufs, sizes := connBufs(batch, 2048), make([]int, batch)
		views, backBufs := make([][]byte, batch), connBufs(batch, 2048)
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
			if !rx.InPlace() {
				return
			}
			// In place: send the frames back from the ring's memory.
			if n, err := tx.WriteBatch(out); n != batch || err != nil {
				failed = fmt.Errorf("WriteBatch = %d, %v", n, err)
				return
			}
			for got := 0; got < batch; {
				n, err := rx.ReadInPlace(views[got:])
				if err != nil {
					failed = fmt.Errorf("ReadInPlace: %w", err)
					return
				}
				for _, f := range views[got : got+n] {
					copy(f[0:6], l.aMAC) // rewritten in place
				}
				if m, err := rx.WriteBatch(views[got : got+n]); m != n || err != nil {
					failed = fmt.Errorf("WriteBatch in place = %d, %v", m, err)
					return
				}
				rx.Release()
				got += n
			}
			for got := 0; got < batch; {
				n, err := back.ReadBatch(backBufs[got:], sizes[got:])
				if err != nil {
					failed = fmt.Errorf("ReadBatch back: %w", err)
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
		perRound := uint64(batch)
		if rx.InPlace() {
			perRound *= 2
		}
		if st := tx.Stats(); st.TxFrames != 52*perRound {
			t.Errorf("TxFrames = %d, want %d", st.TxFrames, 52*perRound)
		}
		for i := range batch {
			if !bytes.Equal(bufs[i][:sizes[i]], out[i]) {
				t.Fatalf("frame %d read back differs:\n got % x\nwant % x", i, bufs[i][:sizes[i]], out[i])
			}
		}
		if rx.InPlace() {
			if st := rx.Stats(); st.TxFrames != 52*batch {
				t.Errorf("in place TxFrames = %d, want %d", st.TxFrames, 52*batch)
			}
			for i := range batch {
				want := append(append([]byte(nil), l.aMAC...), out[i][6:]...)
				if !bytes.Contains(backBufs[i][:len(want)], want[6:]) || !bytes.Equal(backBufs[i][:6], l.aMAC) {
					t.Fatalf("frame %d sent back from the ring differs:\n got % x\nwant % x", i, backBufs[i][:len(want)], want)
				}
			}
		}
	})
}

func TestPrivilegedConnDrops(t *testing.T) {
	forEachIO(t, func(t *testing.T, io IO) {
		l := newConnLab(t)
		virtualMAC := [6]byte{0x02, 0x00, 0x5e, 0x00, 0x01, 0x01}
		filter, err := BuildFilter([]netip.Addr{l.b4})
		if err != nil {
			t.Fatal(err)
		}
		rx := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, ExtraMACs: [][6]byte{virtualMAC}, IO: io})
		if rx.Promiscuous() {
			t.Error("Promiscuous() = true: the PACKET_MR_UNICAST membership was refused")
		}
		tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: filter, IO: io})

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
	})
}

// BenchmarkPrivilegedConnBatch measures WriteBatch on one end of a veth
// pair and ReadBatch on the other, 32 frames of 1514 or 60 bytes per batch,
// with each receive backend; with the ring, ReadInPlace is measured too
// (the frames are not copied).
func BenchmarkPrivilegedConnBatch(b *testing.B) {
	eachBackend(b, []int{1514, 60}, benchConnBatch)
}

// eachBackend runs bench for every frame size, receive backend and, for
// the rings, with and without in-place reads.
func eachBackend(b *testing.B, sizes []int, bench func(b *testing.B, io IO, size int, inPlace bool)) {
	for _, size := range sizes {
		for _, io := range ioBackends {
			for _, inPlace := range []bool{false, true} {
				if inPlace && io == IOSocket {
					continue
				}
				name := fmt.Sprintf("size=%d/io=%s", size, io)
				if inPlace {
					name += "/in-place"
				}
				b.Run(name, func(b *testing.B) { bench(b, io, size, inPlace) })
			}
		}
	}
}

// benchBatch is the number of frames the I/O benchmarks write per batch.
const benchBatch = 32

// newBenchPair returns a receiving PacketConn with the backend io on one
// end of a veth pair, a sender on the other, a batch of frames of size
// bytes to send, and buffers to read a batch into.
func newBenchPair(b *testing.B, io IO, size int) (rx, tx *PacketConn, out, bufs [][]byte, sizes []int) {
	l := newConnLab(b)
	filter, err := BuildFilter([]netip.Addr{l.b4})
	if err != nil {
		b.Fatal(err)
	}
	rx = listenIn(b, l.b, "veth1", ConnConfig{Filter: filter, IO: io})
	noIP, err := BuildFilter(nil)
	if err != nil {
		b.Fatal(err)
	}
	tx = listenIn(b, l.a, "veth0", ConnConfig{Filter: noIP})
	out = make([][]byte, benchBatch)
	for i := range out {
		out[i] = l.frameTo(b, l.bMAC, make([]byte, size-14-28))
	}
	b.SetBytes(benchBatch * int64(len(out[0])))
	b.ReportAllocs()
	return rx, tx, out, connBufs(benchBatch, 2048), make([]int, benchBatch)
}

func benchConnBatch(b *testing.B, io IO, size int, inPlace bool) {
	rx, tx, out, bufs, sizes := newBenchPair(b, io, size)
	const batch = benchBatch
	for b.Loop() {
		if n, err := tx.WriteBatch(out); n != batch || err != nil {
			b.Fatalf("WriteBatch = %d, %v", n, err)
		}
		for got := 0; got < batch; {
			var n int
			var err error
			if inPlace {
				n, err = rx.ReadInPlace(bufs[got:])
			} else {
				n, err = rx.ReadBatch(bufs[got:], sizes[got:])
			}
			if err != nil {
				b.Fatalf("read: %v (rx %+v)", err, rx.Stats())
			}
			got += n
		}
		if inPlace {
			rx.Release()
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkPrivilegedConnStream measures how many frames per second the
// receiving PacketConn takes in while a sender on the other end of a veth
// pair writes batches of 32 frames as fast as it can, with no pipeline:
// udr's I/O ceiling on this kernel. Frames the receiver does not keep up
// with are lost (the kernel drops them) and reported as loss-%; the
// reader's CPU time per frame is rx-cpu-ns/frame.
func BenchmarkPrivilegedConnStream(b *testing.B) {
	eachBackend(b, []int{60, 1514}, benchConnStream)
}

func benchConnStream(b *testing.B, io IO, size int, inPlace bool) {
	rx, tx, out, bufs, sizes := newBenchPair(b, io, size)
	const batch = benchBatch
	var err error
	rx.SetReadDeadline(time.Time{})
	sent := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		var err error
		for range b.N {
			if n, werr := tx.WriteBatch(out); n != batch || werr != nil {
				err = fmt.Errorf("WriteBatch = %d, %v", n, werr)
				break
			}
		}
		// What is not read 100 ms after the last write was dropped.
		rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		sent <- err
	}()
	want, got := b.N*batch, 0
	last := start
	// The reader's own CPU time per frame: the sender, whose CPU also
	// runs the veth's receive path into the socket, sets the rate.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	for got < want {
		var n int
		if inPlace {
			n, err = rx.ReadInPlace(bufs)
			rx.Release()
		} else {
			n, err = rx.ReadBatch(bufs, sizes)
		}
		if err != nil {
			break
		}
		got += n
		last = time.Now()
	}
	cpu := threadCPU() - cpu0
	b.StopTimer()
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		b.Fatalf("read: %v", err)
	}
	b.ReportMetric(float64(got)/last.Sub(start).Seconds(), "frames/s")
	b.ReportMetric(100*float64(want-got)/float64(want), "loss-%")
	// The kernel's count of the frames lost, in the same units.
	b.ReportMetric(100*float64(rx.Stats().RxKernelDrops)/float64(want), "drops-%")
	if got > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "rx-cpu-ns/frame")
	}
}

// Frames that arrive while the receive buffer (or the ring) is full are
// dropped by the kernel and counted in RxKernelDrops (PACKET_STATISTICS):
// every frame sent is either read or counted.
func TestPrivilegedConnKernelDrops(t *testing.T) {
	forEachIO(t, func(t *testing.T, io IO) {
		l := newConnLab(t)
		filter, err := BuildFilter([]netip.Addr{l.b4})
		if err != nil {
			t.Fatal(err)
		}
		// The smallest buffer: a few frames, or a ring of 8 blocks.
		rx := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, RecvBuffer: 1, IO: io})
		noIP, err := BuildFilter(nil)
		if err != nil {
			t.Fatal(err)
		}
		tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: noIP})
		const batch, batches = 32, 100 // 3200 frames, 4.8 MB
		out := make([][]byte, batch)
		for i := range out {
			out[i] = l.frameTo(t, l.bMAC, append([]byte("drops-"), make([]byte, 1400)...))
		}
		for range batches {
			if n, err := tx.WriteBatch(out); n != batch || err != nil {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
		}
		// Read until the socket has been quiet for 200 ms. A deadline
		// already past fails a read even with frames waiting, so the
		// first one is far enough for a loaded machine to reach it.
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		bufs, sizes := connBufs(batch, 2048), make([]int, batch)
		read := 0
		for {
			n, err := rx.ReadBatch(bufs, sizes)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rx.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			for i := range n {
				if bytes.Contains(bufs[i][:sizes[i]], []byte("drops-")) {
					read++
				}
			}
		}
		st := rx.Stats()
		sent := uint64(batch * batches)
		t.Logf("read %d, kernel drops %d of %d", read, st.RxKernelDrops, sent)
		if st.RxKernelDrops == 0 || uint64(read) >= sent {
			t.Fatalf("read %d of %d frames with %d kernel drops: the buffer should have overflowed", read, sent, st.RxKernelDrops)
		}
		// A few frames besides ours (ARP, neighbour discovery) may be
		// among the drops.
		if got := uint64(read) + st.RxKernelDrops; got < sent || got > sent+16 {
			t.Errorf("read %d + dropped %d = %d, want the %d frames sent", read, st.RxKernelDrops, got, sent)
		}
	})
}

// Frames lent by ReadInPlace stay readable after Close, until Release,
// which unmaps the ring; then reads fail.
func TestPrivilegedRingCloseWhileLent(t *testing.T) {
	l := newConnLab(t)
	filter, err := BuildFilter([]netip.Addr{l.b4})
	if err != nil {
		t.Fatal(err)
	}
	rx := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, IO: IORing})
	noIP, err := BuildFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: noIP})
	frame := l.frameTo(t, l.bMAC, []byte("lent-after-close"))
	if n, err := tx.WriteBatch([][]byte{frame}); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	views := make([][]byte, 4)
	n, err := rx.ReadInPlace(views)
	if err != nil || n != 1 {
		t.Fatalf("ReadInPlace = %d, %v; want 1 frame", n, err)
	}
	if err := rx.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(views[0], frame) {
		t.Fatalf("the lent frame after Close differs:\n got % x\nwant % x", views[0], frame)
	}
	rx.Release()
	if rx.ring.mem != nil {
		t.Error("the ring is still mapped after Close and Release")
	}
	if n, err := rx.ReadInPlace(views); err == nil {
		t.Errorf("ReadInPlace after Close = %d, nil; want an error", n)
	}
	if n, err := rx.ReadBatch(connBufs(1, 2048), make([]int, 1)); err == nil {
		t.Errorf("ReadBatch after Close = %d, nil; want an error", n)
	}
}

// IOAuto falls back to the socket when the kernel refuses the ring; IORing
// then fails.
func TestPrivilegedListenAutoFallsBack(t *testing.T) {
	l := newConnLab(t)
	filter, err := BuildFilter([]netip.Addr{l.b4})
	if err != nil {
		t.Fatal(err)
	}
	if c := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, IO: IOAuto}); c.IO() != IORingV2 {
		t.Errorf("IOAuto gave %s, want the ring this kernel has", c.IO())
	}
	refused := errors.New("set PACKET_RX_RING: refused by the test")
	setupRing = func(*PacketConn, int, int, int) error { return refused }
	setupRingV2 = setupRing
	defer func() { setupRing, setupRingV2 = (*PacketConn).setupRing, (*PacketConn).setupRingV2 }()
	c := listenIn(t, l.b, "veth1", ConnConfig{Filter: filter, IO: IOAuto})
	if c.IO() != IOSocket || c.InPlace() {
		t.Fatalf("IOAuto without a ring gave %s (in place %v), want the socket", c.IO(), c.InPlace())
	}
	noIP, err := BuildFilter(nil)
	if err != nil {
		t.Fatal(err)
	}
	tx := listenIn(t, l.a, "veth0", ConnConfig{Filter: noIP})
	if n, err := tx.WriteBatch([][]byte{l.frameTo(t, l.bMAC, []byte("fallback"))}); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	readUntil(t, c, []byte("fallback"))
	err = l.b.Run(func() error {
		c, err := Listen("veth1", ConnConfig{Filter: filter, IO: IORing})
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, refused) {
		t.Errorf("IORing without a ring: error %v, want %v", err, refused)
	}
}
