//go:build linux

package forwarder

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
