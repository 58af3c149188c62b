package stats

import "time"

// Counters are cumulative statistics of a real server or a service, the
// kernel's struct ip_vs_kstats. In direct routing the director sees only
// the client→server direction, so OutPkts and OutBytes stay zero.
type Counters struct {
	Conns    uint64 // new connections scheduled (templates not counted)
	InPkts   uint64 // client→server packets
	OutPkts  uint64
	InBytes  uint64 // client→server bytes: IP datagram lengths, no L2 header
	OutBytes uint64
}

// Add returns c + o.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		Conns:    c.Conns + o.Conns,
		InPkts:   c.InPkts + o.InPkts,
		OutPkts:  c.OutPkts + o.OutPkts,
		InBytes:  c.InBytes + o.InBytes,
		OutBytes: c.OutBytes + o.OutBytes,
	}
}

// Sub returns c - o, field by field, as the kernel computes the counters
// it shows after -Z (kstats - kstats0). The arithmetic wraps like the
// kernel's u64.
func (c Counters) Sub(o Counters) Counters {
	return Counters{
		Conns:    c.Conns - o.Conns,
		InPkts:   c.InPkts - o.InPkts,
		OutPkts:  c.OutPkts - o.OutPkts,
		InBytes:  c.InBytes - o.InBytes,
		OutBytes: c.OutBytes - o.OutBytes,
	}
}

// Rates are the estimated rates ipvsadm --rate shows: connections,
// packets and bytes per second.
type Rates struct {
	CPS    uint64
	InPPS  uint64
	OutPPS uint64
	InBPS  uint64
	OutBPS uint64
}

// Period is the interval at which the kernel's estimator runs and at which
// Estimator.Tick must be called: "We measure rate during the last 8
// seconds every 2 seconds" (ip_vs_est.c).
const Period = 2 * time.Second

// Estimator is the kernel's rate estimator (struct ip_vs_estimator): an
// exponentially weighted moving average with weight 1/4, updated every
// Period from the difference of cumulative counters. Rates are kept scaled,
// connections and packets by 2^10, bytes by 2^5, so that integer arithmetic
// keeps their fraction. The zero value starts from counters that are all
// zero; Reset starts it from others.
type Estimator struct {
	last Counters
	// Scaled averages, as in struct ip_vs_estimator: cps, inpps and
	// outpps ×2^10; inbps and outbps ×2^5.
	cps, inpps, outpps, inbps, outbps uint64
}

// Tick updates the averages from c, the cumulative counters one Period
// after the previous Tick or Reset. It does not allocate.
//
// ip_vs_est.c (estimation_timer, ip_vs_chain_estimation):
//
//	rate = (conns - last_conns) << 9;  /* ×2^10 over 2 s */
//	cps += ((s64)rate - (s64)cps) >> 2;
//	rate = (inbytes - last_inbytes) << 4;  /* ×2^5 over 2 s */
//	inbps += ((s64)rate - (s64)inbps) >> 2;
func (e *Estimator) Tick(c Counters) {
	ewma(&e.cps, (c.Conns-e.last.Conns)<<9)
	ewma(&e.inpps, (c.InPkts-e.last.InPkts)<<9)
	ewma(&e.outpps, (c.OutPkts-e.last.OutPkts)<<9)
	ewma(&e.inbps, (c.InBytes-e.last.InBytes)<<4)
	ewma(&e.outbps, (c.OutBytes-e.last.OutBytes)<<4)
	e.last = c
}

// ewma moves avg a quarter of the way to rate. The difference is shifted
// as a signed 64-bit value: an arithmetic shift, which rounds towards
// minus infinity, exactly as the kernel's s64 shift.
func ewma(avg *uint64, rate uint64) {
	*avg += uint64((int64(rate) - int64(*avg)) >> 2)
}

// Rates returns the current estimates, rounded as ip_vs_read_estimator
// does: cps = (avg + 0x1FF) >> 10, bps = (avg + 0xF) >> 5.
func (e *Estimator) Rates() Rates {
	return Rates{
		CPS:    (e.cps + 0x1FF) >> 10,
		InPPS:  (e.inpps + 0x1FF) >> 10,
		OutPPS: (e.outpps + 0x1FF) >> 10,
		InBPS:  (e.inbps + 0xF) >> 5,
		OutBPS: (e.outbps + 0xF) >> 5,
	}
}

// Reset sets every average to zero and takes c as the counters the next
// Tick measures from (ip_vs_zero_estimator, called by -Z and when an
// estimator starts).
func (e *Estimator) Reset(c Counters) {
	*e = Estimator{last: c}
}
