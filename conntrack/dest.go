package conntrack

// bind counts a new entry on its real server (ip_vs_bind_dest): a
// connection starts inactive (IP_VS_CONN_F_INACTIVE), a template counts in
// PersistConn. A server reaching its upper threshold is marked overloaded
// (classic rule, IPVS.md §1.15).
func (t *Table) bind(s *slot) {
	d := t.reg.State(s.dest)
	if s.isTemplate() {
		d.Persist.Add(1)
	} else {
		d.Inactive.Add(1)
	}
	if u := d.UThreshold.Load(); u != 0 && int64(d.Total()) >= int64(u) {
		d.Overloaded.Store(true)
	}
}

// unbind uncounts an entry that leaves the table (ip_vs_unbind_dest,
// classic form) and clears the overload mark: below the lower threshold if
// there is one, else below 3/4 of the upper one, else at once.
func (t *Table) unbind(s *slot) {
	d := t.reg.State(s.dest)
	switch {
	case s.isTemplate():
		d.Persist.Add(-1)
	case s.flags&FlagActive != 0:
		d.Active.Add(-1)
	default:
		d.Inactive.Add(-1)
	}
	if !d.Overloaded.Load() {
		return
	}
	total := int64(d.Total())
	l, u := int64(d.LThreshold.Load()), int64(d.UThreshold.Load())
	switch {
	case l != 0:
		if total >= l {
			return
		}
	case u != 0:
		if total*4 >= u*3 {
			return
		}
	}
	d.Overloaded.Store(false)
}

// moveActive moves a connection between its server's ActiveConn and
// InActConn (set_tcp_state).
func (t *Table) moveActive(s *slot, active bool) {
	d := t.reg.State(s.dest)
	if active {
		d.Active.Add(1)
		d.Inactive.Add(-1)
		s.flags |= FlagActive
	} else {
		d.Active.Add(-1)
		d.Inactive.Add(1)
		s.flags &^= FlagActive
	}
}
