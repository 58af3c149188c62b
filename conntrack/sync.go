package conntrack

import (
	"errors"
	"fmt"
)

// Connection synchronisation (the kernel's ip_vs_sync.c, protocol version
// 1): while a table queues sync records, Update and UpdateRef say which
// packets make a connection due for one (Entry.SyncDue); ApplySync puts a
// record received from another director into the table.

// Sync defaults: the sync_threshold sysctl ("3 50") and the most period
// that the evidence word's packet count can follow.
const (
	DefaultSyncThreshold = 3
	DefaultSyncPeriod    = 50
	MaxSyncPeriod        = evCountMax - 2 // the count cycles through 3..period+2
)

// syncState is what SetSync set: the packet counts at which a connection
// is due (pkts % sync_period == sync_threshold), the count after each one,
// and sync_persist_mode.
type syncState struct {
	on      bool
	persist bool
	phase   uint8 // the count of an entry ApplySync wrote: in_pkts = sync_threshold
	next    [evCountMax + 1]uint8
	at      [evCountMax + 1]bool
	// rearmed are the templates re-armed since the last Rearmed call.
	rearmed  [maxRearmed]Key
	nRearmed int
}

// maxRearmed bounds the templates Rearmed reports between two calls; more
// are not reported.
const maxRearmed = 64

func (s *syncState) noteRearmed(sl *slot) {
	if k := sl.key(); s.nRearmed < maxRearmed && !k.Invalidated() {
		s.rearmed[s.nRearmed] = k
		s.nRearmed++
	}
}

// Rearmed returns the keys of the templates whose timer re-armed them
// (they still control connections) since the last call, while sync is
// on: the kernel sends such a template with its new 60 s timeout
// (ip_vs_conn_expire, expire_later). At most 64 are kept between two calls;
// the slice is valid until the next call that changes the table.
func (t *Table) Rearmed() []Key {
	n := t.sync.nRearmed
	t.sync.nRearmed = 0
	return t.sync.rearmed[:n]
}

// CheckSync checks a sync_threshold pair: 0 <= threshold < period <=
// MaxSyncPeriod. The kernel also takes period 0 (sync once, at the
// threshold) and longer periods; udr's per-connection packet count does
// not follow them.
func CheckSync(threshold, period int) error {
	switch {
	case period < 1 || period > MaxSyncPeriod:
		return fmt.Errorf("sync period %d out of range 1..%d", period, MaxSyncPeriod)
	case threshold < 0 || threshold >= period:
		return fmt.Errorf("sync threshold %d out of range 0..%d (below the period)", threshold, period-1)
	}
	return nil
}

// SetSync turns the queueing of sync records on or off, with the
// sync_threshold pair (CheckSync) and sync_persist_mode: with it, a
// connection controlled by a template is never due, only its template
// (ip_vs_sync_conn_needed, in_persistence). Off, Update counts packets up
// to 3 as before, and SyncDue stays false.
func (t *Table) SetSync(on bool, threshold, period int, persistMode bool) error {
	if err := CheckSync(threshold, period); err != nil {
		return err
	}
	s := &t.sync
	s.on, s.persist = on, persistMode
	for c := range s.next {
		if c+1 >= 3+period {
			s.next[c] = 3 // pkts ≡ count (mod period) from 3 on
		} else {
			s.next[c] = uint8(c + 1)
		}
		s.at[c] = c%period == threshold
	}
	phase := threshold
	for phase < 3 {
		phase += period
	}
	s.phase = uint8(phase)
	return nil
}

// syncStates are the TCP states in which a connection is synced
// (ip_vs_sync_conn_needed): ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT,
// TIME_WAIT.
const syncStates = 1<<StateEstablished | 1<<StateFinWait | 1<<StateClose | 1<<StateCloseWait | 1<<StateTimeWait

