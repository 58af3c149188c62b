package arpresponder

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"slices"
)

// vmacDomain separates VirtualMAC's hash input from any other use of sha256
// over MACs and addresses; bump its version to change every derived MAC.
const vmacDomain = "udr virtual mac v1\x00"

// VirtualMAC returns udr's default VIP MAC: a locally administered unicast
// address (first octet: U/L bit 0x02 set, I/G bit 0x01 clear, IEEE 802)
// that neither collides with vendor-assigned MACs nor is seen by the
// director's kernel as its own, so the kernel treats frames to it as
// PACKET_OTHERHOST instead of routing them a second time.
//
// The address is the first 6 bytes of
// sha256("udr virtual mac v1\x00" || ifMAC || VIPs), the VIPs normalized
// as New does (IPv4-mapped as IPv4, zones dropped, invalid, unspecified and
// multicast addresses ignored), each written as 16 bytes (IPv4 in its
// IPv4-mapped form), sorted and without duplicates; then the two bits are
// forced. It is therefore stable across restarts and independent of VIP
// order and duplicates, and two directors (different ifMAC) never share it
// by design. It changes when the VIP set changes, so every change must be
// followed by announcements of all VIPs (Announcer.Reset) and by accepting
// the new MAC on the NIC; a caller that wants one MAC for the life of an
// interface passes no VIPs.
func VirtualMAC(ifMAC [6]byte, vips []netip.Addr) [6]byte {
	keys := make([][16]byte, 0, len(vips))
	for _, a := range vips {
		if a, ok := normalizeVIP(a); ok {
			keys = append(keys, a.As16())
		}
	}
	cmp := func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) }
	slices.SortFunc(keys, cmp)
	keys = slices.Compact(keys)

	h := sha256.New()
	h.Write([]byte(vmacDomain))
	h.Write(ifMAC[:])
	for _, k := range keys {
		h.Write(k[:])
	}
	var mac [6]byte
	copy(mac[:], h.Sum(nil))
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
