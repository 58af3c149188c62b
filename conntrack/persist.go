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
// fresh timer and state NONE: this is how the caller replaces a template
// whose server can no longer be used. The kernel instead re-keys the old
// template out of reach and leaves it to its connections; here the
// template keeps counting them, so the old server's PersistConn drops at
// once.
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
	tk := s.templateKey()
	j := t.find(&tk)
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

// assure marks template tk ASSURED (ip_vs_control_assure_ct).
func (t *Table) assure(tk Key) {
	if j := t.find(&tk); j >= 0 {
		t.slots[j].state = StateAssured
	}
}
