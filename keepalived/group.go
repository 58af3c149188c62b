package keepalived

import (
	"net/netip"
	"strconv"
	"strings"
)

// group records a virtual_server_group; its entries are read by the
// virtual servers that name it.
func (t *translator) group(st *Stmt) {
	if len(st.Args()) != 1 || !st.HasBlock {
		t.errorf(st, "virtual_server_group: want virtual_server_group NAME { ... }")
		return
	}
	name := st.Args()[0]
	if prev, ok := t.groups[name]; ok {
		t.errorf(st, "virtual_server_group %s: already defined at %s", name, prev.At())
		return
	}
	t.groups[name] = st
}

type vip struct {
	st   *Stmt
	addr netip.Addr
	port uint16
}

// groupEntries expands a group's entries: "IP PORT", "IP-LAST PORT".
func (t *translator) groupEntries(g *Stmt) []vip {
	var out []vip
	for _, e := range g.Block {
		if e.HasBlock {
			t.errorf(e, "%s: a virtual_server_group entry has no block", e.Keyword())
			continue
		}
		if e.Keyword() == "fwmark" {
			t.errorf(e, "fwmark: udr has no firewall-mark services")
			continue
		}
		if len(e.Words) != 2 {
			t.errorf(e, "%s: want IP PORT or IP-LAST PORT", strings.Join(e.Words, " "))
			continue
		}
		port, ok := t.port(e, e.Words[1])
		if !ok {
			continue
		}
		first, last, ok := t.addrRange(e, e.Words[0])
		if !ok {
			continue
		}
		for a := first; ; a = a.Next() {
			out = append(out, vip{e, a, port})
			if a == last || len(out) > MaxServices {
				break
			}
		}
	}
	if len(g.Block) == 0 {
		t.errorf(g, "virtual_server_group %s: no entries", g.Args()[0])
	}
	return out
}

// addrRange parses "IP" or keepalived's range "IP-LAST", LAST replacing
// the last byte (IPv4) or the last 16 bits, in hex (IPv6).
func (t *translator) addrRange(st *Stmt, s string) (first, last netip.Addr, ok bool) {
	a, rng, isRange := strings.Cut(s, "-")
	first, err := netip.ParseAddr(a)
	if err != nil || first.Zone() != "" {
		t.errorf(st, "%s: not an IP address", a)
		return first, first, false
	}
	if !isRange {
		return first, first, true
	}
	if first.Is4() {
		n, err := strconv.ParseUint(rng, 10, 8)
		b := first.As4()
		if err != nil || byte(n) < b[3] {
			t.errorf(st, "%s: the range's end %q is not a number %d..255", s, rng, b[3])
			return first, first, false
		}
		b[3] = byte(n)
		return first, netip.AddrFrom4(b), true
	}
	n, err := strconv.ParseUint(rng, 16, 16)
	b := first.As16()
	cur := uint64(b[14])<<8 | uint64(b[15])
	if err != nil || n < cur {
		t.errorf(st, "%s: the range's end %q is not a hex number %x..ffff", s, rng, cur)
		return first, first, false
	}
	b[14], b[15] = byte(n>>8), byte(n)
	return first, netip.AddrFrom16(b), true
}
