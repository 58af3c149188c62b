package conntrack

import (
	"errors"

	"github.com/udr-lb/udr/dest"
)

// errNoTemplate is returned by InsertControlled when the template it
// should link to is not in the table.
var errNoTemplate = errors.New("persistence template missing")

// InsertTemplate adds persistence template tk (a key from
// Persistence.TemplateKey) pointing to real server dest, with its timer set
// to timeout seconds from now, counted in the server's PersistConn.
//
// If tk is already present, the template is re-pointed to dest with a
// fresh timer and state NONE. A template whose server can no longer be
// used is not to be replaced this way: InvalidateTemplate moves it out of
// the way first, as the kernel does.
func (t *Table) InsertTemplate(tk Key, dest dest.ID, timeout, now uint32) error {
	if !tk.Template {
		panic("conntrack: InsertTemplate of a connection key")
	}
	if dest == 0 {
		panic("conntrack: InsertTemplate with DestID 0")
	}
	i := t.find(&tk)
	if i < 0 {
		var err error
		if i, err = t.place(&tk, now); err != nil {
			return err
		}
	} else {
		t.unbind(&t.slots[i])
	}
	s := &t.slots[i]
	s.dest = dest
	s.expiry = now + timeout*t.hz
	s.state = StateNone
	s.flags &^= FlagRearmed
	t.lower(i, s.expiry)
	t.bind(s)
	return nil
}

// InsertControlled adds connection k under the persistence template of
// its client (p.TemplateKey(k)), which must be present: k is bound to the
// template's real server, which it returns, the template counts one more
// controlled connection, and the template's timer restarts with p.Timeout
// (60 s once it has been re-armed). Otherwise it is Insert.
func (t *Table) InsertControlled(k Key, p Persistence, now uint32) (dest.ID, error) {
	if k.Template {
		panic("conntrack: InsertControlled of a template key")
	}
	// Remove an old k before taking the template: it may be one of the
	// template's own connections.
	if i := t.find(&k); i >= 0 {
		t.remove(i, now, false)
	}
	tk := p.TemplateKey(k)
	j := t.live(&tk, now)
	if j < 0 {
		return 0, errNoTemplate
	}
	dest := t.slots[j].dest
	// Count the link first: a template that controls a connection is
	// never evicted, so making room cannot take it away.
	t.slots[j].controlled++
	i, err := t.place(&k, now)
	if err != nil {
		t.slots[t.find(&tk)].controlled--
		return 0, err
	}
	s := &t.slots[i]
	s.dest = dest
	s.expiry = now + t.newConn
	s.state = initialState(k.Proto)
	s.controlled = now & evBorn
	t.lower(i, s.expiry)
	s.flags |= FlagControlled
	if p.AllPorts {
		s.flags |= FlagAllPorts
	}
	s.netmask = p.Netmask
	t.bind(s)

	j = t.find(&tk) // place may have moved it
	ts := &t.slots[j]
	timeout := p.Timeout * t.hz
	if ts.flags&FlagRearmed != 0 {
		timeout = t.rearm
	}
	ts.expiry = now + timeout
	t.lower(j, ts.expiry)
	t.hint = i
	return dest, nil
}

// invalidPort is the virtual port ip_vs_check_template gives a template it
// invalidates (its destination port too).
const invalidPort = 0xffff

