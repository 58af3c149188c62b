package admin

import (
	"math"
	"net/netip"
	"strings"
)

// This file holds the C library conversions that decide what ipvsadm
// accepts: strtol (string_to_number), atoi (-M for IPv6), inet_aton (IPv4
// addresses and -M masks) and inet_pton (IPv6), combined as parse_service
// does. Host and service names are not resolved: udr takes numbers only, as
// `ipvsadm -S -n` writes them.

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// strtol parses s as C's strtol(s, &end, 10) does; n is the number of bytes
// it consumed (0 when there is no number) and overflow reports ERANGE.
func strtol(s string) (v int64, n int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var u uint64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			overflow = true
		} else {
			u = u*10 + d
		}
		i++
	}
	if i == start {
		return 0, 0, false
	}
	switch {
	case overflow, !neg && u > math.MaxInt64, neg && u > math.MaxInt64+1:
		overflow = true
		if neg {
			return math.MinInt64, i, true
		}
		return math.MaxInt64, i, true
	case neg:
		return -int64(u), i, false
	}
	return int64(u), i, false
}

// stringToNumber is ipvsadm's string_to_number: the whole of s must be a
// decimal number within [min, max].
func stringToNumber(s string, min, max int64) (int64, bool) {
	v, n, overflow := strtol(s)
	if n == 0 || n != len(s) || overflow || v < min || v > max {
		return 0, false
	}
	return v, true
}

// atoi is C's atoi: strtol's prefix, truncated to a 32-bit int.
func atoi(s string) int32 {
	v, _, _ := strtol(s)
	return int32(v)
}

// inetAton parses s as glibc's inet_aton: one to four parts separated by
// dots, each decimal, octal (leading 0) or hex (0x), the last part filling
// the remaining bytes ("10.1" is 10.0.0.1). Anything after a blank is
// ignored, as glibc does.
func inetAton(s string) (uint32, bool) {
	var parts [4]uint32
	np := 0
	for {
		if s == "" || s[0] < '0' || s[0] > '9' {
			return 0, false
		}
		v, rest, ok := strtoulBase0(s)
		if !ok {
			return 0, false
		}
		s = rest
		if s != "" && s[0] == '.' {
			if np > 2 || v > 0xff {
				return 0, false
			}
			parts[np] = v
			np++
			s = s[1:]
			continue
		}
		if s != "" && !isCSpace(s[0]) {
			return 0, false
		}
		max := [4]uint32{0xffffffff, 0xffffff, 0xffff, 0xff}[np]
		if v > max {
			return 0, false
		}
		for i := range np {
			v |= parts[i] << (24 - 8*i)
		}
		return v, true
	}
}

// strtoulBase0 reads the number at the start of s as strtoul(s, &end, 0)
// does; ok is false when it does not fit in 32 bits.
func strtoulBase0(s string) (v uint32, rest string, ok bool) {
	base := uint64(10)
	i := 0
	if len(s) > 1 && s[0] == '0' {
		base = 8
		if (s[1] == 'x' || s[1] == 'X') && len(s) > 2 && hexVal(s[2]) < 16 {
			base, i = 16, 2
		}
	}
	var u uint64
	for ; i < len(s); i++ {
		d := uint64(hexVal(s[i]))
		if d >= base {
			break
		}
		u = u*base + d
		if u > math.MaxUint32 {
			return 0, "", false
		}
	}
	return uint32(u), s[i:], true
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 255
}

// inetPton6 parses s as inet_pton(AF_INET6, ...): an IPv6 address in text
// form, no zone, no brackets.
func inetPton6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseService is ipvsadm's parse_service for "host[:port]" and
// "[v6]:port". hasPort reports a port was given; ok is false when ipvsadm
// would return SERVICE_NONE. Quirks kept: an all-digit word is refused
// (`-t 80`), a bracketed IPv6 address needs a port, and "[192.0.2.1]:80"
// is 192.0.2.1 with no port.
func parseService(buf string) (addr netip.Addr, port uint16, hasPort, ok bool) {
	if isAllDigits(buf) {
		return netip.Addr{}, 0, false, false
	}
	var portStr string
	if strings.HasPrefix(buf, "[") {
		host, after, found := strings.Cut(buf[1:], "]")
		if !found || !strings.HasPrefix(after, ":") {
			return netip.Addr{}, 0, false, false
		}
		buf, portStr, hasPort = host, after[1:], true
	}
	if a, v6 := inetPton6(buf); v6 {
		addr = a
	} else {
		hasPort = false
		if i := strings.LastIndexByte(buf, ':'); i >= 0 {
			buf, portStr, hasPort = buf[:i], buf[i+1:], true
		}
		v, ok := inetAton(buf)
		if !ok {
			return netip.Addr{}, 0, false, false
		}
		addr = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	if hasPort {
		p, ok := stringToNumber(portStr, 0, 65535)
		if !ok {
			return netip.Addr{}, 0, false, false
		}
		port = uint16(p)
	}
	return addr, port, hasPort, true
}

// MaskPrefix returns the prefix length of a contiguous IPv4 netmask.
func MaskPrefix(m uint32) (int, bool) {
	ones := 0
	for ones < 32 && m&(1<<(31-ones)) != 0 {
		ones++
	}
	if ones < 32 && m<<ones != 0 {
		return 0, false
	}
	return ones, true
}

// formatMask returns an IPv4 netmask in dotted form, as inet_ntoa.
func formatMask(m uint32) string {
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// prefixMask returns the IPv4 netmask of a prefix length.
func prefixMask(bits int) uint32 {
	switch {
	case bits <= 0:
		return 0
	case bits >= 32:
		return 0xffffffff
	}
	return ^uint32(0) << (32 - bits)
}
