package sched

import "github.com/udr-lb/udr/service"

// shBits is IP_VS_SH_TAB_BITS (CONFIG_IP_VS_SH_TAB_BITS default 8): 256
// buckets. dh uses the same size (IP_VS_DH_TAB_BITS).
const (
	shBits = 8
	shSize = 1 << shBits
	shMask = shSize - 1
)

// SourceHash is the sh scheduler (net/netfilter/ipvs/ip_vs_sh.c).
//
// Its 256 buckets are filled by walking the list from the head, each server
// taking weight consecutive buckets, cycling until the table is full; a
// quiesced server still takes one bucket per cycle, and overload is not
// considered. A client's bucket is hash_32(source address [+ source port
// with sh-port], 8), the kernel v6.x key. Its owner is returned unless
// quiesced or overloaded; then the pick fails, or with sh-fallback the
// buckets after it are tried in turn.
type SourceHash struct {
	servers  []Server
	port     bool          // sh-port (SchedFlag2): hash the source port too
	fallback bool          // sh-fallback (SchedFlag1)
	buckets  [shSize]int16 // server index, -1 when the list is empty
}

func newSourceHash(servers []Server, flags service.SchedFlags) *SourceHash {
	h := &SourceHash{servers: servers, port: flags&service.SchedFlag2 != 0, fallback: flags&service.SchedFlag1 != 0}
	// ip_vs_sh_reassign.
	p, count := 0, int32(0)
	for i := range h.buckets {
		if len(servers) == 0 {
			h.buckets[i] = -1
			continue
		}
		h.buckets[i] = int16(p)
		if count++; count >= servers[p].Weight {
			p, count = (p+1)%len(servers), 0
		}
	}
	return h
}

// shKey is ip_vs_sh_hashkey (v6.x): (offset + hash_32(port + addr, 8)) & 255.
func shKey(addr uint32, port uint16, offset uint32) uint32 {
	return (offset + hash32(uint32(port)+addr, shBits)) & shMask
}

// Pick implements Scheduler.
func (h *SourceHash) Pick(fl Flow) int {
	addr := fold(&fl.Src, fl.Is6)
	var port uint16
	if h.port {
		port = fl.SrcPort
	}
	ihash := shKey(addr, port, 0)
	d := h.buckets[ihash]
	if d < 0 {
		return -1
	}
	if usable(&h.servers[d]) {
		return int(d)
	}
	if !h.fallback {
		return -1
	}
	// ip_vs_sh_get_fallback: loop around the table from the original hash.
	for off := uint32(0); off < shSize; off++ {
		d := h.buckets[shKey(addr, port, (off+ihash)%shSize)]
		if d < 0 {
			return -1
		}
		if usable(&h.servers[d]) {
			return int(d)
		}
	}
	return -1
}
