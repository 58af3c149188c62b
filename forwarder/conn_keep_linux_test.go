//go:build linux

package forwarder

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// received is one message as recvmmsg would leave it for keep.
type received struct {
	frame   []byte // the bytes the kernel copied
	bufLen  int    // the caller's buffer
	pkttype PktType
	trunc   bool
	aux     bool // a PACKET_AUXDATA message is present
	status  uint32
	tci     uint16
	tpid    uint16
	// tight leaves the ring's frame 2 bytes of headroom after its
	// sockaddr_ll, too few for a tag.
	tight bool
}

// keepOne runs keep on m as message 0 of a PacketConn with a 1500-byte MTU.
func keepOne(t *testing.T, m received) (frame []byte, ok bool, st ConnStats) {
	t.Helper()
	c := &PacketConn{mtu: 1500}
	c.r = readState{
		msgs:  make([]unix.Mmsghdr, 1),
		names: make([]unix.RawSockaddrLinklayer, 1),
		ctrl:  make([]byte, auxSpace),
	}
	buf := make([]byte, max(m.bufLen, len(m.frame)))
	copy(buf, m.frame)
	c.r.bufs = [][]byte{buf[:m.bufLen]}
	c.r.msgs[0].Len = uint32(len(m.frame))
	c.r.names[0].Pkttype = uint8(m.pkttype)
	if m.trunc {
		c.r.msgs[0].Hdr.Flags = unix.MSG_TRUNC
	}
	if m.aux {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c.r.ctrl[0]))
		h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
		h.SetLen(unix.CmsgLen(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
		a := (*unix.TpacketAuxdata)(unsafe.Pointer(&c.r.ctrl[unix.CmsgLen(0)]))
		*a = unix.TpacketAuxdata{Status: m.status, Vlan_tci: m.tci, Vlan_tpid: m.tpid, Len: uint32(len(m.frame))}
		c.r.msgs[0].Hdr.SetControllen(auxSpace)
	}
	n, ok := c.keep(0)
	return c.r.bufs[0][:n], ok, c.Stats()
}

// keepRingOne runs keepRing on m laid out in a ring block as the kernel
// lays out a SOCK_RAW frame, for a PacketConn with a 1500-byte MTU: the
// caller's buffer size does not apply; trunc is a snaplen shorter than the
// frame.
func keepRingOne(t *testing.T, m received) (frame []byte, ok bool, st ConnStats) {
	t.Helper()
	c := &PacketConn{mtu: 1500}
	b := make([]byte, 8192)
	const off = 48 // a frame after the block header
	mac := 82      // TPACKET_ALIGN(tp_hdrlen + 16) - 14
	if m.tight {
		mac = ringSllEnd + 2
	}
	h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&b[off]))
	copy(b[off+mac:], m.frame)
	h.Mac, h.Snaplen, h.Len = uint16(mac), uint32(len(m.frame)), uint32(len(m.frame))
	if m.trunc {
		h.Len += 100
	}
	b[off+ringPktType] = uint8(m.pkttype)
	h.Status, h.Hv1.Vlan_tci, h.Hv1.Vlan_tpid = m.status, uint32(m.tci), m.tpid
	f, ok := c.keepRing(b, off, h)
	return f, ok, c.Stats()
}

// keepRingV2One is keepRingOne for a slot of a TPACKET_V2 ring.
func keepRingV2One(t *testing.T, m received) (frame []byte, ok bool, st ConnStats) {
	t.Helper()
	c := &PacketConn{mtu: 1500}
	b := make([]byte, 2048)
	mac := 66 // TPACKET_ALIGN(tp_hdrlen + 16) - 14
	if m.tight {
		mac = ringV2SllOff + unix.SizeofSockaddrLinklayer + 2
	}
	h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&b[0]))
	copy(b[mac:], m.frame)
	h.Mac, h.Snaplen, h.Len = uint16(mac), uint32(len(m.frame)), uint32(len(m.frame))
	if m.trunc {
		h.Len += 100
	}
	b[ringV2SllOff+ringSllPktType] = uint8(m.pkttype)
	h.Status, h.Vlan_tci, h.Vlan_tpid = m.status|unix.TP_STATUS_USER, m.tci, m.tpid
	f, ok := c.keepFields(b, 0, ringV2SllOff, int(h.Mac), int(h.Snaplen), int(h.Len), h.Status, h.Vlan_tci, h.Vlan_tpid)
	return f, ok, c.Stats()
}

// partial replaces the UDP or TCP checksum of frame with a stand-in for the
// pseudo-header sum of CHECKSUM_PARTIAL.
func partial(frame []byte, field int) []byte {
	b := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(b[field:], 0x1234)
	return b
}

