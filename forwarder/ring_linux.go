//go:build linux

package forwarder

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The receive ring's geometry. A TPACKET_V3 ring is made of blocks that the
// kernel fills with frames of any size, one after the other, and hands to
// udr whole: when the next frame does not fit, or when the block has held
// frames for ringBlockTimeout ms. Each hand-over wakes the reader, so
// larger blocks cost less CPU per frame, but they are handed over on the
// timeout rather than full under moderate load, which delays every frame.
// 16 KiB (8 full-size frames, ~100 of the minimum size) measured best of
// 4, 16 and 64 KiB in bench/README.md: 130-140 ns of the reader's CPU per
// 60-byte frame (170 with 4 KiB, 80 with 64 KiB), and the closed-loop
// round trips of the 4 KiB blocks (fewer with 64 KiB).
const (
	ringMinBlock     = 16 << 10
	ringFrameSize    = 2048 // the kernel's bookkeeping unit; frames are packed in V3
	ringBlockTimeout = 1    // ms
	ringMinBlocks    = 8
	// ringOverhead bounds the bytes of a block besides one frame: the
	// block descriptor, tpacket3_hdr, sockaddr_ll and alignment.
	ringOverhead = 256
)

// ringBlockFor returns the block size for an MTU: ringMinBlock, or the
// smallest power of two pages that holds a frame of that MTU with a VLAN
// tag. A larger frame (merged by GRO, see PacketConn) is cut and counted as
// truncated.
func ringBlockFor(mtu int) int {
	bs := max(os.Getpagesize(), ringMinBlock)
	for bs < mtu+ethHdrLen+vlanLen+ringOverhead {
		bs <<= 1
	}
	return bs
}

