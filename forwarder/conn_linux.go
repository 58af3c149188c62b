//go:build linux

package forwarder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// PacketConn is the live Conn: an AF_PACKET SOCK_RAW socket bound to one
// interface. mdlayher/packet sets it up; frames then move through the raw
// file descriptor with recvmmsg(2) and sendmmsg(2), whose message arrays
// are allocated once in Listen, so that a batch costs one system call and
// no allocation (packet.Conn's ReadFrom and WriteTo allocate an address per
// frame).
//
// Frames are returned as they were on the wire:
//   - The socket never sees its own output (PACKET_IGNORE_OUTGOING, with a
//     drop by packet type as the fallback).
//   - A VLAN tag that the kernel moved to metadata is put back (from
//     PACKET_AUXDATA), as libpcap does, so the frame can be sent on with it.
//   - A TCP or UDP checksum left unfinished by a local sender on a veth
//     (TP_STATUS_CSUMNOTREADY) is completed in place (see finishChecksum).
//
// Offloads: the socket does not use PACKET_VNET_HDR. A vnet header would
// let the kernel re-segment merged (GRO/LRO) frames on send, but it puts a
// 10-byte header in front of every frame of every caller's buffer and of
// the ring and pcap backends. udr instead turns GRO and LRO off on its
// interface (internal/host.DisableOffloads), and drops and counts any frame
// larger than the MTU on receive and on send: a frame is never sent broken.
//
// ReadBatch and WriteBatch may run concurrently with each other; each is
// serialised with itself.
type PacketConn struct {
	pc       *packet.Conn
	rc       syscall.RawConn
	mtu      int
	promisc  bool
	ifname   string
	rmu, wmu sync.Mutex
	r        readState
	w        writeState
	stats    connCounters
}

var _ Conn = (*PacketConn)(nil)

// auxSpace is the control buffer of one message: one PACKET_AUXDATA
// message (struct tpacket_auxdata).
var auxSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{})))

// readState is ReadBatch's preallocated message array and the arguments of
// the call in progress, which readFrames reads (a closure would allocate).
type readState struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrLinklayer
	ctrl  []byte // auxSpace bytes per message

	bufs  [][]byte
	sizes []int
	types []PktType
	want  int // messages to ask for
	n     int // frames kept
	err   error
	fn    func(fd uintptr) bool // c.readFrames, bound once
}

// writeState is WriteBatch's counterpart of readState.
type writeState struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	index []int // msgs[i] sends bufs[index[i]]

	bufs    [][]byte
	next    int // first frame of bufs not yet consumed
	scanned int // frames of bufs already checked for size (and counted)
	err     error
	fn      func(fd uintptr) bool
}

// connCounters backs ConnStats; counters are updated once per batch or per
// (rare) drop, and read from any goroutine.
type connCounters struct {
	rxFrames, rxOutgoing, rxTruncated, rxOversize      atomic.Uint64
	rxChecksumFixed, rxChecksumUnfixed, rxVLANRestored atomic.Uint64
	txFrames, txOversize, txRunt, txNoBuffers          atomic.Uint64
}

// Listen opens a PacketConn on the interface ifname of the calling
// thread's network namespace, receiving every EtherType (ETH_P_ALL) that
// cfg.Filter accepts. The caller must Close it.
func Listen(ifname string, cfg ConnConfig) (*PacketConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", ifname, err)
	}
	batch := cfg.BatchSize
	switch {
	case batch < 0:
		return nil, fmt.Errorf("listen on %s: batch size %d: want 0 (default) or more", ifname, batch)
	case batch == 0:
		batch = DefaultBatchSize
	case batch > maxBatchSize:
		batch = maxBatchSize
	}
	pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: cfg.Filter})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", ifname, err)
	}
	c := &PacketConn{pc: pc, mtu: ifi.MTU, ifname: ifname}
	if err := c.setup(ifi, cfg); err != nil {
		pc.Close()
		return nil, fmt.Errorf("listen on %s: %w", ifname, err)
	}
	c.r = readState{
		msgs:  make([]unix.Mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrLinklayer, batch),
		ctrl:  make([]byte, batch*auxSpace),
	}
	c.r.fn = c.readFrames
	c.w = writeState{
		msgs:  make([]unix.Mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		index: make([]int, batch),
	}
	c.w.fn = c.writeFrames
	return c, nil
}

