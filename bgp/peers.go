package bgp

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// PeerStatus is a session's state as udr admin -L --bgp and the metrics
// show it.
type PeerStatus struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	State   string     `json:"state"` // Idle, Connect, Active, OpenSent, OpenConfirm, Established
	// Since is when the session was established, zero when it is not.
	Since           time.Time `json:"since,omitzero"`
	UpdatesSent     uint64    `json:"updates_sent"`
	UpdatesReceived uint64    `json:"updates_received"`
	// LastError is why the session last went down, "" when it never did.
	LastError string `json:"last_error,omitempty"`
}

// Up reports whether the session is established.
func (p PeerStatus) Up() bool { return p.State == "Established" }

var stateNames = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE:        "Idle",
	api.PeerState_SESSION_STATE_CONNECT:     "Connect",
	api.PeerState_SESSION_STATE_ACTIVE:      "Active",
	api.PeerState_SESSION_STATE_OPENSENT:    "OpenSent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "OpenConfirm",
	api.PeerState_SESSION_STATE_ESTABLISHED: "Established",
}

var fsmNames = map[gobgp.FSMState]string{
	gobgp.BGP_FSM_IDLE:        "Idle",
	gobgp.BGP_FSM_CONNECT:     "Connect",
	gobgp.BGP_FSM_ACTIVE:      "Active",
	gobgp.BGP_FSM_OPENSENT:    "OpenSent",
	gobgp.BGP_FSM_OPENCONFIRM: "OpenConfirm",
	gobgp.BGP_FSM_ESTABLISHED: "Established",
}

// Peers returns the state of every configured peer, in configuration
// order.
func (s *Speaker) Peers() []PeerStatus {
	byAddr := make(map[netip.Addr]PeerStatus)
	s.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil || p.State == nil {
			return
		}
		addr, err := netip.ParseAddr(p.Conf.NeighborAddress)
		if err != nil {
			return
		}
		st := PeerStatus{Address: addr, ASN: p.Conf.PeerAsn, State: stateNames[p.State.SessionState]}
		if st.State == "" {
			st.State = "Idle"
		}
		if st.Up() && p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			st.Since = p.Timers.State.Uptime.AsTime()
		}
		if m := p.State.Messages; m != nil {
			if m.Sent != nil {
				st.UpdatesSent = m.Sent.Update
			}
			if m.Received != nil {
				st.UpdatesReceived = m.Received.Update
			}
		}
		if p.State.DisconnectMessage != "" {
			st.LastError = p.State.DisconnectMessage
		}
		byAddr[addr] = st
	})
	out := make([]PeerStatus, 0, len(s.cfg.Peers))
	for _, p := range s.cfg.Peers {
		st, ok := byAddr[p.Address]
		if !ok {
			st = PeerStatus{Address: p.Address, ASN: p.ASN, State: "Idle"}
		}
		out = append(out, st)
	}
	return out
}

// peerEvent logs a session's change of state: up when it is established,
// down (with the reason) when an established session ends; the steps in
// between (Idle, Connect, Active, OpenSent, OpenConfirm) at DEBUG.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	p := ev.Peer
	state := fsmNames[p.State.SessionState]
	if state == "" {
		state = p.State.SessionState.String()
	}
	s.statesMu.Lock()
	was := s.states[p.Conf.NeighborAddress]
	s.states[p.Conf.NeighborAddress] = p.State.SessionState
	s.statesMu.Unlock()
	switch {
	case p.State.SessionState == gobgp.BGP_FSM_ESTABLISHED:
		s.log.Info("bgp peer up", "peer", p.Conf.NeighborAddress, "asn", p.State.PeerASN, "router_id", p.State.RouterID, "local", p.Transport.LocalAddress)
	case was == gobgp.BGP_FSM_ESTABLISHED:
		s.log.Warn("bgp peer down", "peer", p.Conf.NeighborAddress, "state", state, "reason", p.State.DisconnectMessage)
	default:
		s.log.Debug("bgp peer state", "peer", p.Conf.NeighborAddress, "state", state, "reason", p.State.DisconnectMessage)
	}
}
