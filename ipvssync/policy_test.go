package ipvssync

import "testing"

func TestPolicyNeeded(t *testing.T) {
	const tcp, udp, sctp = 6, 17, 132
	tests := []struct {
		name            string
		p               Policy
		proto           uint8
		state, oldState uint16
		template        bool
		pkts            int
		want            bool
	}{
		{"TCP established, 3rd packet", Policy{}, tcp, tcpEstablished, tcpEstablished, false, 3, true},
		{"TCP established, 4th packet", Policy{}, tcp, tcpEstablished, tcpEstablished, false, 4, false},
		{"TCP established, 53rd packet", Policy{}, tcp, tcpEstablished, tcpEstablished, false, 53, true},
		{"TCP just established, 2nd packet", Policy{}, tcp, tcpEstablished, 3, false, 2, false},
		{"TCP SYN_RECV never", Policy{}, tcp, 3, 3, false, 3, false},
		{"TCP to FIN_WAIT at once", Policy{}, tcp, tcpFinWait, tcpEstablished, false, 7, true},
		{"TCP in FIN_WAIT, no change", Policy{}, tcp, tcpFinWait, tcpFinWait, false, 7, false},
		{"TCP to TIME_WAIT at once", Policy{}, tcp, tcpTimeWait, tcpFinWait, false, 9, true},
		{"TCP to CLOSE_WAIT at once", Policy{}, tcp, tcpCloseWait, tcpEstablished, false, 9, true},
		{"TCP LAST_ACK never", Policy{}, tcp, 8, tcpCloseWait, false, 3, false},
		{"TCP state out of range", Policy{}, tcp, 40, 1, false, 3, false},
		{"UDP 3rd packet", Policy{}, udp, 0, 0, false, 3, true},
		{"UDP 5th packet", Policy{}, udp, 0, 0, false, 5, false},
		{"template any packet", Policy{}, tcp, TemplateNone, TemplateNone, true, 17, true},
		{"SCTP to SHUTDOWN_SENT at once", Policy{}, sctp, sctpShutdownSent, sctpEstablished, false, 9, true},
		{"SCTP COOKIE_ECHOED never", Policy{}, sctp, 7, 7, false, 3, false},
		{"threshold 1 period 10, 11th", Policy{Threshold: 1, Period: 10}, udp, 0, 0, false, 11, true},
		{"threshold 0 period 50, 50th", Policy{Threshold: 0, Period: 50}, udp, 0, 0, false, 50, true},
		{"threshold 0 period 50, 3rd", Policy{Threshold: 0, Period: 50}, udp, 0, 0, false, 3, false},
		{"period 0: only the threshold packet", Policy{Threshold: 3, Period: -1}, udp, 0, 0, false, 53, false},
		{"period 0: the threshold packet", Policy{Threshold: 3, Period: -1}, udp, 0, 0, false, 3, true},
		{"period 0: template too", Policy{Threshold: 3, Period: -1}, tcp, 0, 0, true, 4, false},
	}
	for _, tt := range tests {
		if got := tt.p.Needed(tt.proto, tt.state, tt.oldState, tt.template, tt.pkts); got != tt.want {
			t.Errorf("%s: Needed = %v, want %v", tt.name, got, tt.want)
		}
	}
}
