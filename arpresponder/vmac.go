package arpresponder

import "crypto/sha256"

// vmacDomain separates VirtualMAC's hash input from any other use of sha256
// over MACs; bump its version to change every derived MAC. Version 1 hashed
// the VIP set too, so that adding a service moved every VIP to a new MAC.
const vmacDomain = "udr virtual mac v2\x00"

// VirtualMAC returns udr's default VIP MAC for the interface whose MAC is
// ifMAC: a locally administered unicast address (first octet 02: U/L bit
// 0x02 set, I/G bit 0x01 clear, IEEE 802, the prefix operators know from
// other virtual MACs) that neither collides with vendor-assigned MACs nor
// is seen by the director's kernel as its own, so the kernel treats frames
// to it as PACKET_OTHERHOST instead of routing them a second time.
//
// The address is 02 followed by the first 5 bytes of
// sha256("udr virtual mac v2\x00" || ifMAC). It depends on the interface
// alone: every VIP of a director answers with it, adding or removing a VIP
// never moves the others, and a restart on the same interface gives the
// same address. Two directors (different ifMAC) get different ones, but
// for a chance of 2^-40.
func VirtualMAC(ifMAC [6]byte) [6]byte {
	h := sha256.New()
	h.Write([]byte(vmacDomain))
	h.Write(ifMAC[:])
	mac := [6]byte{0x02}
	copy(mac[1:], h.Sum(nil))
	return mac
}
