package director

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"

	"github.com/udr-lb/udr/internal/checksum"
)

// probe builds the frame that asks real server rip for its MAC: an ARP
// probe (RFC 5227 2.1.1: sender IP 0.0.0.0, so it needs no address of the
// director's and leaves the server's ARP cache alone) or, for IPv6, a
// neighbor solicitation from the unspecified address to the target's
// solicited-node group (RFC 4861 7.2.2). Linux answers both: the ARP probe
// with a reply to the asking MAC, the solicitation with an advertisement to
// all nodes. The pipeline learns the MAC from either answer.
func probe(ifMAC [6]byte, rip netip.Addr) ([]byte, error) {
	if rip.Is4() {
		p, err := arp.NewPacket(arp.OperationRequest, ifMAC[:], netip.IPv4Unspecified(), make(net.HardwareAddr, 6), rip)
		if err != nil {
			return nil, fmt.Errorf("arp probe for %s: %w", rip, err)
		}
		body, err := p.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("arp probe for %s: %w", rip, err)
		}
		b := make([]byte, 14+max(len(body), 46))
		copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(b[6:12], ifMAC[:])
		binary.BigEndian.PutUint16(b[12:], 0x0806)
		copy(b[14:], body)
		return b, nil
	}
	// No source link-layer option: RFC 4861 4.3 forbids it from ::.
	msg, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: rip})
	if err != nil {
		return nil, fmt.Errorf("neighbor solicitation for %s: %w", rip, err)
	}
	group, err := ndp.SolicitedNodeMulticast(rip)
	if err != nil {
		return nil, fmt.Errorf("neighbor solicitation for %s: %w", rip, err)
	}
	b := make([]byte, 14+40+len(msg))
	g := group.As16()
	copy(b[0:6], []byte{0x33, 0x33, g[12], g[13], g[14], g[15]})
	copy(b[6:12], ifMAC[:])
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(msg)))
	ip[6] = 58  // ICMPv6
	ip[7] = 255 // hop limit, as RFC 4861 7.1.1 requires
	copy(ip[24:40], g[:])
	copy(ip[40:], msg)
	binary.BigEndian.PutUint16(ip[42:], checksum.Finish(checksum.Add(checksum.Pseudo(ip[8:24], ip[24:40], 58, len(msg)), ip[40:])))
	return b, nil
}
