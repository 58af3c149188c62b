package service

import (
	"net/netip"
	"strconv"
)

// FormatAddr returns a as ipvsadm prints it with -n: glibc's inet_ntop. For
// IPv6 that differs from netip.Addr.String only for IPv4-compatible
// addresses (first 96 bits zero, other than :: and ::1), which inet_ntop
// ends in dotted IPv4: "::192.0.2.1" rather than "::c000:201".
func FormatAddr(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return string(appendInet6(nil, a.As16()))
}

// FormatAddrPort returns an address and port as ipvsadm prints them with
// -n (addrport_to_anyname): "192.0.2.1:80", "[2001:db8::1]:80".
func FormatAddrPort(a netip.Addr, port uint16) string {
	b := make([]byte, 0, 48)
	if a.Is4() {
		b = a.AppendTo(b)
	} else {
		b = append(b, '[')
		b = appendInet6(b, a.As16())
		b = append(b, ']')
	}
	b = append(b, ':')
	return string(strconv.AppendUint(b, uint64(port), 10))
}

// appendInet6 is glibc's inet_ntop6.
func appendInet6(b []byte, ip [16]byte) []byte {
	var w [8]uint16
	for i := range w {
		w[i] = uint16(ip[2*i])<<8 | uint16(ip[2*i+1])
	}
	// Find the longest run of zero words (the first one on a tie), of at
	// least two words, for the "::" shorthand.
	bestBase, bestLen, curBase, curLen := -1, 0, -1, 0
	for i := range 9 {
		if i < 8 && w[i] == 0 {
			if curBase == -1 {
				curBase, curLen = i, 0
			}
			curLen++
			continue
		}
		if curBase != -1 && (bestBase == -1 || curLen > bestLen) {
			bestBase, bestLen = curBase, curLen
		}
		curBase = -1
	}
	if bestLen < 2 {
		bestBase = -1
	}
	for i := 0; i < 8; i++ {
		if bestBase != -1 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				b = append(b, ':')
			}
			continue
		}
		if i != 0 {
			b = append(b, ':')
		}
		if i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff)) {
			return netip.AddrFrom4([4]byte(ip[12:])).AppendTo(b)
		}
		b = strconv.AppendUint(b, uint64(w[i]), 16)
	}
	if bestBase != -1 && bestBase+bestLen == 8 {
		b = append(b, ':')
	}
	return b
}

// SchedFlagsString returns a service's -b flags as ipvsadm prints them
// (print_sched_flags): named after sh and mh for those schedulers,
// flag-1..flag-3 for the others, comma separated. It can be empty although
// flags are set: ipvsadm shows flag-3 of an sh or mh service as nothing.
func SchedFlagsString(sched string, f SchedFlags) string {
	var b []byte
	add := func(set bool, name string) {
		if set {
			if len(b) > 0 {
				b = append(b, ',')
			}
			b = append(b, name...)
		}
	}
	switch sched {
	case "sh", "mh":
		add(f&SchedFlag1 != 0, sched+"-fallback")
		add(f&SchedFlag2 != 0, sched+"-port")
	default:
		add(f&SchedFlag1 != 0, "flag-1")
		add(f&SchedFlag2 != 0, "flag-2")
		add(f&SchedFlag3 != 0, "flag-3")
	}
	return string(b)
}