// InvalidateTemplate is what ip_vs_check_template does to template tk when
// its real server can no longer be used (deleted, or quiesced with
// expire_quiescent_template): the template is re-keyed out of reach, with
// virtual port 65535 and client port 0 as the kernel lists it, and stays
// bound to its server, counted in its PersistConn, with the connections
// it controls, until its own timer fires (re-armed while it controls
// any). The caller then schedules and inserts a new template under tk. It
// reports whether tk was present; a template whose virtual port is
// already 65535 is left where it is, as in the kernel (InsertTemplate then
// re-points it: the kernel would keep both under the one key).
//
// Unlike the kernel's hash chains, the table holds one entry per key: an
// invalidated key keeps the index of its server's ID in its client port
// (Key.Addrs shows 0), so that a client's invalidated templates for
// different servers stay apart; two for the same server (deleted, added
// back and deleted again within one template timeout) become one, which
// counts both's connections and lives as long as the longer-lived.
func (t *Table) InvalidateTemplate(tk Key, now uint32) bool {
	i := t.find(&tk)
	if i < 0 {
		return false
	}
	if tk.VPort == invalidPort {
		return true
	}
	old := t.slots[i]
	ik := invalidKey(tk, old.dest)
	t.deleteAt(i)
	if j := t.find(&ik); j >= 0 {
		// The server's earlier invalidated template: merge.
		t.unbind(&old)
		s := &t.slots[j]
		s.controlled += old.controlled
		if int32(old.expiry-s.expiry) > 0 {
			s.expiry = old.expiry
		}
		if old.state == StateAssured {
			s.state = StateAssured
		}
		s.flags |= old.flags & FlagRearmed
		return true
	}
	j, _ := t.place(&ik, now) // one entry just left: there is room
	s := &t.slots[j]
	s.dest, s.expiry, s.controlled, s.state = old.dest, old.expiry, old.controlled, old.state
	s.flags |= old.flags &^ FlagTemplate
	t.lower(j, s.expiry)
	return true
}

// invalidKey is the key InvalidateTemplate gives template tk of server d.
func invalidKey(tk Key, d dest.ID) Key {
	tk.VPort = invalidPort
	tk.CPort = uint16(d.Index())
	return tk
}

// Invalidated reports whether k is the key of a template that
// InvalidateTemplate moved out of the way.
func (k Key) Invalidated() bool { return k.Template && k.CPort != 0 }

// templateOf returns the slot of the template that controls connection s,
// or -1: the template InvalidateTemplate moved away from s's server, while
// it counts a connection, else the one under s's template key if that is
// bound to s's server. The kernel links a connection to its template with
// a pointer; here, when a client has both kinds for one server (the server
// was deleted and added back), the two may swap connections. Neither
// total changes, and a template being given a new connection
// (InsertControlled) never loses its count to an eviction this way.
func (t *Table) templateOf(s *slot) int {
	tk := s.templateKey()
	ik := invalidKey(tk, s.dest)
	if i := t.find(&ik); i >= 0 && t.slots[i].controlled > 0 {
		return i
	}
	if j := t.find(&tk); j >= 0 && t.slots[j].dest == s.dest {
		return j
	}
	return -1
}

// unlink removes connection s, which ended at end, from its template's
// count (ip_vs_control_del). With explicit set (eviction, the kernel's
// ip_vs_conn_del), a template left controlling nothing and not ASSURED is
// dropped as well (ip_vs_conn_expire with cp->timeout 0).
//
// If the template's timer fell before end, the kernel's timer fired while
// s still held the template and re-armed it every 60 s until after end;
// doing that here keeps the result independent of the order in which
// Sweep meets the two entries.
func (t *Table) unlink(s *slot, end uint32, explicit bool) {
	j := t.templateOf(s)
	if j < 0 {
		return
	}
	ts := &t.slots[j]
	if ts.controlled > 0 {
		ts.controlled--
	}
	if late := int32(end - ts.expiry); late > 0 {
		ts.expiry += t.rearm * ((uint32(late) + t.rearm - 1) / t.rearm)
		ts.flags |= FlagRearmed
	}
	if explicit && ts.controlled == 0 && ts.state != StateAssured {
		t.remove(j, end, false)
	}
}

// assure marks the template of connection s ASSURED
// (ip_vs_control_assure_ct).
func (t *Table) assure(s *slot) {
	if j := t.templateOf(s); j >= 0 {
		t.slots[j].state = StateAssured
	}
}