// setup sets the socket options and memberships.
func (c *PacketConn) setup(ifi *net.Interface, cfg ConnConfig) error {
	rc, err := c.pc.SyscallConn()
	if err != nil {
		return err
	}
	c.rc = rc
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if serr = unix.SetsockoptInt(s, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); serr != nil {
			serr = fmt.Errorf("set PACKET_AUXDATA: %w", serr)
			return
		}
		if !cfg.keepOutgoing {
			// Linux 4.20+; older kernels answer ENOPROTOOPT and readFrames
			// drops PACKET_OUTGOING frames instead.
			err := unix.SetsockoptInt(s, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
			if err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
				serr = fmt.Errorf("set PACKET_IGNORE_OUTGOING: %w", err)
				return
			}
		}
		for _, mac := range cfg.ExtraMACs {
			mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_UNICAST, Alen: 6}
			copy(mreq.Address[:], mac[:])
			if unix.SetsockoptPacketMreq(s, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq) != nil {
				cfg.Promisc = true // the kernel refused: accept every MAC instead
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	if cfg.Promisc {
		if err := c.pc.SetPromiscuous(true); err != nil {
			return fmt.Errorf("set promiscuous mode: %w", err)
		}
		c.promisc = true
	}
	return nil
}

// ReadBatch implements Conn. bufs[i] must be non-empty; a buffer of MTU+18
// bytes holds any frame that can be forwarded. ReadBatch reorders the
// slices inside bufs when it drops a frame, so that bufs[:n] hold the n
// frames read.
func (c *PacketConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return c.ReadBatchTypes(bufs, sizes, nil)
}

// ReadBatchTypes is ReadBatch that also stores each frame's packet type in
// types[i], when types is not nil. It reads at most len(types) frames.
func (c *PacketConn) ReadBatchTypes(bufs [][]byte, sizes []int, types []PktType) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	r := &c.r
	want := min(len(bufs), len(sizes), len(r.msgs))
	if types != nil {
		want = min(want, len(types))
	}
	if want == 0 {
		return 0, nil
	}
	r.bufs, r.sizes, r.types, r.want, r.n, r.err = bufs, sizes, types, want, 0, nil
	err := c.rc.Read(r.fn)
	n := r.n
	if err == nil {
		err = r.err
	}
	r.bufs, r.sizes, r.types, r.err = nil, nil, nil, nil // retain no caller memory
	if err != nil {
		return 0, err
	}
	c.stats.rxFrames.Add(uint64(n))
	return n, nil
}

// readFrames is the RawConn.Read callback: it receives one batch, keeps the
// frames that pass (see keep) and reports false, "wait for readability",
// only on EAGAIN. Looping after a batch whose frames were all dropped
// matters: the poller is edge-triggered, so waiting while data is queued
// could stall until the next frame.
func (c *PacketConn) readFrames(fd uintptr) bool {
	r := &c.r
	for {
		for i := range r.want {
			b := r.bufs[i]
			r.iovs[i].Base = unsafe.SliceData(b)
			r.iovs[i].SetLen(len(b))
			m := &r.msgs[i]
			m.Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
			m.Hdr.Namelen = unix.SizeofSockaddrLinklayer
			m.Hdr.Iov = &r.iovs[i]
			m.Hdr.Iovlen = 1
			m.Hdr.Control = &r.ctrl[i*auxSpace]
			m.Hdr.SetControllen(auxSpace)
			m.Hdr.Flags = 0
			m.Len = 0
		}
		got, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(r.want), 0, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			continue
		default:
			r.err = os.NewSyscallError("recvmmsg", errno)
			return true
		}
		kept := 0
		for i := range int(got) {
			size, ok := c.keep(i)
			if !ok {
				continue
			}
			if i != kept {
				r.bufs[i], r.bufs[kept] = r.bufs[kept], r.bufs[i]
			}
			r.sizes[kept] = size
			if r.types != nil {
				r.types[kept] = PktType(r.names[i].Pkttype)
			}
			kept++
		}
		if kept > 0 {
			r.n = kept
			return true
		}
	}
}

