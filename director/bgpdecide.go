package director

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/udr-lb/udr/service"
)

// vipDecision is whether a VIP is to be announced by BGP, and why.
type vipDecision struct {
	announce bool
	reason   string
}

// decideVIPs decides, for every VIP of cfg (the compiled table's
// configuration: real servers that failed their health check are at
// weight 0 or gone), whether to announce it: while every service of the
// VIP has at least minHealthy available real servers, a real server being
// available when its weight is above 0. A VIP that one of its services
// cannot serve is withdrawn, so that the routers send its flows to a
// director that can.
func decideVIPs(cfg *service.Config, minHealthy int) map[netip.Addr]vipDecision {
	type count struct {
		key              service.Key
		available, total int
	}
	byVIP := make(map[netip.Addr][]count)
	for _, s := range service.SortedServices(cfg) {
		c := count{key: s.Key, total: len(s.Dests)}
		for _, d := range s.Dests {
			if d.Weight > 0 {
				c.available++
			}
		}
		byVIP[s.Addr] = append(byVIP[s.Addr], c)
	}
	out := make(map[netip.Addr]vipDecision, len(byVIP))
	for vip, counts := range byVIP {
		var short, fine []string
		for _, c := range counts {
			name := strings.ToLower(c.key.Proto.String()) + " " + service.FormatAddrPort(c.key.Addr, c.key.Port)
			if c.available < minHealthy {
				short = append(short, fmt.Sprintf("%s: %d of %d real servers available, min_healthy %d", name, c.available, c.total, minHealthy))
			} else {
				fine = append(fine, fmt.Sprintf("%s %d of %d", name, c.available, c.total))
			}
		}
		if len(short) > 0 {
			out[vip] = vipDecision{reason: strings.Join(short, "; ")}
		} else {
			out[vip] = vipDecision{announce: true, reason: "real servers available: " + strings.Join(fine, ", ")}
		}
	}
	return out
}