// tpacket3_hdr (tpacket2_hdr) is followed by the frame's sockaddr_ll at
// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) (of tpacket2_hdr).
const (
	ringSllOff     = (unix.SizeofTpacket3Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
	ringV2SllOff   = (unix.SizeofTpacket2Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
	ringSllEnd     = ringSllOff + unix.SizeofSockaddrLinklayer
	ringSllPktType = int(unsafe.Offsetof(unix.RawSockaddrLinklayer{}.Pkttype))
	ringPktType    = ringSllOff + ringSllPktType
	ringBlockHdr   = int(unsafe.Offsetof(unix.TpacketBlockDesc{}.Hdr))
)

// rxRing is a PacketConn's TPACKET_V3 receive ring and where reading is in
// it. It is guarded by the PacketConn's rmu.
type rxRing struct {
	mem       []byte // nil once unmapped
	v2        bool   // TPACKET_V2: each "block" is one frame's slot
	blocks    int
	blockSize int

	cur  int  // the block read next
	held int  // the first block not given back to the kernel
	open bool // cur is udr's, and left frames of it start at off
	left int
	off  int

	lent   bool // frames of the last ReadInPlace may be in use
	closed bool // Close ran: unmap once nothing is lent

	// The call in progress (see readState).
	frames [][]byte
	types  []PktType
	want   int
	n      int
	fn     func(fd uintptr) bool

	// ReadBatch's frames before they are copied.
	views [][]byte
}

// setupRing and setupRingV2 are the methods of those names; tests make
// them fail.
var (
	setupRing   = (*PacketConn).setupRing
	setupRingV2 = (*PacketConn).setupRingV2
)

// setupRing switches the socket fd to a TPACKET_V3 receive ring of about
// size bytes, maps it, and makes the socket bypass the qdisc layer on send.
func (c *PacketConn) setupRing(fd int, size, batch int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("set PACKET_VERSION TPACKET_V3: %w", err)
	}
	bs := ringBlockFor(c.mtu)
	blocks := max(size/bs, ringMinBlocks)
	req := unix.TpacketReq3{
		Block_size:     uint32(bs),
		Block_nr:       uint32(blocks),
		Frame_size:     ringFrameSize,
		Frame_nr:       uint32(blocks * (bs / ringFrameSize)),
		Retire_blk_tov: ringBlockTimeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("set PACKET_RX_RING: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, blocks*bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map the receive ring: %w", err)
	}
	// Best effort: without it (before Linux 3.14) frames go through the
	// qdisc layer as with the socket backend.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	c.ring = &rxRing{mem: mem, blocks: blocks, blockSize: bs, views: make([][]byte, batch)}
	c.ring.fn = c.ringFrames
	return nil
}

// setupRingV2 is setupRing with a TPACKET_V2 ring: fixed slots of one
// frame each, each handed to udr as soon as the kernel wrote it, so that no
// frame waits for a block to fill or time out; the reader is woken per frame
// when it waits, which costs CPU on a lightly loaded link.
func (c *PacketConn) setupRingV2(fd int, size, batch int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fmt.Errorf("set PACKET_VERSION TPACKET_V2: %w", err)
	}
	bs := ringBlockFor(c.mtu)
	fs := ringSlotFor(c.mtu)
	blocks := max(size/bs, ringMinBlocks)
	req := unix.TpacketReq{Block_size: uint32(bs), Block_nr: uint32(blocks), Frame_size: uint32(fs), Frame_nr: uint32(blocks * (bs / fs))}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("set PACKET_RX_RING: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, blocks*bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map the receive ring: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	c.ring = &rxRing{mem: mem, v2: true, blocks: blocks * (bs / fs), blockSize: fs, views: make([][]byte, batch)}
	c.ring.fn = c.ringFrames
	return nil
}

// ringSlotFor returns the V2 slot size for an MTU: a power of two that
// holds a frame of that MTU with a VLAN tag and the kernel's headers, at
// most ringBlockFor's block.
func ringSlotFor(mtu int) int {
	fs := ringFrameSize
	for fs < mtu+ethHdrLen+vlanLen+ringOverhead {
		fs <<= 1
	}
	return min(fs, ringBlockFor(mtu))
}

// InPlace implements InPlaceConn: it reports whether the PacketConn reads
// from a receive ring.
func (c *PacketConn) InPlace() bool { return c.ring != nil }

// IO returns the receive backend in use, IORing, IORingV2 or IOSocket.
func (c *PacketConn) IO() IO {
	switch {
	case c.ring == nil:
		return IOSocket
	case c.ring.v2:
		return IORingV2
	}
	return IORing
}

// ReadInPlace implements InPlaceConn; it fails on a PacketConn without a
// receive ring. Frames are kept, dropped and finished as ReadBatch does;
// a restored VLAN tag takes the place of the frame's headroom in the ring.
// It reads at most min(len(frames), BatchSize) frames.
func (c *PacketConn) ReadInPlace(frames [][]byte) (int, error) {
	return c.ReadInPlaceTypes(frames, nil)
}

// ReadInPlaceTypes is ReadInPlace that also stores each frame's packet type
// in types[i], when types is not nil. It reads at most len(types) frames.
func (c *PacketConn) ReadInPlaceTypes(frames [][]byte, types []PktType) (int, error) {
	if c.ring == nil {
		return 0, fmt.Errorf("read in place on %s: no receive ring", c.ifname)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	want := min(len(frames), len(c.ring.views))
	if types != nil {
		want = min(want, len(types))
	}
	n, err := c.readRing(frames, types, want)
	c.ring.lent = n > 0
	c.stats.rxFrames.Add(uint64(n))
	return n, err
}

// Release implements InPlaceConn.
func (c *PacketConn) Release() {
	if c.ring == nil {
		return
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.ring.lent = false
	c.ring.giveBack()
	if c.ring.closed {
		c.ring.unmap()
	}
}

// readRingCopy is ReadBatchTypes on a ring: it reads in place, then copies
// the frames into bufs, dropping (as truncated) those that do not fit.
func (c *PacketConn) readRingCopy(bufs [][]byte, sizes []int, types []PktType) (int, error) {
	r := c.ring
	want := min(len(bufs), len(sizes), len(r.views))
	if types != nil {
		want = min(want, len(types))
	}
	if want == 0 {
		return 0, nil
	}
	for {
		n, err := c.readRing(r.views, types, want)
		if err != nil {
			return 0, err
		}
		kept := 0
		for i, f := range r.views[:n] {
			if len(f) > len(bufs[kept]) {
				c.stats.rxTruncated.Add(1)
				continue
			}
			sizes[kept] = copy(bufs[kept], f)
			if types != nil {
				types[kept] = types[i]
			}
			kept++
		}
		clear(r.views[:n])
		r.giveBack()
		if kept > 0 {
			c.stats.rxFrames.Add(uint64(kept))
			return kept, nil
		}
	}
}

// readRing gives back the blocks of the previous read and reads up to want
// frames into frames (and types); the caller holds rmu.
func (c *PacketConn) readRing(frames [][]byte, types []PktType, want int) (int, error) {
	r := c.ring
	if r.closed || r.mem == nil {
		return 0, net.ErrClosed
	}
	r.giveBack()
	if want == 0 {
		return 0, nil
	}
	r.frames, r.types, r.want, r.n = frames, types, want, 0
	err := c.rc.Read(r.fn)
	n := r.n
	r.frames, r.types = nil, nil
	if err != nil && n == 0 {
		return 0, err
	}
	return n, nil
}

// ringFrames is the RawConn.Read callback of a ring: it takes frames from
// the blocks the kernel handed over, in order, until it has want or finds
// a block still the kernel's. It reports false, "wait for readability",
// only when it has no frame: the kernel signals readability when it hands
// over a block.
func (c *PacketConn) ringFrames(fd uintptr) bool {
	r := c.ring
	for r.n < r.want {
		if r.v2 {
			b := r.block(r.cur)
			if atomic.LoadUint32(r.status(b))&unix.TP_STATUS_USER == 0 {
				if r.n > 0 {
					return true
				}
				r.giveBack() // slots whose frames were all dropped
				return false
			}
			h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&b[0]))
			f, ok := c.keepFields(b, 0, ringV2SllOff, int(h.Mac), int(h.Snaplen), int(h.Len), h.Status, h.Vlan_tci, h.Vlan_tpid)
			if ok {
				r.frames[r.n] = f
				if r.types != nil {
					r.types[r.n] = PktType(b[ringV2SllOff+ringSllPktType])
				}
				r.n++
			}
			// The slot is given back with the frames lent.
			r.cur = (r.cur + 1) % r.blocks
			continue
		}
		if !r.open {
			b := r.block(r.cur)
			if atomic.LoadUint32(r.status(b))&unix.TP_STATUS_USER == 0 {
				if r.n > 0 {
					return true
				}
				// Blocks read to the end whose frames were all dropped
				// are nobody's: give them back before waiting.
				r.giveBack()
				return false
			}
			h := (*unix.TpacketHdrV1)(unsafe.Pointer(&b[ringBlockHdr]))
			r.open, r.left, r.off = true, int(h.Num_pkts), int(h.Offset_to_first_pkt)
		}
		if r.left == 0 {
			// Read to the end: it is given back with the frames lent.
			r.open = false
			r.cur = (r.cur + 1) % r.blocks
			continue
		}
		b := r.block(r.cur)
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&b[r.off]))
		f, ok := c.keepRing(b, r.off, h)
		if ok {
			r.frames[r.n] = f
			if r.types != nil {
				r.types[r.n] = PktType(b[r.off+ringPktType])
			}
			r.n++
		}
		r.left--
		r.off += int(h.Next_offset)
	}
	return true
}