// syncPacket counts a packet of connection s, which moved from state prev
// to next, while sync is on, and reports whether s is due for a sync record:
// ip_vs_sync_conn_needed with sync_version 1, a sync_period above 0 and
// sync_refresh_period 0 (the default). The kernel compares next with the
// state of the last sync (old_state); here it is the state before this
// packet, which is the same except when a connection leaves a state and
// comes back to it between two records (FIN_WAIT, SYN_RECV after a new SYN,
// ESTABLISHED, FIN_WAIT again): the second FIN_WAIT sends a record here.
// forwarder's TestSyncPolicyReference checks this against the reference,
// ipvssync.Policy.Needed, allowing that difference alone.
func (t *Table) syncPacket(s *slot, prev, next State, now uint32) bool {
	ev := s.controlled
	c := t.sync.next[evPacketsOf(ev)]
	ev = ev&^evCount | uint32(c)<<evCountShift
	if ev&evConfirmed == 0 && (now-ev)&evBorn >= t.confirm {
		ev |= evConfirmed
	}
	s.controlled = ev
	if t.sync.persist && s.flags&FlagControlled != 0 {
		return false
	}
	if s.proto == protoTCP {
		if syncStates&(1<<next) == 0 {
			return false
		}
		if next != prev && next != StateEstablished {
			return true
		}
	}
	return t.sync.at[c]
}

// StateTimeout returns the timeout in seconds of connection state s: what
// the kernel sends as a connection's timeout (cp->timeout / HZ,
// ip_vs_sync_conn), the timer its last packet set.
func (t *Table) StateTimeout(s State) uint32 {
	if s >= numStates {
		return 0
	}
	return t.timeouts[s] / t.hz
}

// SyncOutcome says what ApplySync did with a record.
type SyncOutcome uint8

// Sync outcomes.
const (
	// SyncInserted: a new entry.
	SyncInserted SyncOutcome = iota + 1
	// SyncUpdated: an entry that earlier records made, with no packet
	// here since, took the record's state, timer and activity.
	SyncUpdated
	// SyncReplaced: such a connection, bound to another server, was
	// replaced by the record's (an active record: the other director
	// rescheduled the connection).
	SyncReplaced
	// SyncIgnored: an inactive record for such a connection bound to
	// another server, the expiration message of a connection that was
	// replaced since (ip_vs_proc_conn).
	SyncIgnored
	// SyncKept: the entry has had packets here (it is this director's
	// own, or was taken over): it is left as it is.
	SyncKept
)

// MaxSyncTimeout bounds the timeout of a sync record, in seconds: the
// table's clock compares times up to 2^31 ticks apart.
const MaxSyncTimeout = 1 << 30 / DefaultTicksPerSecond

// errSyncNoDest is returned by ApplySync for a record without a server.
var errSyncNoDest = errors.New("sync: DestID 0")

