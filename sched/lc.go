package sched

// LeastConn is the lc scheduler (net/netfilter/ipvs/ip_vs_lc.c): the usable
// server with the smallest connection overhead (active×256 + inactive); the
// first in list order wins a tie. The weight only excludes quiesced servers.
type LeastConn struct{ servers []Server }

// Pick implements Scheduler.
func (l *LeastConn) Pick(Flow) int {
	least, loh := -1, int64(0)
	for i := range l.servers {
		s := &l.servers[i]
		if !usable(s) {
			continue
		}
		if doh := overhead(s); least < 0 || doh < loh {
			least, loh = i, doh
		}
	}
	return least
}

// WeightedLeastConn is the wlc scheduler, udr's and ipvsadm's default
// (net/netfilter/ipvs/ip_vs_wlc.c): the server with the smallest
// overhead/weight. The first usable server is the candidate; a later
// server that is not overloaded replaces it when
// loh×weight > doh×least.weight, so ties keep the earlier one and a
// quiesced server never wins.
type WeightedLeastConn struct{ servers []Server }

// Pick implements Scheduler.
func (l *WeightedLeastConn) Pick(Flow) int {
	return weightedLeast(l.servers, overhead)
}

// ShortestExpectedDelay is the sed scheduler (ip_vs_sed.c): wlc's rule with
// the overhead active+1; inactive connections do not count.
type ShortestExpectedDelay struct{ servers []Server }

// Pick implements Scheduler.
func (l *ShortestExpectedDelay) Pick(Flow) int {
	return weightedLeast(l.servers, sedOverhead)
}

// NeverQueue is the nq scheduler (ip_vs_nq.c): the first usable server with
// no active connection, else sed's choice among the usable servers.
type NeverQueue struct{ servers []Server }

// Pick implements Scheduler.
func (l *NeverQueue) Pick(Flow) int {
	least, loh := -1, int64(0)
	for i := range l.servers {
		s := &l.servers[i]
		if !usable(s) {
			continue
		}
		doh := sedOverhead(s)
		if doh == 1 { // activeconns == 0: idle, take it now
			return i
		}
		if least < 0 || loh*int64(s.Weight) > doh*int64(l.servers[least].Weight) {
			least, loh = i, doh
		}
	}
	return least
}

// sedOverhead is ip_vs_sed_dest_overhead and ip_vs_nq_dest_overhead.
func sedOverhead(s *Server) int64 { return int64(s.State.Active.Load()) + 1 }

// weightedLeast is the loop shared by wlc, sed, lblc and lblcr
// (__ip_vs_lblc_schedule is the same code): the first usable server, then
// every later server that is not overloaded competes on oh/weight.
func weightedLeast(servers []Server, oh func(*Server) int64) int {
	least := -1
	var loh int64
	for i := range servers {
		s := &servers[i]
		if least < 0 {
			if usable(s) {
				least, loh = i, oh(s)
			}
			continue
		}
		if s.State.Skip() {
			continue
		}
		if doh := oh(s); loh*int64(s.Weight) > doh*int64(servers[least].Weight) {
			least, loh = i, doh
		}
	}
	return least
}
