package forwarder

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Conn reads and writes Ethernet frames in batches into caller-owned
// buffers, in the shape of wireguard-go's tun.Device: one system call moves
// a whole batch, and no call allocates.
type Conn interface {
	// ReadBatch blocks until at least one frame is available, then reads up
	// to min(len(bufs), len(sizes)) frames: frame i is bufs[i][:sizes[i]].
	// It returns the number of frames read.
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	// WriteBatch sends the frames in bufs, each a complete Ethernet frame,
	// and returns the number of frames it consumed (sent, or dropped and
	// counted); on error, bufs[n:] were not sent.
	WriteBatch(bufs [][]byte) (int, error)
	// Close closes the Conn and unblocks a pending ReadBatch.
	Close() error
}

// InPlaceConn is a Conn that can lend the frames it read in its own
// memory, such as a PacketConn with a receive ring: the Worker decides and
// sends them where they are, without a copy.
type InPlaceConn interface {
	Conn
	// InPlace reports whether ReadInPlace is supported; when false, the
	// caller uses ReadBatch.
	InPlace() bool
	// ReadInPlace blocks until at least one frame is available, then sets
	// frames[i] to up to len(frames) frames in the Conn's memory, which
	// the caller may rewrite in place (not beyond their length) and pass
	// to WriteBatch. They stay valid until Release, the next ReadInPlace
	// or ReadBatch, which give them back to the Conn. It returns the
	// number of frames read.
	ReadInPlace(frames [][]byte) (int, error)
	// Release gives back the frames of the last ReadInPlace.
	Release()
}

// IO selects how a PacketConn receives frames.
type IO uint8

// PacketConn receive backends. The zero value is IOSocket.
const (
	// IOSocket reads with recvmmsg(2) into the caller's buffers.
	IOSocket IO = iota
	// IORing reads from a TPACKET_V3 receive ring shared with the
	// kernel, where frames can be decided in place (InPlaceConn).
	IORing
	// IOAuto is IORingV2 when the kernel sets up the ring, IOSocket
	// otherwise.
	IOAuto
	// IORingV2 reads from a TPACKET_V2 ring, in place too: each frame is
	// handed over as soon as the kernel wrote it, where IORing's V3 blocks
	// wait to be full or for their 1 ms timeout; a waiting reader is
	// woken per frame rather than per block (bench/README.md).
	IORingV2
)

// ParseIO parses "socket", "ring", "ring-v2" or "auto" ("" is "auto").
func ParseIO(s string) (IO, error) {
	switch s {
	case "socket":
		return IOSocket, nil
	case "ring":
		return IORing, nil
	case "auto", "":
		return IOAuto, nil
	case "ring-v2":
		return IORingV2, nil
	}
	return 0, fmt.Errorf("io %q: want ring, ring-v2, socket or auto", s)
}

func (m IO) String() string {
	switch m {
	case IOSocket:
		return "socket"
	case IORing:
		return "ring"
	case IOAuto:
		return "auto"
	case IORingV2:
		return "ring-v2"
	}
	return fmt.Sprintf("IO(%d)", uint8(m))
}

// DefaultBatchSize is the number of frames a PacketConn moves per system
// call when ConnConfig.BatchSize is zero.
const DefaultBatchSize = 64

// DefaultRecvBuffer is the receive buffer of a PacketConn: about 10,000
// full-size frames queued while the worker is busy.
const DefaultRecvBuffer = 32 << 20

// maxBatchSize is the kernel's UIO_MAXIOV, the largest vlen recvmmsg(2) and
// sendmmsg(2) accept.
const maxBatchSize = 1024

