//go:build linux

package forwarder

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
	if c.ring != nil {
		return c.readRingCopy(bufs, sizes, types)
	}
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
	tagged := status&unix.TP_STATUS_VLAN_VALID != 0
	if tagged {
		if n+vlanLen > len(b) {
			c.stats.rxTruncated.Add(1)
			return 0, false
		}
		// Move the EtherType and payload up and insert the tag.
		copy(b[ethType+vlanLen:n+vlanLen], b[ethType:n])
		putTag(b, status, tci, tpid)
		n += vlanLen
	}
	if !c.finish(b[:n], status, tagged) {
		return 0, false
	}
	return n, true
}

// putTag writes the 802.1Q tag of PACKET_AUXDATA or tpacket3_hdr at the
// EtherType of b, with the TPID the kernel gives, or 0x8100.
func putTag(b []byte, status uint32, tci, tpid uint16) {
	if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
		tpid = etherTypeVLAN
	}
	binary.BigEndian.PutUint16(b[ethType:], tpid)
	binary.BigEndian.PutUint16(b[ethType+2:], tci)
}

// finish applies the last rules of keep to frame b, whose VLAN tag the
// kernel stripped and the caller restored when tagged: it drops a frame
// longer than the MTU allows, and completes a partial checksum.
func (c *PacketConn) finish(b []byte, status uint32, tagged bool) bool {
	limit := c.mtu + ethHdrLen
	if tagged {
		limit += vlanLen
		c.stats.rxVLANRestored.Add(1)
	} else if et := binary.BigEndian.Uint16(b[ethType:]); et == etherTypeVLAN || et == etherTypeQinQ {
		limit += vlanLen
	}
	if len(b) > limit {
		c.stats.rxOversize.Add(1)
		return false
	}
	if status&unix.TP_STATUS_CSUMNOTREADY != 0 {
		if finishChecksum(b) {
			c.stats.rxChecksumFixed.Add(1)
		} else {
			c.stats.rxChecksumUnfixed.Add(1)
		}
	}
	return true
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