// keep finishes message i's frame in place and returns its final size and
// whether ReadBatch returns it: it drops our own output, truncated frames
// and frames too large to forward; it restores the VLAN tag and completes
// a partial checksum.
func (c *PacketConn) keep(i int) (int, bool) {
	r := &c.r
	m := &r.msgs[i]
	b := r.bufs[i]
	n := int(m.Len)
	if PktType(r.names[i].Pkttype) == PktOutgoing {
		c.stats.rxOutgoing.Add(1)
		return 0, false
	}
	if m.Hdr.Flags&unix.MSG_TRUNC != 0 || n < ethHdrLen {
		c.stats.rxTruncated.Add(1)
		return 0, false
	}
	status, tci, tpid := auxdata(r.ctrl[i*auxSpace:], int(m.Hdr.Controllen))
	limit := c.mtu + ethHdrLen
	if status&unix.TP_STATUS_VLAN_VALID != 0 {
		if n+vlanLen > len(b) {
			c.stats.rxTruncated.Add(1)
			return 0, false
		}
		if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
			tpid = etherTypeVLAN
		}
		// Move the EtherType and payload up and insert the tag.
		copy(b[ethType+vlanLen:n+vlanLen], b[ethType:n])
		binary.BigEndian.PutUint16(b[ethType:], tpid)
		binary.BigEndian.PutUint16(b[ethType+2:], tci)
		n += vlanLen
		limit += vlanLen
		c.stats.rxVLANRestored.Add(1)
	} else if et := binary.BigEndian.Uint16(b[ethType:]); et == etherTypeVLAN || et == etherTypeQinQ {
		limit += vlanLen
	}
	if n > limit {
		c.stats.rxOversize.Add(1)
		return 0, false
	}
	if status&unix.TP_STATUS_CSUMNOTREADY != 0 {
		if finishChecksum(b[:n]) {
			c.stats.rxChecksumFixed.Add(1)
		} else {
			c.stats.rxChecksumUnfixed.Add(1)
		}
	}
	return n, true
}

// auxdata returns the tp_status, tp_vlan_tci and tp_vlan_tpid of the
// PACKET_AUXDATA control message in ctrl[:n], or zeros.
func auxdata(ctrl []byte, n int) (status uint32, tci, tpid uint16) {
	hdrLen := unix.CmsgLen(0)
	for off := 0; off+hdrLen <= n; {
		// The kernel aligns control messages; ctrl is a per-message slot
		// of auxSpace bytes in a buffer aligned by the allocator.
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[off]))
		if int(h.Len) < hdrLen || off+int(h.Len) > n {
			break
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.TpacketAuxdata{}))) {
			a := (*unix.TpacketAuxdata)(unsafe.Pointer(&ctrl[off+hdrLen]))
			return a.Status, a.Vlan_tci, a.Vlan_tpid
		}
		off += unix.CmsgSpace(int(h.Len) - hdrLen)
	}
	return 0, 0, 0
}

// WriteBatch implements Conn. Frames longer than the MTU allows (plus 4
// bytes when VLAN-tagged) or shorter than an Ethernet header are dropped
// unsent and counted, as are frames the kernel drops for a full device
// queue; they count as consumed.
func (c *PacketConn) WriteBatch(bufs [][]byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := &c.w
	w.bufs, w.next, w.scanned, w.err = bufs, 0, 0, nil
	err := c.rc.Write(w.fn)
	n := w.next
	if err == nil {
		err = w.err
	}
	w.bufs, w.err = nil, nil
	return n, err
}

