//go:build linux

package forwarder

import (
	"errors"
	"fmt"
	"net"
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
// frame). With ConnConfig.IO IORing, frames are received from a TPACKET_V3
// ring instead (ring_linux.go): no system call while frames are waiting,
// and ReadInPlace lends them where the kernel wrote them (InPlaceConn); a
// frame then waits up to 1 ms on a lightly loaded link (the block timeout).
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
	ring     *rxRing // the receive ring, with IORing
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
	rxFrames, rxOutgoing, rxTruncated, rxOversize, rxKernelDrops atomic.Uint64
	rxChecksumFixed, rxChecksumUnfixed, rxVLANRestored           atomic.Uint64
	txFrames, txOversize, txRunt, txNoBuffers                    atomic.Uint64
}

// Listen opens a PacketConn on the interface ifname of the calling
// thread's network namespace, receiving every EtherType (ETH_P_ALL) that
// cfg.Filter accepts, with the backend cfg.IO selects (IO tells which
// IOAuto chose). The caller must Close it.
func Listen(ifname string, cfg ConnConfig) (*PacketConn, error) {
	if cfg.IO == IOAuto {
		// The V2 ring: as cheap per frame as V3 under a flood, and no
		// block timeout to wait for on a quiet link (bench/README.md).
		cfg.IO = IORingV2
		c, err := listen(ifname, cfg)
		if err == nil {
			return c, nil
		}
		cfg.IO = IOSocket
		c, err2 := listen(ifname, cfg)
		if err2 != nil {
			return nil, err2
		}
		return c, nil
	}
	return listen(ifname, cfg)
}

func listen(ifname string, cfg ConnConfig) (*PacketConn, error) {
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
	if err := c.setup(ifi, cfg, batch); err != nil {
		c.Close()
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
func (c *PacketConn) setup(ifi *net.Interface, cfg ConnConfig, batch int) error {
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
		// A burst larger than the default receive buffer (212992 bytes,
		// ~300 frames) is dropped by the kernel before udr reads it.
		// SO_RCVBUFFORCE passes net.core.rmem_max for a privileged caller.
		rcvbuf := cfg.RecvBuffer
		if rcvbuf == 0 {
			rcvbuf = DefaultRecvBuffer
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
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
		switch cfg.IO {
		case IORing:
			serr = setupRing(c, s, rcvbuf, batch)
		case IORingV2:
			serr = setupRingV2(c, s, rcvbuf, batch)
		}
		if serr != nil {
			return
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

// Close implements Conn; it unblocks a pending ReadBatch. A receive ring
// is unmapped once the frames lent by ReadInPlace are released.
func (c *PacketConn) Close() error {
	err := c.pc.Close()
	if c.ring != nil {
		c.closeRing()
	}
	return err
}

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
	// PACKET_STATISTICS counts since the previous read: accumulate.
	if c.pc == nil {
		// A PacketConn without a socket (unit tests of the frame rules).
	} else if ks, err := c.pc.Stats(); err == nil {
		s.rxKernelDrops.Add(uint64(ks.Drops))
	}
	return ConnStats{
		RxKernelDrops:     s.rxKernelDrops.Load(),
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
