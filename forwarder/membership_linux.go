//go:build linux

package forwarder

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// AddUnicastMAC makes the interface accept frames to mac as well
// (PACKET_ADD_MEMBERSHIP, PACKET_MR_UNICAST), as Listen does for
// ConnConfig.ExtraMACs; when the kernel refuses, the interface goes
// promiscuous. It is for a VIP MAC that changed after Listen.
func (c *PacketConn) AddUnicastMAC(mac [6]byte) error {
	ifi, err := net.InterfaceByName(c.ifname)
	if err != nil {
		return fmt.Errorf("add unicast mac on %s: %w", c.ifname, err)
	}
	var serr error
	err = c.rc.Control(func(fd uintptr) {
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_UNICAST, Alen: 6}
		copy(mreq.Address[:], mac[:])
		serr = unix.SetsockoptPacketMreq(int(fd), unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq)
	})
	if err == nil && serr != nil && !c.promisc {
		if err = c.pc.SetPromiscuous(true); err == nil {
			c.promisc = true
		}
	}
	if err != nil {
		return fmt.Errorf("add unicast mac on %s: %w", c.ifname, err)
	}
	return nil
}