// keepRing is keep for the frame at off in block b, described by h: it
// returns the finished frame in place, or false when it is dropped.
func (c *PacketConn) keepRing(b []byte, off int, h *unix.Tpacket3Hdr) ([]byte, bool) {
	return c.keepFields(b, off, ringSllOff, int(h.Mac), int(h.Snaplen), int(h.Len), h.Status, uint16(h.Hv1.Vlan_tci), h.Hv1.Vlan_tpid)
}

// keepFields is keepRing for a frame of either version, from its header's
// fields: its header at off in b, the header's sockaddr_ll at off+sll, the
// frame at off+macOff, snap of its n bytes in the ring.
func (c *PacketConn) keepFields(b []byte, off, sll, macOff, snap, n int, status uint32, tci, tpid uint16) ([]byte, bool) {
	if PktType(b[off+sll+ringSllPktType]) == PktOutgoing {
		c.stats.rxOutgoing.Add(1)
		return nil, false
	}
	mac := off + macOff
	if snap < n || n < ethHdrLen || mac+n > len(b) {
		c.stats.rxTruncated.Add(1)
		return nil, false
	}
	tagged := status&unix.TP_STATUS_VLAN_VALID != 0
	if tagged {
		// Move the MAC addresses down into the headroom the kernel
		// leaves in front of the frame, and insert the tag.
		if mac-vlanLen < off+sll+unix.SizeofSockaddrLinklayer {
			c.stats.rxTruncated.Add(1)
			return nil, false
		}
		copy(b[mac-vlanLen:mac-vlanLen+ethType], b[mac:mac+ethType])
		mac -= vlanLen
		n += vlanLen
		putTag(b[mac:mac+n], status, tci, tpid)
	}
	f := b[mac : mac+n : mac+n]
	if !c.finish(f, status, tagged) {
		return nil, false
	}
	return f, true
}

// block returns block i of the ring.
func (r *rxRing) block(i int) []byte {
	return r.mem[i*r.blockSize : (i+1)*r.blockSize : (i+1)*r.blockSize]
}

// status returns the block_status word of block b, or the tp_status of a
// V2 slot.
func (r *rxRing) status(b []byte) *uint32 {
	if r.v2 {
		return (*uint32)(unsafe.Pointer(&b[0]))
	}
	return (*uint32)(unsafe.Pointer(&b[ringBlockHdr]))
}

// giveBack returns to the kernel the blocks read to the end.
func (r *rxRing) giveBack() {
	if r.mem == nil {
		return
	}
	for r.held != r.cur {
		atomic.StoreUint32(r.status(r.block(r.held)), unix.TP_STATUS_KERNEL)
		r.held = (r.held + 1) % r.blocks
	}
}

// unmap unmaps the ring, once.
func (r *rxRing) unmap() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
}

// closeRing unmaps the ring when no frame of it is lent, or leaves it to
// Release; the socket is closed, so no read uses it again.
func (c *PacketConn) closeRing() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.ring.closed = true
	if !c.ring.lent {
		c.ring.unmap()
	}
}
