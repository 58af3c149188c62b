package sched

// DestHash is the dh scheduler (net/netfilter/ipvs/ip_vs_dh.c). Its 256
// buckets are dealt round-robin over the list from the head, one per
// server whatever its weight; a connection's bucket is
// hash_32(destination address, 8), the kernel v6.x key. The owner is
// returned unless quiesced or overloaded; there is no fallback. For a
// service with one virtual IP every connection lands in the same bucket.
type DestHash struct {
	servers []Server
	buckets [shSize]int16 // server index, -1 when the list is empty
}

func newDestHash(servers []Server) *DestHash {
	h := &DestHash{servers: servers}
	for i := range h.buckets { // ip_vs_dh_reassign
		h.buckets[i] = -1
		if len(servers) > 0 {
			h.buckets[i] = int16(i % len(servers))
		}
	}
	return h
}

// Pick implements Scheduler.
func (h *DestHash) Pick(fl Flow) int {
	d := h.buckets[hash32(fold(&fl.Dst, fl.Is6), shBits)]
	if d < 0 || !usable(&h.servers[d]) {
		return -1
	}
	return int(d)
}
