//go:build linux

package forwarder

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ListenGroup opens n PacketConns on ifname (Listen) for n workers, joined
// in one PACKET_FANOUT group of mode PACKET_FANOUT_CBPF with fanout, a
// BuildFanout program, deciding which socket gets each frame. The kernel
// picks the group's id, unique in the network namespace
// (PACKET_FANOUT_FLAG_UNIQUEID), so that two directors never share a
// group. Every socket has cfg's filter and memberships, and the backend
// the first one got (with IOAuto, the others take what it chose). n = 1
// is Listen: one socket, no group. The caller closes each PacketConn.
//
// A socket receives nothing before it is in the group (its filter rejects
// every frame until then): no frame is read twice.
func ListenGroup(ifname string, cfg ConnConfig, n int, fanout []bpf.RawInstruction) (_ []*PacketConn, err error) {
	if n < 1 {
		return nil, fmt.Errorf("listen on %s: %d sockets: want 1 or more", ifname, n)
	}
	first, err := Listen(ifname, cfg)
	if err != nil {
		return nil, err
	}
	conns := []*PacketConn{first}
	defer func() {
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
		}
	}()
	if n == 1 {
		return conns, nil
	}
	if len(fanout) == 0 {
		return nil, fmt.Errorf("listen on %s: fanout: empty program", ifname)
	}
	id, err := first.joinFanout(0, true)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", ifname, err)
	}
	if err := first.SetFanout(fanout); err != nil {
		return nil, err
	}
	filter := cfg.Filter
	if len(filter) == 0 {
		filter, _ = bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: bpfAccept}})
	}
	member := cfg
	member.IO = first.IO()
	member.Filter, _ = bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: bpfReject}})
	for range n - 1 {
		c, err := Listen(ifname, member)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		if _, err := c.joinFanout(id, false); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", ifname, err)
		}
		if err := c.SetFilter(filter); err != nil {
			return nil, err
		}
	}
	return conns, nil
}

// joinFanout joins the socket to fanout group id, or, with unique, to a
// new group whose id the kernel picks; it returns the group's id.
func (c *PacketConn) joinFanout(id uint16, unique bool) (uint16, error) {
	typ := unix.PACKET_FANOUT_CBPF
	if unique {
		typ |= unix.PACKET_FANOUT_FLAG_UNIQUEID
	}
	var got int
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_FANOUT, int(id)|typ<<16); serr != nil {
			serr = fmt.Errorf("join PACKET_FANOUT group: %w", serr)
			return
		}
		if got, serr = unix.GetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_FANOUT); serr != nil {
			serr = fmt.Errorf("read PACKET_FANOUT group: %w", serr)
		}
	})
	return uint16(got), errors.Join(err, serr)
}

// SetFanout replaces the fanout program of the socket's group (a
// BuildFanout program); any member may set it.
func (c *PacketConn) SetFanout(prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return fmt.Errorf("set fanout program on %s: empty program", c.ifname)
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &fp)
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("set fanout program on %s: %w", c.ifname, err)
	}
	return nil
}
