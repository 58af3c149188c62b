package forwarder

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/dest"
)

// Explainer turns a Decision into one line of text for udr replay
// --explain and pcapng comments. It is for people reading a capture, not
// for the packet path: it allocates freely.
type Explainer struct {
	t     *Table
	neigh *Neighbors
	reg   *dest.Registry
	f     frame
}

// NewExplainer returns an Explainer of the decisions taken with table t.
func NewExplainer(t *Table, neigh *Neighbors, reg *dest.Registry) *Explainer {
	return &Explainer{t: t, neigh: neigh, reg: reg}
}

// Line explains decision d about frame b (as it left the pipeline: only
// its MAC addresses may have changed).
func (x *Explainer) Line(d *Decision, b []byte) string {
	var sb strings.Builder
	sb.WriteString(d.Verdict.String())
	if x.f.decode(b) != VerdictForward {
		return sb.String() // the verdict says all there is
	}
	if x.f.vlan {
		fmt.Fprintf(&sb, " vlan %d", x.f.vlanTCI&0x0fff)
	}
	switch {
	case x.f.l3Type == etherTypeARP:
		if a, ok := arpresponder.ParseARP(b[x.f.l3:]); ok {
			fmt.Fprintf(&sb, " ARP %s %v from %v (%s)", arpOp(uint16(a.Op)), netip.AddrFrom4(a.TargetIP), netip.AddrFrom4(a.SenderIP), net.HardwareAddr(a.SenderMAC[:]))
		} else {
			sb.WriteString(" ARP")
		}
		if d.Verdict == VerdictStandby {
			sb.WriteString(standbyND(d.ARPReason))
		} else if d.Verdict != VerdictReply {
			fmt.Fprintf(&sb, ": %s", d.ARPReason)
		} else {
			fmt.Fprintf(&sb, ": is-at %s", net.HardwareAddr(x.t.opts.VIPMAC[:]))
		}
		return sb.String()
	case x.f.l3Type != etherTypeIPv4 && x.f.l3Type != etherTypeIPv6:
		return sb.String()
	}
	fmt.Fprintf(&sb, " %s %s -> %s", protoName(x.f.key.Proto), x.addrPort(x.f.key.Client, x.f.key.CPort), x.addrPort(x.f.key.VIP, x.f.key.VPort))
	if x.f.key.Proto == protoTCP && x.f.l4 != 0 {
		fmt.Fprintf(&sb, " [%s]", tcpFlagsString(x.f.tcpFlags))
	}
	if d.Verdict == VerdictStandby {
		if d.ARPReason != arpresponder.ReasonNone || x.f.key.Proto == protoICMPv6 && x.f.l4 != 0 && isNDP(b[x.f.l4]) {
			sb.WriteString(standbyND(d.ARPReason))
		} else {
			sb.WriteString(": standby, not forwarded")
		}
		return sb.String()
	}
	if d.Verdict == VerdictReply && x.f.is6 {
		fmt.Fprintf(&sb, ": NDP is-at %s", net.HardwareAddr(x.t.opts.VIPMAC[:]))
		return sb.String()
	}
	if d.ARPReason != arpresponder.ReasonNone {
		fmt.Fprintf(&sb, ": NDP %s", d.ARPReason)
		return sb.String()
	}
	if d.Service != nil {
		fmt.Fprintf(&sb, ": service %s %s", d.Service.Key, d.Service.Scheduler)
	}
	switch {
	case d.Fragment:
		sb.WriteString(", later fragment")
	case d.ICMP:
		sb.WriteString(", ICMP error of connection")
	case d.Persist:
		sb.WriteString(", new connection, persistence template")
	case d.New && d.Stateless:
		sb.WriteString(", new connection mid-stream")
	case d.New:
		sb.WriteString(", new connection")
		if d.Resched {
			sb.WriteString(" (old entry rescheduled)")
		}
	case d.Verdict == VerdictForward:
		sb.WriteString(", existing connection")
	}
	if d.Dest != 0 {
		dk := x.reg.Key(d.Dest)
		srv := dk.Real
		if port := x.f.key.VPort; port != dk.VIP.Port() && (x.f.key.Proto == protoTCP || x.f.key.Proto == protoUDP) && x.f.l4 != 0 {
			// DR keeps the packet's port: a port-0 service, or FTP
			// data through the port-21 service.
			srv = netip.AddrPortFrom(srv.Addr(), port)
		}
		fmt.Fprintf(&sb, " -> %s", srv)
		if mac, ok := x.neigh.mac(d.Dest); ok && d.Verdict == VerdictForward {
			fmt.Fprintf(&sb, " (%s)", net.HardwareAddr(mac[:]))
		}
	}
	if d.State != 0 || d.New {
		fmt.Fprintf(&sb, " %s", d.State)
	}
	if d.Unreachable {
		sb.WriteString(", port unreachable to the client")
	}
	return sb.String()
}

// standbyND explains an ARP or NDP packet that a standby director did not
// answer (Pipeline.standbyND).
func standbyND(r arpresponder.Reason) string {
	if r == arpresponder.ReasonConflict {
		return ": standby, another host announces the VIP"
	}
	return ": standby, not answered"
}

func (x *Explainer) addrPort(a [16]byte, port uint16) string {
	addr := netip.AddrFrom16(a).Unmap()
	if x.f.key.Proto != protoTCP && x.f.key.Proto != protoUDP || x.f.l4 == 0 {
		return addr.String()
	}
	return netip.AddrPortFrom(addr, port).String()
}

func arpOp(op uint16) string {
	switch op {
	case 1:
		return "who-has"
	case 2:
		return "reply"
	}
	return fmt.Sprintf("op %d", op)
}

func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return "TCP"
	case protoUDP:
		return "UDP"
	case protoICMP:
		return "ICMP"
	case protoICMPv6:
		return "ICMPv6"
	case ipv6Fragment:
		return "IPv6-fragment"
	}
	return fmt.Sprintf("proto %d", p)
}

func tcpFlagsString(fl uint8) string {
	var parts []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{tcpSYN, "S"}, {tcpACK, "."}, {tcpFIN, "F"}, {tcpRST, "R"}, {0x08, "P"}} {
		if fl&x.bit != 0 {
			parts = append(parts, x.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "")
}
