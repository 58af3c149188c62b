package conntrack

// A Flush is the position of FlushNodest's pass over the table. Its zero
// value starts a new pass.
type Flush struct {
	started bool
	pos     int // next slot to look at
	left    int // slots left to look at
}

// FlushNodest continues flush f: it looks at up to budget slots and
// expires every connection whose real server is no longer available
// (deleted), and every such template that controls no connection; a
// template left controlling nothing by the expiry of its last connection
// goes too, ASSURED or not. This is the kernel's
// ip_vs_expire_nodest_conn_flush, run when a real server is deleted with
// expire_nodest_conn=1; the removals count in Stats.Expired. It returns
// whether the pass is complete.
//
// Like Walk, a pass starts just after an empty slot and goes once around
// the table, so that deletion's backward shifts never carry an entry past
// it unseen; an entry inserted during the pass may be missed, as in the
// kernel, but no new connection is bound to a deleted server.
func (t *Table) FlushNodest(f *Flush, now uint32, budget int) bool {
	n := len(t.slots)
	if !f.started {
		e := 0
		for !t.slots[e].empty() {
			e++
		}
		f.started, f.pos, f.left = true, e+1, n-1
		if f.pos == n {
			f.pos = 0
		}
	}
	for ; budget > 0 && f.left > 0; budget-- {
		s := &t.slots[f.pos]
		if !s.empty() && !t.reg.State(s.dest).Available.Load() && !(s.isTemplate() && s.controlled > 0) {
			t.flushAt(f.pos, now)
			continue // a later entry may have shifted into this slot
		}
		if f.pos++; f.pos == n {
			f.pos = 0
		}
		f.left--
	}
	return f.left == 0
}

// flushAt expires the entry in slot i now (ip_vs_conn_del) and, for a
// controlled connection, its template if that now controls nothing.
func (t *Table) flushAt(i int, now uint32) {
	s := t.slots[i]
	var tk Key
	j := -1
	if s.flags&FlagControlled != 0 {
		if j = t.templateOf(&s); j >= 0 {
			tk = t.slots[j].key() // its key: the removal may move it
		}
	}
	t.remove(i, now, false)
	t.stats.Expired++
	if j < 0 {
		return
	}
	if j := t.find(&tk); j >= 0 && t.slots[j].controlled == 0 {
		t.remove(j, now, false)
		t.stats.Expired++
	}
}
