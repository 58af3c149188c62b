package conntrack

import (
	"fmt"
	"math/rand/v2"
)

// A connection's evidence word (Table.update keeps it): what the table has
// seen of a connection's traffic, kept in the slot's controlled field, which
// only a template uses otherwise (doc.go, "Full table"). Bits 0-23 are the
// tick of its first packet modulo 2^24 (46 hours at 100 ticks a second,
// longer than the default timeouts; a connection whose only packets are
// further apart is confirmed one packet late), bits 24-30 count its
// packets, and bit 31 says that a packet came at least confirmAfter seconds
// after the first one: the connection has carried traffic over time and is
// "confirmed".
//
// The count goes up to 3 and stays there, except while the table queues
// sync records (SetSync): then every packet counts, and from 3 it cycles
// through period values, so that it stays equal to the kernel's in_pkts
// modulo sync_period (ip_vs_sync_conn_needed). Either way 3 and more read
// "three or more packets".
const (
	evBorn       = 1<<24 - 1
	evCountShift = 24
	evCountMax   = 1<<7 - 1
	evCount      = evCountMax << evCountShift
	evPacket     = 1 << evCountShift
	evPackets    = 3 << evCountShift
	evConfirmed  = 1 << 31

	// confirmAfter is how many seconds after its first packet a
	// connection's packet confirms it.
	confirmAfter = 1
)

// evPacketsOf returns the packet count of evidence word ev.
func evPacketsOf(ev uint32) uint32 { return ev >> evCountShift & evCountMax }

// DefenseMode is the setting of one of the kernel's defence strategies
// (/proc/sys/net/ipv4/vs/drop_entry and secure_tcp): off, automatic
// (currently off or on) or always on.
type DefenseMode uint8

// Defence modes, numbered as the sysctls' values.
const (
	DefenseOff DefenseMode = iota
	// DefenseAuto turns the defence on while the table is under pressure
	// (see Pressure); the mode then reads DefenseAutoOn.
	DefenseAuto
	DefenseAutoOn
	DefenseAlways
)

// ParseDefenseMode returns the mode of a sysctl value 0..3.
func ParseDefenseMode(v int) (DefenseMode, error) {
	if v < 0 || v > int(DefenseAlways) {
		return 0, fmt.Errorf("%d out of range 0..3", v)
	}
	return DefenseMode(v), nil
}

// Active reports whether the defence is on.
func (m DefenseMode) Active() bool { return m >= DefenseAutoOn }

// next returns the mode after a level update with the table under
// pressure or not (update_defense_level in ip_vs_ctl.c).
func (m DefenseMode) next(pressure bool) DefenseMode {
	switch m {
	case DefenseAuto, DefenseAutoOn:
		if pressure {
			return DefenseAutoOn
		}
		return DefenseAuto
	}
	return m
}

// Pressure is the fill of the table from which the automatic defences
// turn on: 7/8 of Cap(). The kernel compares its free memory with the
// amemthresh sysctl instead; udr's table is bounded, so its fill is
// what runs out.
const (
	pressureNum = 7
	pressureDen = 8
)

// Idle limits of unconfirmed connections while a defence is on, in
// seconds: a half-open one goes after halfOpenDrop seconds without a
// packet with drop_entry, after halfOpenSecure with secure_tcp (Linux
// 2.4's SYN_RECV timeout in its DoS table); any other unconfirmed one after
// unconfirmedIdle (todrop_entry's 60 s).
const (
	halfOpenDrop    = 1
	halfOpenSecure  = 10
	unconfirmedIdle = 60
)

// defense is a table's defence state (update_defense_level,
// ip_vs_random_dropentry).
type defense struct {
	dropEntry, secureTCP DefenseMode
	tick                 uint32 // the tick of the last step
	next                 uint32 // when the levels are next updated
	pos                  int    // the drop_entry walk's next slot
	left                 int    // slots the walk has left this second
	rng                  rand.PCG
}

// SetDefense sets the drop_entry and secure_tcp modes. An automatic mode
// takes effect at the next level update, within a second, as in the
// kernel; DefenseAlways and DefenseOff at once.
func (t *Table) SetDefense(dropEntry, secureTCP DefenseMode) {
	t.def.dropEntry, t.def.secureTCP = dropEntry, secureTCP
	t.secureTCP = secureTCP.Active()
	t.def.next = t.def.tick // update at the next step
}

// Defense returns the drop_entry and secure_tcp modes, an automatic one
// as DefenseAutoOn while it is on.
func (t *Table) Defense() (dropEntry, secureTCP DefenseMode) {
	return t.def.dropEntry, t.def.secureTCP
}

// Pressure reports whether the table is full enough for the automatic
// defences to turn on.
func (t *Table) Pressure() bool {
	return t.n*pressureDen >= t.capacity*pressureNum
}

func (t *Table) defending() bool {
	return t.def.dropEntry.Active() || t.def.secureTCP.Active()
}

// defend runs the defences for tick now, once per tick: each second it
// updates the automatic modes from the table's pressure, and while a
// defence is on, it walks 1/32 of the slots (64 at least) a second from a
// random start,
// a share each tick, removing the unconfirmed connections past their
// idle limit and, with drop_entry, the templates never ASSURED that
// control nothing (ip_vs_random_dropentry).
func (t *Table) defend(now uint32) {
	d := &t.def
	d.tick = now
	if int32(now-d.next) >= 0 {
		d.next = now + t.hz
		pressure := t.Pressure()
		d.dropEntry = d.dropEntry.next(pressure)
		d.secureTCP = d.secureTCP.next(pressure)
		t.secureTCP = d.secureTCP.Active()
		d.left = 0
		if t.defending() {
			// 1/32 of the slots, as the kernel's 1/32 of its buckets,
			// and a block at least in a small table.
			d.left = min(max(len(t.slots)/32, blockSlots), len(t.slots))
			d.pos = int(d.rng.Uint64() % uint64(len(t.slots)))
		}
	}
	if d.left == 0 {
		return
	}
	n := min(d.left, max(len(t.slots)/32/int(t.hz), blockSlots))
	d.left -= n
	for i := d.pos; n > 0; {
		if s := &t.slots[i]; !s.empty() && t.droppable(s, now) {
			t.remove(i, now, true)
			t.stats.Dropped++
			continue // look at the entry that shifted in
		}
		if i++; i == len(t.slots) {
			i = 0
		}
		d.pos = i
		n--
	}
}

// droppable reports whether a defence that is on removes s at now.
func (t *Table) droppable(s *slot, now uint32) bool {
	if s.isTemplate() {
		return t.def.dropEntry.Active() && s.controlled == 0 && s.state != StateAssured
	}
	if s.controlled&evConfirmed != 0 {
		return false
	}
	var limit uint32
	switch s.state {
	case StateNone, StateSynRecv, StateSynAck:
		switch {
		case t.def.dropEntry.Active():
			limit = halfOpenDrop
		case t.def.secureTCP.Active():
			limit = halfOpenSecure
		default:
			return false
		}
	default:
		if !t.defending() {
			return false
		}
		limit = unconfirmedIdle
	}
	return t.idle(s, now) >= int64(limit*t.hz)
}

// idle returns the ticks since s's last packet, from its expiry and the
// timeout of its state (negative just after an insert, whose 3 s timer is
// longer than NONE's 2 s).
func (t *Table) idle(s *slot, now uint32) int64 {
	return int64(t.timeouts[s.state]) - int64(int32(s.expiry-now))
}