// writeFrames is the RawConn.Write callback: it sends bufs[next:] in
// batches and reports false, "wait for writability", only on EAGAIN.
func (c *PacketConn) writeFrames(fd uintptr) bool {
	w := &c.w
	for w.next < len(w.bufs) {
		k := 0
		for j := w.next; j < len(w.bufs) && k < len(w.msgs); j++ {
			if !c.sendable(w.bufs[j], j >= w.scanned) {
				if k == 0 {
					w.next = j + 1
				}
				continue
			}
			b := w.bufs[j]
			w.iovs[k].Base = unsafe.SliceData(b)
			w.iovs[k].SetLen(len(b))
			// No address: the socket's interface and ETH_P_ALL apply, and
			// the kernel takes the protocol from the frame.
			w.msgs[k].Hdr = unix.Msghdr{Iov: &w.iovs[k], Iovlen: 1}
			w.index[k] = j
			k++
		}
		if k == 0 {
			break // every remaining frame was dropped
		}
		w.scanned = max(w.scanned, w.index[k-1]+1)
		sent, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[0])), uintptr(k), 0, 0, 0)
		switch errno {
		case 0:
			c.stats.txFrames.Add(uint64(sent))
			w.next = w.index[sent-1] + 1
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		case unix.ENOBUFS:
			// The device queue is full and the kernel dropped the first
			// frame; go on as a congested NIC would.
			c.stats.txNoBuffers.Add(1)
			w.next = w.index[0] + 1
		default:
			w.next = w.index[0]
			w.err = os.NewSyscallError("sendmmsg", errno)
			return true
		}
	}
	return true
}

// sendable reports whether b fits the interface; count says whether a
// drop is counted (the frame was not seen by an earlier pass).
func (c *PacketConn) sendable(b []byte, count bool) bool {
	if len(b) < ethHdrLen {
		if count {
			c.stats.txRunt.Add(1)
		}
		return false
	}
	limit := c.mtu + ethHdrLen
	if et := binary.BigEndian.Uint16(b[ethType:]); et == etherTypeVLAN || et == etherTypeQinQ {
		limit += vlanLen
	}
	if len(b) > limit {
		if count {
			c.stats.txOversize.Add(1)
		}
		return false
	}
	return true
}

// Close implements Conn; it unblocks a pending ReadBatch.
func (c *PacketConn) Close() error { return c.pc.Close() }

// SetFilter atomically replaces the socket's BPF filter, e.g. with a new
// BuildFilter program when the VIPs change; nil is not accepted.
func (c *PacketConn) SetFilter(filter []bpf.RawInstruction) error {
	if len(filter) == 0 {
		return fmt.Errorf("set filter on %s: empty program", c.ifname)
	}
	return c.pc.SetBPF(filter)
}

// SetReadDeadline makes a blocked or future ReadBatch fail with an error
// wrapping os.ErrDeadlineExceeded after t; the zero time disables it.
func (c *PacketConn) SetReadDeadline(t time.Time) error { return c.pc.SetReadDeadline(t) }

// Promiscuous reports whether the socket holds the interface in
// promiscuous mode: asked for, or the fallback for a refused ExtraMACs
// membership.
func (c *PacketConn) Promiscuous() bool { return c.promisc }

// Stats returns the counters; it is safe to call concurrently with I/O.
func (c *PacketConn) Stats() ConnStats {
	s := &c.stats
	return ConnStats{
		RxFrames:          s.rxFrames.Load(),
		RxOutgoing:        s.rxOutgoing.Load(),
		RxTruncated:       s.rxTruncated.Load(),
		RxOversize:        s.rxOversize.Load(),
		RxChecksumFixed:   s.rxChecksumFixed.Load(),
		RxChecksumUnfixed: s.rxChecksumUnfixed.Load(),
		RxVLANRestored:    s.rxVLANRestored.Load(),
		TxFrames:          s.txFrames.Load(),
		TxOversize:        s.txOversize.Load(),
		TxRunt:            s.txRunt.Load(),
		TxNoBuffers:       s.txNoBuffers.Load(),
	}
}
