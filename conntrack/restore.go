package conntrack

import (
	"errors"
	"fmt"
)

// errDuplicate is returned by Restore for a key already in the table.
var errDuplicate = errors.New("entry already in the table")

// Restore adds an entry carried over from another table (a state file a
// stopped udr left, package handoff): key k bound to real server e.Dest in
// state e.State, with e.Flags and e.Netmask, expiring left ticks from now.
// The server's counts are bound as if the entry's packets had come here:
// InActConn or PersistConn, and ActiveConn for a TCP connection in an
// active state (FlagActive follows the state, whatever e says). e.Expiry
// and e.Controlled are ignored: a template's count of controlled
// connections is rebuilt as its connections are restored, so restore
// templates first. A controlled connection whose template is not in the
// table is restored uncontrolled.
//
// Restore never evicts: on a full table it fails with ErrTableFull. It
// refuses an entry that no table could hold (a state that does not fit the
// protocol or the kind of entry, a template flag that disagrees with the
// key, DestID 0, no time left) and a key already present.
func (t *Table) Restore(k Key, e Entry, left, now uint32) error {
	if err := restorable(k, e, left); err != nil {
		return err
	}
	if t.find(&k) >= 0 {
		return errDuplicate
	}
	if t.n >= t.capacity {
		return ErrTableFull
	}
	return t.add(k, e, left, now, e.State.Active())
}

// add is Restore once k is known to be new and to fit, with the
// connection counted in ActiveConn when active is set; t.hint is its slot.
func (t *Table) add(k Key, e Entry, left, now uint32, active bool) error {
	i, err := t.place(&k, now)
	if err != nil {
		return err
	}
	s := &t.slots[i]
	s.dest = e.Dest
	s.expiry = now + left
	s.state = e.State
	if k.Template {
		s.flags |= e.Flags & FlagRearmed
	} else {
		// Its evidence (defense.go) is not carried over: it counts as a
		// connection that saw more than two packets, and its next packet
		// confirms it.
		s.controlled = (now-t.confirm)&evBorn | evPackets
	}
	t.lower(i, s.expiry)
	t.bind(s)
	if !k.Template {
		if active {
			t.moveActive(s, true)
		}
		if e.Flags&FlagControlled != 0 {
			t.link(s, e)
		}
	}
	t.hint = i
	return nil
}

// link makes connection s controlled by its template, whose key e.Flags'
// FlagAllPorts and e.Netmask give with s's key, if that is in the table,
// and counts it there.
func (t *Table) link(s *slot, e Entry) {
	s.flags |= e.Flags & (FlagControlled | FlagAllPorts)
	s.netmask = e.Netmask
	if j := t.templateOf(s); j >= 0 {
		t.slots[j].controlled++
	} else {
		s.flags &^= FlagControlled | FlagAllPorts
		s.netmask = 0
	}
}

// restorable checks that an entry to restore is one a table could hold.
func restorable(k Key, e Entry, left uint32) error {
	switch {
	case e.Dest == 0:
		return errors.New("restore: DestID 0")
	case left == 0:
		return errors.New("restore: no time left")
	case k.Template != (e.Flags&FlagTemplate != 0):
		return errors.New("restore: template flag and key disagree")
	case k.Template && e.State != StateNone && e.State != StateAssured:
		return fmt.Errorf("restore: template in state %v", e.State)
	case !k.Template && k.Proto == protoTCP && e.State >= numTCPStates:
		return fmt.Errorf("restore: TCP connection in state %v", e.State)
	case !k.Template && k.Proto != protoTCP && e.State != StateUDP:
		return fmt.Errorf("restore: protocol %d connection in state %v", k.Proto, e.State)
	case !k.Template && e.Flags&FlagRearmed != 0:
		return errors.New("restore: re-armed flag on a connection")
	}
	return nil
}