// ApplySync puts a sync record into the table at now, as ip_vs_proc_conn
// does on a backup: connection or template k, bound to real server e.Dest,
// in state e.State, with a timer of timeout seconds (0: the state's
// timeout, 180 s for a template, as for a version-0 record).
//
// A new entry is bound as ip_vs_bind_dest binds a synced one: a template
// counts in PersistConn; a connection in ActiveConn when e.Flags has
// FlagActive (the sender's IP_VS_CONN_F_INACTIVE clear), else in InActConn,
// whatever its state; a later state change here moves it as usual. A
// connection with FlagControlled (and FlagAllPorts and e.Netmask, from this
// director's service) is linked to its template if that is in the table,
// as Restore links one. Its packet count is the sync threshold (the kernel
// sets in_pkts to it), and its next packet confirms it (defense.go).
//
// An entry already there that earlier records made (FlagSynced) is updated
// as ip_vs_proc_conn updates one: its state and timer, and for a
// connection its ActiveConn/InActConn count when the record's activity
// differs. A connection bound to another server is replaced by an active
// record and left alone by an inactive one; a template keeps its server
// while it controls connections and otherwise takes the record's (the
// kernel keeps it: a template the sender re-created for another server
// would send the client to the old one after a takeover). An entry that
// has had a packet here is never changed (SyncKept): it is forwarding.
//
// ApplySync never evicts: on a full table it fails with ErrTableFull. It
// refuses what Restore refuses (a state that does not fit the protocol or
// the kind of entry, DestID 0) with an error, the table unchanged.
func (t *Table) ApplySync(k Key, e Entry, timeout, now uint32) (SyncOutcome, error) {
	if e.Dest == 0 {
		return 0, errSyncNoDest
	}
	e.Flags &^= FlagSynced | FlagRearmed
	if k.Template {
		e.Flags = e.Flags&^(FlagActive|FlagControlled|FlagAllPorts) | FlagTemplate
	}
	if timeout == 0 {
		timeout = 3 * 60
		if !k.Template {
			timeout = t.StateTimeout(e.State)
		}
	}
	ticks := min(timeout, MaxSyncTimeout) * t.hz
	if err := restorable(k, e, ticks); err != nil {
		return 0, err
	}
	out := SyncInserted
	if i := t.live(&k, now); i >= 0 {
		s := &t.slots[i]
		switch {
		case s.flags&FlagSynced == 0:
			return SyncKept, nil
		case !k.Template && s.dest != e.Dest:
			if e.Flags&FlagActive == 0 {
				return SyncIgnored, nil
			}
			t.remove(i, now, false) // ip_vs_conn_expire_now
			out = SyncReplaced
		default:
			if k.Template {
				if s.dest != e.Dest && s.controlled == 0 {
					t.unbind(s)
					s.dest = e.Dest
					t.bind(s)
				}
			} else {
				if active := e.Flags&FlagActive != 0; active != (s.flags&FlagActive != 0) {
					t.moveActive(s, active)
				}
				if e.Flags&FlagControlled != 0 && s.flags&FlagControlled == 0 {
					// Its template came after it: link them now.
					t.link(s, e)
				}
				s.controlled = s.controlled&^evCount | uint32(t.sync.phase)<<evCountShift
			}
			s.state = e.State
			s.expiry = now + ticks
			t.lower(i, s.expiry)
			return SyncUpdated, nil
		}
	}
	if t.n >= t.capacity {
		t.stats.Full++
		return 0, ErrTableFull
	}
	if err := t.add(k, e, ticks, now, e.Flags&FlagActive != 0); err != nil {
		return 0, err
	}
	s := &t.slots[t.hint]
	s.flags |= FlagSynced
	if !k.Template {
		s.controlled = s.controlled&^evCount | uint32(t.sync.phase)<<evCountShift
	}
	return out, nil
}

// KernelState returns s numbered as the kernel numbers the state of a
// connection of protocol proto, or of a template: the TCP states as they
// are, a UDP connection's IP_VS_UDP_S_NORMAL 0, a template's
// IP_VS_CTPL_S_NONE 0 and IP_VS_CTPL_S_ASSURED 1.
func (s State) KernelState() uint16 {
	switch s {
	case StateUDP:
		return 0
	case StateAssured:
		return 1
	}
	return uint16(s)
}

// StateFromKernel returns the State of a kernel state number v of a
// connection of protocol proto (TCP or any other, which follows the UDP
// rules), or of a template: the inverse of KernelState. A number out of
// the protocol's range is an error.
func StateFromKernel(v uint16, proto uint8, template bool) (State, error) {
	switch {
	case template:
		switch v {
		case 0:
			return StateNone, nil
		case 1:
			return StateAssured, nil
		}
		return 0, fmt.Errorf("template state %d out of range 0..1", v)
	case proto == protoTCP:
		if v >= uint16(numTCPStates) {
			return 0, fmt.Errorf("TCP state %d out of range 0..%d", v, numTCPStates-1)
		}
		return State(v), nil
	case v != 0:
		return 0, fmt.Errorf("protocol %d state %d, want 0", proto, v)
	}
	return StateUDP, nil
}
