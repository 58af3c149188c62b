package forwarder

import (
	"encoding/binary"

	"github.com/udr-lb/udr/internal/checksum"
)

// Frames that a local sender hands to a veth (or any device offering
// checksum offload) are CHECKSUM_PARTIAL: the TCP or UDP checksum field
// holds only the pseudo-header sum, and the device is expected to finish
// it. An AF_PACKET socket on the peer receives them as they are (the
// kernel flags them TP_STATUS_CSUMNOTREADY in PACKET_AUXDATA); forwarded
// unchanged, the real server would drop every one of them. finishChecksum
// computes the checksum in full, so that the frame is valid on any wire.

// Checksum field offsets inside the transport header (RFC 793, RFC 768).
const (
	tcpChecksumOff = 16
	udpChecksumOff = 6
)

// finishChecksum writes the full TCP or UDP checksum (RFC 1071 over the
// RFC 793 / RFC 768 / RFC 8200 §8.1 pseudo-header) of the IPv4 or IPv6
// packet in the Ethernet frame b, which may carry up to two 802.1Q/802.1ad
// tags. It reports whether it did: a frame that is not TCP or UDP, is a
// fragment, carries an IPv6 routing header (whose pseudo-header uses the
// final destination) or is truncated is left untouched. The checksum field
// is ignored on input, so any partial value there is fine. It does not
// allocate.
func finishChecksum(b []byte) bool {
	off := ethHdrLen
	if len(b) < off {
		return false
	}
	et := binary.BigEndian.Uint16(b[ethType:])
	for tags := 0; tags < 2 && (et == etherTypeVLAN || et == etherTypeQinQ); tags++ {
		if len(b) < off+vlanLen {
			return false
		}
		et = binary.BigEndian.Uint16(b[off+2:])
		off += vlanLen
	}

	var (
		addrs    []byte // source and destination, as the pseudo-header has them
		l4, end  int
		protocol uint8
	)
	switch et {
	case etherTypeIPv4:
		if len(b) < off+ipv4MinLen || b[off]>>4 != 4 {
			return false
		}
		ihl := int(b[off]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[off+2:]))
		if ihl < ipv4MinLen || total < ihl || off+total > len(b) {
			return false
		}
		if binary.BigEndian.Uint16(b[off+6:])&0x3fff != 0 { // MF or a fragment offset
			return false
		}
		protocol = b[off+9]
		l4, end = off+ihl, off+total
		addrs = b[off+12 : off+20]
	case etherTypeIPv6:
		if len(b) < off+ipv6HdrLen || b[off]>>4 != 6 {
			return false
		}
		end = off + ipv6HdrLen + int(binary.BigEndian.Uint16(b[off+4:]))
		if end > len(b) {
			return false
		}
		protocol = b[off+6]
		l4 = off + ipv6HdrLen
		for ext := 0; ext < maxExtHdrs && (protocol == ipv6HopByHop || protocol == ipv6DestOpts); ext++ {
			if l4+2 > end {
				return false
			}
			protocol = b[l4]
			l4 += (int(b[l4+1]) + 1) * 8
		}
		addrs = b[off+8 : off+40]
	default:
		return false
	}

	var field int
	switch {
	case protocol == protoTCP && end-l4 >= tcpMinLen:
		field = l4 + tcpChecksumOff
	case protocol == protoUDP && end-l4 >= udpHdrLen:
		field = l4 + udpChecksumOff
	default:
		return false
	}
	half := len(addrs) / 2
	b[field], b[field+1] = 0, 0
	c := checksum.Finish(checksum.Add(checksum.Pseudo(addrs[:half], addrs[half:], protocol, end-l4), b[l4:end]))
	if c == 0 && protocol == protoUDP {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(b[field:], c)
	return true
}