// ConnConfig configures a PacketConn. The zero value receives every frame
// the interface delivers, with batches of DefaultBatchSize.
type ConnConfig struct {
	// Filter is a classic BPF program (see BuildFilter) installed before
	// the socket is bound, so that no unfiltered frame is ever queued.
	// Nil accepts every frame.
	Filter []bpf.RawInstruction
	// Promisc puts the interface in promiscuous mode for the socket's
	// lifetime (PACKET_MR_PROMISC).
	Promisc bool
	// ExtraMACs are unicast addresses the interface must accept besides
	// its own, such as the VIPs' virtual MAC: each becomes a
	// PACKET_MR_UNICAST membership, released when the socket closes. When
	// the kernel refuses one, the socket falls back to promiscuous mode.
	ExtraMACs [][6]byte
	// BatchSize is the most frames one ReadBatch or WriteBatch system call
	// moves; zero means DefaultBatchSize, and it is capped at 1024.
	BatchSize int
	// RecvBuffer is the socket's receive buffer in bytes; zero means
	// DefaultRecvBuffer.
	RecvBuffer int
	// IO selects the receive backend; with IORing, RecvBuffer is the size
	// of the ring. Frames are sent with sendmmsg(2) either way, bypassing
	// the qdisc layer (PACKET_QDISC_BYPASS) with a ring.
	IO IO

	// keepOutgoing leaves PACKET_IGNORE_OUTGOING off, so that tests
	// exercise the fallback that drops PACKET_OUTGOING frames by type.
	keepOutgoing bool
}

// PktType is the sll_pkttype of a received frame (linux/if_packet.h): how
// the kernel classified its destination MAC.
type PktType uint8

// Packet types. udr's VIP traffic goes to a virtual MAC that the kernel
// classifies as PktOtherHost.
const (
	PktHost      PktType = 0 // to the interface's own MAC
	PktBroadcast PktType = 1
	PktMulticast PktType = 2
	PktOtherHost PktType = 3 // to another unicast MAC
	PktOutgoing  PktType = 4 // sent by this host; never returned
)

// ConnStats counts what a PacketConn did with frames besides moving them.
// Counts are totals since Listen.
type ConnStats struct {
	RxFrames uint64 // frames returned by ReadBatch
	// RxKernelDrops counts frames the kernel dropped because the socket's
	// receive buffer was full (PACKET_STATISTICS tp_drops).
	RxKernelDrops uint64
	// RxOutgoing counts this host's own output, dropped (only seen when
	// the kernel lacks PACKET_IGNORE_OUTGOING, before Linux 4.20).
	RxOutgoing uint64
	// RxTruncated counts frames larger than the buffer they were read into
	// (with their VLAN tag restored), dropped.
	RxTruncated uint64
	// RxOversize counts frames longer than the MTU allows, dropped: merged
	// by GRO/LRO, they could not be sent on (see internal/host.DisableOffloads).
	RxOversize uint64
	// RxChecksumFixed counts CHECKSUM_PARTIAL frames whose TCP or UDP
	// checksum was completed; RxChecksumUnfixed those whose checksum could
	// not be (not TCP/UDP, fragments), returned as they came.
	RxChecksumFixed   uint64
	RxChecksumUnfixed uint64
	// RxVLANRestored counts frames whose 802.1Q tag, stripped by the
	// kernel, was put back into the frame.
	RxVLANRestored uint64

	TxFrames uint64 // frames handed to the kernel
	// TxOversize counts frames longer than the MTU allows, and TxRunt
	// frames shorter than an Ethernet header: dropped unsent.
	TxOversize uint64
	TxRunt     uint64
	// TxNoBuffers counts frames the kernel dropped because the device
	// queue was full (ENOBUFS).
	TxNoBuffers uint64
}

// Add adds o's counts to s: the sockets of several workers.
func (s *ConnStats) Add(o ConnStats) {
	s.RxFrames += o.RxFrames
	s.RxKernelDrops += o.RxKernelDrops
	s.RxOutgoing += o.RxOutgoing
	s.RxTruncated += o.RxTruncated
	s.RxOversize += o.RxOversize
	s.RxChecksumFixed += o.RxChecksumFixed
	s.RxChecksumUnfixed += o.RxChecksumUnfixed
	s.RxVLANRestored += o.RxVLANRestored
	s.TxFrames += o.TxFrames
	s.TxOversize += o.TxOversize
	s.TxRunt += o.TxRunt
	s.TxNoBuffers += o.TxNoBuffers
}
