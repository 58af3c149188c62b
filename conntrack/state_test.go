package conntrack

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStateString(t *testing.T) {
	want := []string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT",
		"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK",
		"UDP", "ASSURED", "ERR!"}
	var got []string
	for s := StateNone; s <= numStates; s++ {
		got = append(got, s.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("State.String (-want +got):\n%s", diff)
	}
}

// The INPUT_ONLY table exactly as IPVS.md §2.3 prints it, one row per
// event, columns NONE ES SS SR FW TW CL CW LA LI SA.
var ipvsMDInputOnly = map[string][11]string{
	"syn": {"SR", "ES", "ES", "SR", "SR", "SR", "SR", "SR", "SR", "SR", "SR"},
	"fin": {"CL", "FW", "SS", "TW", "FW", "TW", "CL", "CW", "LA", "LI", "TW"},
	"ack": {"ES", "ES", "SS", "ES", "FW", "TW", "CL", "CW", "CL", "LI", "ES"},
	"rst": {"CL", "CL", "CL", "SR", "CL", "CL", "CL", "CL", "LA", "LI", "CL"},
}

// secure_tcp differs only in the syn row (IPVS.md §2.3).
var ipvsMDSecureSyn = [11]string{"SA", "ES", "ES", "SR", "SA", "SA", "SA", "SA", "SA", "SA", "SA"}

var abbrev = map[string]State{
	"NO": StateNone, "ES": StateEstablished, "SS": StateSynSent, "SR": StateSynRecv,
	"FW": StateFinWait, "TW": StateTimeWait, "CL": StateClose, "CW": StateCloseWait,
	"LA": StateLastAck, "LI": StateListen, "SA": StateSynAck,
}

func TestNextInputOnly(t *testing.T) {
	events := []struct {
		name  string
		flags uint8
	}{
		{"syn", TCPSyn},
		{"fin", TCPFin},
		{"ack", TCPAck},
		{"rst", TCPRst},
	}
	for _, secure := range []bool{false, true} {
		for _, ev := range events {
			for from := StateNone; from < numTCPStates; from++ {
				want := abbrev[ipvsMDInputOnly[ev.name][from]]
				if secure && ev.name == "syn" {
					want = abbrev[ipvsMDSecureSyn[from]]
				}
				if got := from.Next(ev.flags, secure); got != want {
					t.Errorf("secure=%v %v --%s--> %v, want %v", secure, from, ev.name, got, want)
				}
			}
		}
	}
}

func TestNextFlagPriority(t *testing.T) {
	tests := []struct {
		name  string
		from  State
		flags uint8
		want  State
	}{
		{"no flag forces CLOSE", StateEstablished, 0, StateClose},
		{"PSH only forces CLOSE", StateSynRecv, 0x08, StateClose},
		{"URG only forces CLOSE from NONE", StateNone, 0x20, StateClose},
		{"SYN+ACK is syn", StateNone, TCPSyn | TCPAck, StateSynRecv},
		{"FIN+ACK is fin", StateEstablished, TCPFin | TCPAck, StateFinWait},
		{"RST+ACK is rst", StateEstablished, TCPRst | TCPAck, StateClose},
		{"RST beats SYN", StateSynRecv, TCPRst | TCPSyn, StateSynRecv},
		{"SYN beats FIN", StateEstablished, TCPSyn | TCPFin, StateEstablished},
		{"SYN+FIN from NONE", StateNone, TCPSyn | TCPFin, StateSynRecv},
		{"UDP unchanged", StateUDP, TCPRst, StateUDP},
		{"ASSURED unchanged", StateAssured, 0, StateAssured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.from.Next(tt.flags, false); got != tt.want {
				t.Fatalf("%v.Next(%#x) = %v, want %v", tt.from, tt.flags, got, tt.want)
			}
		})
	}
}

func TestActive(t *testing.T) {
	var got []State
	for s := StateNone; s < numStates; s++ {
		if s.Active() {
			got = append(got, s)
		}
	}
	want := []State{StateEstablished, StateSynSent, StateSynRecv, StateSynAck}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("active states (-want +got):\n%s", diff)
	}
}

func TestRescheduleOnSYN(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		mode int
		want bool
	}{
		{"mode 1 TIME_WAIT", Entry{State: StateTimeWait}, 1, true},
		{"mode 1 CLOSE", Entry{State: StateClose}, 1, true},
		{"mode 1 FIN_WAIT stays", Entry{State: StateFinWait}, 1, false},
		{"mode 2 FIN_WAIT", Entry{State: StateFinWait}, 2, true},
		{"mode 3 FIN_WAIT", Entry{State: StateFinWait}, 3, true},
		{"mode 2 CLOSE", Entry{State: StateClose}, 2, true},
		{"mode 0 CLOSE", Entry{State: StateClose}, 0, false},
		{"mode 1 ESTABLISHED", Entry{State: StateEstablished}, 1, false},
		{"mode 1 SYN_RECV", Entry{State: StateSynRecv}, 1, false},
		{"mode 1 UDP", Entry{State: StateUDP}, 1, false},
		{"controlled CLOSE", Entry{State: StateClose, Flags: FlagControlled}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RescheduleOnSYN(tt.e, tt.mode); got != tt.want {
				t.Fatalf("RescheduleOnSYN(%+v, %d) = %v, want %v", tt.e, tt.mode, got, tt.want)
			}
		})
	}
}
