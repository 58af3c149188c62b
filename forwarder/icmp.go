package forwarder

import (
	"encoding/binary"

	"github.com/udr-lb/udr/conntrack"
)

// ICMP error types that belong to a connection (ip_vs_in_icmp,
// ip_vs_in_icmp_v6): the real server's replies to the client left with the
// VIP as source, so routers send their errors about them to the VIP, and
// the director must pass them on or path MTU discovery breaks.
const (
	icmpDestUnreach  = 3
	icmpSourceQuench = 4
	icmpTimeExceeded = 11

	icmp6DestUnreach  = 1
	icmp6PacketTooBig = 2
	icmp6TimeExceeded = 3

	icmpHdrLen = 8
)

// icmp forwards an ICMP error whose embedded header is a tracked
// connection's reply (VIP:vport → client:cport) to that connection's real
// server, unchanged. Other ICMP (echo requests to the VIP, errors about
// unknown flows) is not udr's business.
func (p *Pipeline) icmp(now uint32) (Verdict, []byte) {
	f := &p.f
	msg := f.b[f.l4 : f.l3+f.ipLen]
	var k conntrack.Key
	var ok bool
	if f.is6 {
		k, ok = embedded6(msg)
	} else {
		k, ok = embedded4(msg)
	}
	if !ok {
		return VerdictProto, nil
	}
	e, ok := p.conns.Lookup(k, now)
	if !ok {
		return VerdictICMPNoConn, nil
	}
	if !p.reg.State(e.Dest).Available.Load() {
		return VerdictDestRemoved, nil
	}
	p.last.ICMP = true
	if svc, ok := p.t.lookup(k.Proto, &k.VIP, k.VPort); ok {
		p.last.Service = svc.cfg
	}
	p.last.State = e.State
	return p.forward(e.Dest)
}

// embedded4 returns the connection key of the datagram embedded in an
// ICMPv4 error message: its source is the VIP, its destination the client.
func embedded4(msg []byte) (conntrack.Key, bool) {
	var k conntrack.Key
	switch msg[0] {
	case icmpDestUnreach, icmpSourceQuench, icmpTimeExceeded:
	default:
		return k, false
	}
	in := msg[icmpHdrLen:]
	if len(in) < ipv4MinLen || in[0]>>4 != 4 {
		return k, false
	}
	ihl := int(in[0]&0x0f) * 4
	if ihl < ipv4MinLen || len(in) < ihl+4 || binary.BigEndian.Uint16(in[6:])&0x1fff != 0 {
		return k, false
	}
	k.Proto = in[9]
	if k.Proto != protoTCP && k.Proto != protoUDP {
		return k, false
	}
	putV4Mapped(&k.VIP, in[12:16])
	putV4Mapped(&k.Client, in[16:20])
	k.VPort = binary.BigEndian.Uint16(in[ihl:])
	k.CPort = binary.BigEndian.Uint16(in[ihl+2:])
	return k, true
}

// embedded6 is embedded4 for ICMPv6 (RFC 4443): destination unreachable,
// packet too big and time exceeded, with the embedded header's transport
// header directly after its fixed header.
func embedded6(msg []byte) (conntrack.Key, bool) {
	var k conntrack.Key
	switch msg[0] {
	case icmp6DestUnreach, icmp6PacketTooBig, icmp6TimeExceeded:
	default:
		return k, false
	}
	in := msg[icmpHdrLen:]
	if len(in) < ipv6HdrLen+4 || in[0]>>4 != 6 {
		return k, false
	}
	k.Proto = in[6]
	if k.Proto != protoTCP && k.Proto != protoUDP {
		return k, false
	}
	put16(&k.VIP, in[8:24])
	put16(&k.Client, in[24:40])
	k.VPort = binary.BigEndian.Uint16(in[ipv6HdrLen:])
	k.CPort = binary.BigEndian.Uint16(in[ipv6HdrLen+2:])
	return k, true
}
