package service

import "net/netip"

// This file reproduces the order of `ipvsadm -L` and `ipvsadm -S`: libipvs
// sorts services with ipvs_cmp_services and real servers with
// ipvs_cmp_dests, through glibc's qsort, which is a merge sort.
//
// Both comparators subtract addresses as unsigned 32-bit words and read the
// difference as a signed int, so two addresses 2^31 or more apart compare
// the wrong way round (10.0.0.1 sorts after 192.168.0.1). That order is not
// transitive, so the result depends on the order the kernel returned the
// entries in; udr feeds the sort with its own list order, which for real
// servers is the kernel's (newest first) and for services is the order they
// were added (the kernel's is its hash table's, which depends on a kernel
// pointer and cannot be reproduced).

// SortedServices returns c's services in ipvsadm's listing order. The
// services are shared with c, not copied.
func SortedServices(c *Config) []*Service {
	s := append([]*Service(nil), c.Services...)
	mergeSort(s, compareServices)
	return s
}

// SortedDests returns a copy of s's real servers in ipvsadm's listing order.
func SortedDests(s *Service) []Dest {
	d := append([]Dest(nil), s.Dests...)
	mergeSort(d, compareDests)
	return d
}

// compareServices is ipvs_cmp_services for services without a fwmark:
// address family (AF_INET 2 before AF_INET6 10), protocol, address, port.
func compareServices(a, b *Service) int {
	if r := family(a.Addr) - family(b.Addr); r != 0 {
		return r
	}
	if r := int(a.Proto) - int(b.Proto); r != 0 {
		return r
	}
	if r := compareAddrs(a.Addr, b.Addr); r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

// compareDests is ipvs_cmp_dests: address, then port.
func compareDests(a, b Dest) int {
	if r := compareAddrs(a.Addr, b.Addr); r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 2 // AF_INET
	}
	return 10 // AF_INET6
}

// compareAddrs is `r = ntohl(a) - ntohl(b)` on each 32-bit word, with C's
// unsigned wrap-around and conversion to int. An IPv4 address has one word,
// an IPv6 one four, compared until one differs.
func compareAddrs(a, b netip.Addr) int {
	if a.Is4() {
		x, y := a.As4(), b.As4()
		return int(int32(be32(x[:]) - be32(y[:])))
	}
	x, y := a.As16(), b.As16()
	for i := 0; i < 16; i += 4 {
		if r := int32(be32(x[i:]) - be32(y[i:])); r != 0 {
			return int(r)
		}
	}
	return 0
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// mergeSort sorts s as glibc's qsort does (msort_with_tmp): split at n/2,
// sort both halves, merge taking from the left half while cmp <= 0. With a
// consistent cmp this is any stable sort; with ipvsadm's inconsistent ones
// only this algorithm gives ipvsadm's order.
func mergeSort[T any](s []T, cmp func(a, b T) int) {
	if len(s) <= 1 {
		return
	}
	tmp := make([]T, len(s))
	msort(s, tmp, cmp)
}

func msort[T any](b, tmp []T, cmp func(a, b T) int) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msort(b1, tmp, cmp)
	msort(b2, tmp, cmp)
	t := tmp[:0]
	for len(b1) > 0 && len(b2) > 0 {
		if cmp(b1[0], b2[0]) <= 0 {
			t, b1 = append(t, b1[0]), b1[1:]
		} else {
			t, b2 = append(t, b2[0]), b2[1:]
		}
	}
	t = append(t, b1...)
	copy(b, t) // what is left of b2 is already in place
}
