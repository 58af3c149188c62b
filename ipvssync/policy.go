package ipvssync

// Policy is the kernel master's rule for when a connection is synced
// (ip_vs_sync_conn_needed), with the sysctl sync_threshold's two values;
// sync_refresh_period and sync_retries are 0, their defaults, so that no
// time-based re-send is made. The zero Policy is the kernel's default,
// "3 50": a connection is synced on its 3rd, 53rd, 103rd... packet.
//
// It is the reference model of the data path's own, fast statement of the
// rule (conntrack's per-packet sync decision, Entry.SyncDue, and the
// forwarder's sync queue): forwarder's TestSyncPolicyReference drives
// random packet sequences through a pipeline with sync on and checks each
// record queued, and each one not, against Needed. Keep the two in step:
// a change to the rule goes here first, as the kernel states it.
//
// To sync as ip_vs_sync_conn does, add the connection when Needed says
// so, then its template (cp->control), if it has one, with Needed's answer
// for the template: a template is synced whenever it is asked (pkts is
// its own packet count, incremented each time). With sync_persist_mode a
// connection that has a template is never synced (in_persistence), only
// the template; a one-packet connection (IP_VS_CONN_F_ONE_PACKET) neither,
// only its template.
type Policy struct {
	// Threshold is sync_threshold[0], Period sync_threshold[1]; both 0
	// mean the default, 3 and 50 (a threshold of 0 with a period above 0
	// is the kernel's too: the 50th, 100th... packet). A negative Period
	// means 0: only when pkts == Threshold.
	Threshold int
	Period    int
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
	switch {
	case threshold == 0 && period == 0:
		threshold, period = 3, 50
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