func TestConnKeep(t *testing.T) {
	udp := csumFrame(t, nil, csumIPv4(layers.IPProtocolUDP), csumUDP(), []byte("a payload long enough to need no Ethernet padding"))
	udpTagged := csumFrame(t, []uint16{100}, csumIPv4(layers.IPProtocolUDP), csumUDP(), []byte("a payload long enough to need no Ethernet padding"))
	udpField := ethHdrLen + 20 + udpChecksumOff
	qinq := append([]byte(nil), udpTagged...)
	binary.BigEndian.PutUint16(qinq[ethType:], etherTypeQinQ)
	arp := filterFrame(nil, etherTypeARP, arpRequest)
	max := csumFrame(t, nil, csumIPv4(layers.IPProtocolUDP), csumUDP(), make([]byte, 1500-28))
	maxTagged := csumFrame(t, []uint16{7}, csumIPv4(layers.IPProtocolUDP), csumUDP(), make([]byte, 1500-28))

	tests := []struct {
		name string
		in   received
		want []byte // nil: dropped
		st   ConnStats
		// The socket backend only (a caller's buffer too small), or the
		// ring's only (its headroom).
		socket, ring bool
	}{
		{name: "plain frame", in: received{frame: udp, bufLen: 2048, aux: true}, want: udp},
		{name: "no auxdata", in: received{frame: udp, bufLen: 2048}, want: udp},
		{name: "own output", in: received{frame: udp, bufLen: 2048, pkttype: PktOutgoing}, st: ConnStats{RxOutgoing: 1}},
		{name: "truncated", in: received{frame: udp[:40], bufLen: 40, trunc: true}, st: ConnStats{RxTruncated: 1}},
		{name: "runt", in: received{frame: udp[:10], bufLen: 2048}, st: ConnStats{RxTruncated: 1}},
		{
			name: "partial checksum",
			in:   received{frame: partial(udp, udpField), bufLen: 2048, aux: true, status: unix.TP_STATUS_CSUMNOTREADY},
			want: udp, st: ConnStats{RxChecksumFixed: 1},
		},
		{
			name: "stripped 802.1q tag restored, then checksum",
			in:   received{frame: partial(udp, udpField), bufLen: 2048, aux: true, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_CSUMNOTREADY, tci: 100},
			want: udpTagged, st: ConnStats{RxVLANRestored: 1, RxChecksumFixed: 1},
		},
		{
			name: "stripped 802.1ad tag restored",
			in:   received{frame: udp, bufLen: 2048, aux: true, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, tci: 100, tpid: etherTypeQinQ},
			want: qinq, st: ConnStats{RxVLANRestored: 1},
		},
		{
			name: "no room for the tag",
			in:   received{frame: udp, bufLen: len(udp) + 3, aux: true, status: unix.TP_STATUS_VLAN_VALID, tci: 100},
			st:   ConnStats{RxTruncated: 1}, socket: true,
		},
		{
			name: "no headroom for the tag",
			in:   received{frame: udp, aux: true, status: unix.TP_STATUS_VLAN_VALID, tci: 100, tight: true},
			st:   ConnStats{RxTruncated: 1}, ring: true,
		},
		{
			name: "tight headroom, no tag",
			in:   received{frame: udp, tight: true},
			want: udp, ring: true,
		},
		{name: "largest untagged frame", in: received{frame: max, bufLen: 2048}, want: max},
		{name: "untagged frame one byte too long", in: received{frame: append(max[:len(max):len(max)], 0), bufLen: 2048}, st: ConnStats{RxOversize: 1}},
		{name: "largest tagged frame", in: received{frame: maxTagged, bufLen: 2048}, want: maxTagged},
		{
			name: "largest frame with its tag restored",
			in:   received{frame: max, bufLen: 2048, aux: true, status: unix.TP_STATUS_VLAN_VALID, tci: 7},
			want: maxTagged, st: ConnStats{RxVLANRestored: 1},
		},
		{
			name: "partial checksum on arp",
			in:   received{frame: arp, bufLen: 2048, aux: true, status: unix.TP_STATUS_CSUMNOTREADY},
			want: arp, st: ConnStats{RxChecksumUnfixed: 1},
		},
	}
	backends := []struct {
		io   IO
		keep func(*testing.T, received) ([]byte, bool, ConnStats)
	}{{IOSocket, keepOne}, {IORing, keepRingOne}, {IORingV2, keepRingV2One}}
	for _, be := range backends {
		for _, tt := range tests {
			if tt.socket && be.io != IOSocket || tt.ring && be.io == IOSocket {
				continue
			}
			t.Run("io="+be.io.String()+"/"+tt.name, func(t *testing.T) {
				testKeep(t, be.keep, tt.in, tt.want, tt.st)
			})
		}
	}
}

func testKeep(t *testing.T, keep func(*testing.T, received) ([]byte, bool, ConnStats), in received, want []byte, wantSt ConnStats) {
	got, ok, st := keep(t, in)
	if ok != (want != nil) {
		t.Fatalf("keep = %v, want %v", ok, want != nil)
	}
	if ok {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("frame (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff(wantSt, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestConnSendable(t *testing.T) {
	c := &PacketConn{mtu: 1500}
	tagged := make([]byte, 1518)
	binary.BigEndian.PutUint16(tagged[ethType:], etherTypeVLAN)
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{name: "runt", frame: make([]byte, 13), want: false},
		{name: "header only", frame: make([]byte, 14), want: true},
		{name: "largest untagged", frame: make([]byte, 1514), want: true},
		{name: "untagged too long", frame: make([]byte, 1515), want: false},
		{name: "largest tagged", frame: tagged, want: true},
		{name: "tagged too long", frame: append(tagged, 0), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.sendable(tt.frame, true); got != tt.want {
				t.Fatalf("sendable(%d bytes) = %v, want %v", len(tt.frame), got, tt.want)
			}
		})
	}
	if diff := cmp.Diff(ConnStats{TxRunt: 1, TxOversize: 2}, c.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}
