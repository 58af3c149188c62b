package conntrack

// State is the state of an entry, numbered as the kernel numbers TCP states
// (IP_VS_TCP_S_*, include/uapi/linux/ip_vs.h). UDP connections have the
// single state StateUDP; persistence templates are StateNone or StateAssured.
type State uint8

// Entry states. The TCP values are the kernel's, so that tables indexed by
// state read like tcp_states[] in net/netfilter/ipvs/ip_vs_proto_tcp.c.
const (
	StateNone State = iota
	StateEstablished
	StateSynSent
	StateSynRecv
	StateFinWait
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateSynAck
	// StateUDP is the only state of a UDP connection (IP_VS_UDP_S_NORMAL).
	StateUDP
	// StateAssured is a template one of whose connections reached
	// ESTABLISHED (IP_VS_CTPL_S_ASSURED).
	StateAssured

	numTCPStates = StateUDP
	numStates    = StateAssured + 1
)

var stateNames = [numStates]string{
	StateNone:        "NONE",
	StateEstablished: "ESTABLISHED",
	StateSynSent:     "SYN_SENT",
	StateSynRecv:     "SYN_RECV",
	StateFinWait:     "FIN_WAIT",
	StateTimeWait:    "TIME_WAIT",
	StateClose:       "CLOSE",
	StateCloseWait:   "CLOSE_WAIT",
	StateLastAck:     "LAST_ACK",
	StateListen:      "LISTEN",
	StateSynAck:      "SYNACK",
	StateUDP:         "UDP",
	StateAssured:     "ASSURED",
}

// String returns the state as ipvsadm -L -c prints it, e.g. "ESTABLISHED",
// "UDP" or "ASSURED"; an out-of-range value prints "ERR!" like the kernel's
// tcp_state_name.
func (s State) String() string {
	if s >= numStates {
		return "ERR!"
	}
	return stateNames[s]
}

// Active reports whether a TCP connection in state s counts in its real
// server's ActiveConn (tcp_state_active_table, Linux 4.8 and later:
// ESTABLISHED and the three handshake states). Every other state, and every
// UDP connection, counts in InActConn.
func (s State) Active() bool {
	switch s {
	case StateEstablished, StateSynSent, StateSynRecv, StateSynAck:
		return true
	}
	return false
}

// TCP header flag bits, as in byte 13 of the TCP header (RFC 9293).
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPAck uint8 = 0x10
)

// tcpEvent is the kernel's tcp_state_idx: rst beats syn beats fin beats ack.
type tcpEvent uint8

const (
	evSyn tcpEvent = iota
	evFin
	evAck
	evRst
	numEvents
)

// event returns the event of a TCP flags byte, or false when none of SYN,
// FIN, ACK and RST is set.
func event(flags uint8) (tcpEvent, bool) {
	switch {
	case flags&TCPRst != 0:
		return evRst, true
	case flags&TCPSyn != 0:
		return evSyn, true
	case flags&TCPFin != 0:
		return evFin, true
	case flags&TCPAck != 0:
		return evAck, true
	}
	return 0, false
}

const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
	sLI = StateListen
	sSA = StateSynAck
)

// inputOnly is the INPUT-ONLY part of tcp_states[] (ip_vs_proto_tcp.c),
// which a director uses for every connection whose real server replies
// directly to the client (IP_VS_CONN_F_NOOUTPUT: DR and TUN).
var inputOnly = [numEvents][numTCPStates]State{
	//        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA
	evSyn: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
	evFin: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
	evAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
	evRst: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
}

// inputOnlySecure is the INPUT-ONLY part of tcp_states_dos[], used while
// the secure_tcp defence is on: it differs only in the syn row, where a new
// SYN leads to SYNACK.
var inputOnlySecure = [numEvents][numTCPStates]State{
	//        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA
	evSyn: {sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA},
	evFin: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
	evAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
	evRst: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
}

// Next returns the state a DR connection in TCP state s moves to when a
// client packet with the given TCP flags arrives (set_tcp_state with the
// INPUT-ONLY table, or its secure_tcp variant). A packet with none of SYN,
// FIN, ACK and RST forces CLOSE, as the kernel's default new_state does.
// A state that is not a TCP state is returned unchanged.
func (s State) Next(tcpFlags uint8, secureTCP bool) State {
	if s >= numTCPStates {
		return s
	}
	ev, ok := event(tcpFlags)
	if !ok {
		return StateClose
	}
	if secureTCP {
		return inputOnlySecure[ev][s]
	}
	return inputOnly[ev][s]
}

// Default timeouts in seconds per state (tcp_timeouts in ip_vs_proto_tcp.c,
// udp_timeouts in ip_vs_proto_udp.c). ESTABLISHED, FIN_WAIT and UDP are the
// three that ipvsadm --set changes.
var defaultTimeouts = [numStates]uint32{
	StateNone:        2,
	StateEstablished: 900,
	StateSynSent:     120,
	StateSynRecv:     60,
	StateFinWait:     120,
	StateTimeWait:    120,
	StateClose:       10,
	StateCloseWait:   60,
	StateLastAck:     30,
	StateListen:      120,
	StateSynAck:      120,
	StateUDP:         300,
}

// Timers the kernel sets outside the per-state tables.
const (
	// newConnTimeout is the timer of a connection before its first packet
	// is applied (ip_vs_conn_new: cp->timeout = 3*HZ).
	newConnTimeout = 3
	// templateRearm is how long a template that expires while it still
	// controls connections lives on, and its timeout from then on
	// (ip_vs_conn_expire, expire_later: cp->timeout = 60*HZ).
	templateRearm = 60
)

// RescheduleOnSYN reports whether a SYN for the existing connection e must
// expire it and be scheduled as a new connection under the given
// conn_reuse_mode sysctl (is_new_conn_expected in ip_vs_core.c): never with
// mode 0 or for a connection controlled by a template; TIME_WAIT and CLOSE
// with any other mode; FIN_WAIT too when bit 2 of the mode is set (every DR
// connection has IP_VS_CONN_F_NOOUTPUT).
func RescheduleOnSYN(e Entry, connReuseMode int) bool {
	if connReuseMode == 0 || e.Flags&(FlagTemplate|FlagControlled) != 0 {
		return false
	}
	switch e.State {
	case StateTimeWait, StateClose:
		return true
	case StateFinWait:
		return connReuseMode&2 != 0
	}
	return false
}
