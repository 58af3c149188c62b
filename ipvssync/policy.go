package ipvssync

// Policy is the kernel master's rule for when a connection is synced
// (ip_vs_sync_conn_needed), with the sysctl sync_threshold's two values;
// sync_refresh_period and sync_retries are 0, their defaults, so that no
// time-based re-send is made. The zero Policy is the kernel's default,
// "3 50": a connection is synced on its 3rd, 53rd, 103rd... packet.
//
// To sync as ip_vs_sync_conn does, add the connection when Needed says
// so, then its template (cp->control), if it has one, with Needed's answer
// for the template: a template is synced whenever it is asked (pkts is
// its own packet count, incremented each time).
type Policy struct {
	Threshold int // sync_threshold[0]; 0 means 3
	Period    int // sync_threshold[1]; 0 means 50; negative means 0: only when pkts == Threshold
}

// TCP and SCTP state numbers (IP_VS_TCP_S_*, IP_VS_SCTP_S_*) that
// ip_vs_sync_conn_needed tests.
const (
	tcpEstablished = 1
	tcpFinWait     = 4
	tcpTimeWait    = 5
	tcpClose       = 6
	tcpCloseWait   = 7

	sctpEstablished      = 8
	sctpShutdownSent     = 9
	sctpShutdownReceived = 10
	sctpShutdownAckSent  = 11
	sctpClosed           = 13
)

// Needed reports whether a connection of protocol proto, now in state
// (it was in oldState when it was last synced), flagged template or not,
// is to be synced on its packet number pkts.
func (p Policy) Needed(proto uint8, state, oldState uint16, template bool, pkts int) bool {
	threshold, period := p.Threshold, p.Period
	if threshold == 0 {
		threshold = 3
	}
	switch {
	case period == 0:
		period = 50
	case period < 0:
		period = 0
	}
	if !template {
		var syncStates uint32
		var established uint16
		switch proto {
		case 6:
			syncStates = 1<<tcpEstablished | 1<<tcpFinWait | 1<<tcpClose | 1<<tcpCloseWait | 1<<tcpTimeWait
			established = tcpEstablished
		case 132:
			syncStates = 1<<sctpEstablished | 1<<sctpShutdownSent | 1<<sctpShutdownReceived | 1<<sctpShutdownAckSent | 1<<sctpClosed
			established = sctpEstablished
		}
		if syncStates != 0 {
			if state >= 32 || syncStates&(1<<state) == 0 {
				return false
			}
			// A change to a state other than ESTABLISHED is synced at
			// once.
			if state != oldState && state != established {
				return true
			}
		}
	}
	if period > 0 {
		return template || pkts%period == threshold
	}
	return pkts == threshold
}
