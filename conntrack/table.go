package conntrack

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// ErrTableFull is returned by the insert methods when the table holds
// Cap() entries and nothing near the new key can be expired or evicted.
var ErrTableFull = errors.New("connection table full")

// protoTCP is IPPROTO_TCP; every other protocol follows the UDP rules.
const protoTCP = uint8(service.TCP)

// Options tune a Table. The zero value gives the kernel defaults.
type Options struct {
	// Timeouts are the ipvsadm --set timeouts; zero fields are defaults.
	Timeouts service.Timeouts
	// DropEntry and SecureTCP are the modes of the drop_entry and
	// secure_tcp defences (SetDefense); the zero value is off, as in the
	// kernel.
	DropEntry, SecureTCP DefenseMode
	// Seed seeds the key hash; 0 draws a random seed.
	Seed uint64
	// TicksPerSecond is the rate of the clock that every now argument
	// counts in; 0 means DefaultTicksPerSecond.
	TicksPerSecond uint32
}

// DefaultTicksPerSecond is the table clock's default rate: 10 ms ticks, so
// that a timer fires within 10 ms of the kernel's (which counts jiffies).
const DefaultTicksPerSecond = 100

// Stats count what the table did on its own.
type Stats struct {
	// Expired counts entries removed because their timer had fired (by
	// Sweep, or found first by a lookup or an insert into a full table),
	// and those FlushNodest removed.
	Expired uint64
	// Evicted counts live entries removed to make room (see doc.go).
	Evicted uint64
	// Full counts inserts refused with ErrTableFull.
	Full uint64
	// Dropped counts entries the defences removed before their timer
	// fired (defense.go).
	Dropped uint64
}

// Table is a bounded connection table: open addressing with linear
// probing and backward-shift deletion over a slice of pointer-free slots,
// allocated once, and a timing wheel over blocks of slots (wheel.go). It
// never holds more than Cap() entries.
type Table struct {
	slots     []slot
	capacity  int
	n         int
	reg       *dest.Registry
	seed      uint64
	hz        uint32            // ticks per second
	timeouts  [numStates]uint32 // in ticks
	newConn   uint32            // newConnTimeout in ticks
	rearm     uint32            // templateRearm in ticks
	secureTCP bool
	confirm   uint32 // confirmAfter in ticks
	hint      int    // slot of the last key found or inserted
	stats     Stats
	w         wheel
	def       defense
	sync      syncState
}

// New returns an empty table for at most capacity entries (connections and
// templates together) whose real servers live in reg.
func New(capacity int, reg *dest.Registry, opts Options) *Table {
	if capacity < 1 {
		panic(fmt.Sprintf("conntrack: capacity %d, want >= 1", capacity))
	}
	if reg == nil {
		panic("conntrack: nil registry")
	}
	nslots := slotsFor(capacity)
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	hz := opts.TicksPerSecond
	if hz == 0 {
		hz = DefaultTicksPerSecond
	}
	t := &Table{
		capacity: capacity,
		reg:      reg,
		seed:     seed,
		hz:       hz,
		newConn:  newConnTimeout * hz,
		rearm:    templateRearm * hz,
		confirm:  confirmAfter * hz,
	}
	t.slots = allocSlots(t, nslots)
	t.w.init(nslots)
	t.def.rng.Seed(seed, seed^0x9e3779b97f4a7c15)
	t.SetDefense(opts.DropEntry, opts.SecureTCP)
	t.SetTimeouts(opts.Timeouts)
	t.SetSync(false, DefaultSyncThreshold, DefaultSyncPeriod, false)
	return t
}

// SetTimeouts changes the ESTABLISHED, FIN_WAIT and UDP timeouts; zero
// fields mean the defaults (900, 120, 300 s). As in the kernel, an entry
// keeps its current expiry and gets the new timeout on its next packet.
func (t *Table) SetTimeouts(to service.Timeouts) {
	to = to.WithDefaults()
	t.timeouts = defaultTimeouts
	t.timeouts[StateEstablished] = to.TCP
	t.timeouts[StateFinWait] = to.TCPFin
	t.timeouts[StateUDP] = to.UDP
	for i := range t.timeouts {
		t.timeouts[i] *= t.hz
	}
}

// TicksPerSecond returns the rate of the table's clock.
func (t *Table) TicksPerSecond() uint32 { return t.hz }

// SecondsLeft returns the whole seconds e has left at now, 0 once it has
// expired: the "expire" column of ipvsadm -L -c, which the kernel
// truncates ((cp->timer.expires - jiffies) / HZ, ip_vs_conn_seq_show).
func (t *Table) SecondsLeft(e Entry, now uint32) uint32 { return e.Expires(now) / t.hz }

// Len returns the number of entries, expired ones not yet removed included.
func (t *Table) Len() int { return t.n }

// Cap returns the most entries the table holds.
func (t *Table) Cap() int { return t.capacity }

// Stats returns the table's counters.
func (t *Table) Stats() Stats { return t.stats }

// Range calls fn for every entry in slot order until fn returns false.
// Entries whose timer has fired since the last Sweep are included, with
// Expires(now) 0. fn must not change the table.
func (t *Table) Range(fn func(k Key, e Entry) bool) {
	for i := range t.slots {
		s := &t.slots[i]
		if !s.empty() && !fn(s.key(), s.entry()) {
			return
		}
	}
}

// Lookup returns the entry of k. An entry whose timer has fired is
// expired on the spot (a template still controlling connections is
// re-armed instead) and reported missing.
func (t *Table) Lookup(k Key, now uint32) (Entry, bool) {
	i := t.live(&k, now)
	if i < 0 {
		return Entry{}, false
	}
	return t.slots[i].entry(), true
}

// Insert adds connection k bound to real server dest, as ip_vs_conn_new
// does: state NONE (UDP for UDP), a 3 s timer, counted in the server's
// InActConn, and the server marked overloaded if it reaches its upper
// threshold. The caller then applies the packet with Update. An existing
// entry for k is removed first. On a full table Insert expires or evicts
// an entry (see doc.go) or fails with ErrTableFull.
func (t *Table) Insert(k Key, dest dest.ID, now uint32) error {
	if k.Template {
		panic("conntrack: Insert of a template key, use InsertTemplate")
	}
	if dest == 0 {
		panic("conntrack: Insert with DestID 0")
	}
	i, err := t.place(&k, now)
	if err != nil {
		return err
	}
	s := &t.slots[i]
	s.dest = dest
	s.expiry = now + t.newConn
	s.state = initialState(k.Proto)
	s.controlled = now & evBorn // evidence: no packet yet
	t.lower(i, s.expiry)
	t.bind(s)
	return nil
}

func initialState(proto uint8) State {
	if proto == protoTCP {
		return StateNone
	}
	return StateUDP
}

// Update applies one client packet to connection k, as set_tcp_state and
// ip_vs_conn_put do: the TCP flags drive the INPUT-ONLY state machine
// (other protocols stay UDP), a change between active and inactive states
// moves the connection between the server's ActiveConn and InActConn, a
// connection reaching ESTABLISHED assures its template, and the timer
// restarts with the timeout of the new state. It returns the updated entry,
// or false if k has no live entry. A template key is returned unchanged.
func (t *Table) Update(k Key, tcpFlags uint8, now uint32) (Entry, bool) {
	i := t.live(&k, now)
	if i < 0 {
		return Entry{}, false
	}
	return t.update(i, tcpFlags, now), true
}

// A Ref names the slot of an entry from LookupRef to the UpdateRef that
// follows it, so that the packet path probes the table once per packet.
// Any other call on the Table invalidates it.
type Ref int32

// LookupRef is Lookup that also returns a Ref to the entry. It takes the
// key by pointer: the packet path keeps it in its decoded frame.
func (t *Table) LookupRef(k *Key, now uint32) (Entry, Ref, bool) {
	i := t.live(k, now)
	if i < 0 {
		return Entry{}, -1, false
	}
	return t.slots[i].entry(), Ref(i), true
}

// UpdateRef is Update of the entry that LookupRef just returned.
func (t *Table) UpdateRef(r Ref, tcpFlags uint8, now uint32) Entry {
	return t.update(int(r), tcpFlags, now)
}

func (t *Table) update(i int, tcpFlags uint8, now uint32) Entry {
	s := &t.slots[i]
	if s.isTemplate() {
		return s.entry()
	}
	next := StateUDP
	if s.proto == protoTCP {
		next = s.state.Next(tcpFlags, t.secureTCP)
	}
	changed := next != s.state
	if changed && next.Active() != (s.flags&FlagActive != 0) {
		t.moveActive(s, next.Active())
	}
	expiry := now + t.timeouts[next]
	prev := s.state
	s.state = next
	s.expiry = expiry
	due := false
	if t.sync.on {
		due = t.syncPacket(s, prev, next, now)
	} else if ev := s.controlled; ev&evConfirmed == 0 {
		// The evidence of an unconfirmed connection (defense.go): a
		// store only when it changes.
		if (now-ev)&evBorn >= t.confirm {
			s.controlled = ev | evConfirmed
		} else if ev < evPackets {
			s.controlled = ev + evPacket
		}
	}
	// t.lower(i, s.expiry), by hand for the packet path: s's block is
	// filed, so one compare.
	if b := i >> blockShift; int32(expiry-t.w.blocks[b].min) < 0 {
		t.w.refile(int32(b), expiry)
	}
	if s.flags&FlagSynced != 0 {
		s.flags &^= FlagSynced // a packet of its own
	}
	// The entry is built from the values at hand rather than read back
	// from the slot just written.
	e := Entry{Dest: s.dest, Expiry: expiry, State: next, Flags: s.flags, Netmask: s.netmask, SyncDue: due} // a connection: no Controlled
	if changed && next == StateEstablished && s.flags&FlagControlled != 0 {
		t.assure(s)
	}
	return e
}

// Delete removes k at now, as ip_vs_conn_expire_now does for a rescheduled
// connection: its server's counts drop, and its template stays, ASSURED or
// not, to its own timer (ip_vs_conn_expire drops an unused unassured
// template only after ip_vs_conn_del, which eviction reproduces). A
// template that still controls connections is not deleted: Delete returns
// false.
func (t *Table) Delete(k Key, now uint32) bool {
	i := t.find(&k)
	if i < 0 {
		return false
	}
	if s := &t.slots[i]; s.isTemplate() && s.controlled > 0 {
		return false
	}
	t.remove(i, now, false)
	return true
}

// home returns the first slot to probe for k: fastrange maps the hash
// onto [0, len(slots)) with one multiplication instead of a modulo.
func (t *Table) home(k *Key) int {
	hi, _ := bits.Mul64(k.hash(t.seed), uint64(len(t.slots)))
	return int(hi)
}

// probe returns the slot of k and true, or the empty slot that ends k's
// probe sequence and false. There is always an empty slot.
func (t *Table) probe(k *Key) (int, bool) {
	if s := &t.slots[t.hint]; !s.empty() && s.matches(k) {
		// Lookup then Update, or Insert then Update, of the same key
		// is the common case: one compare instead of a probe.
		return t.hint, true
	}
	for i := t.home(k); ; {
		s := &t.slots[i]
		if s.empty() {
			return i, false
		}
		if s.matches(k) {
			t.hint = i
			return i, true
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// find returns the slot of k, or -1.
func (t *Table) find(k *Key) int {
	if i, ok := t.probe(k); ok {
		return i
	}
	return -1
}

// live returns the slot of k if its entry is alive at now, or -1.
func (t *Table) live(k *Key, now uint32) int {
	i := t.find(k)
	if i >= 0 && t.slots[i].expired(now) && t.expire(i, now) {
		return -1
	}
	return i
}

// place makes room for k and returns its slot, filled with the key and
// otherwise zero. An existing entry for k is removed first.
func (t *Table) place(k *Key, now uint32) (int, error) {
	i, found := t.probe(k)
	if found {
		t.remove(i, now, false)
		i, _ = t.probe(k)
	}
	if t.n >= t.capacity {
		if !t.makeRoom(k, now) {
			t.stats.Full++
			return -1, ErrTableFull
		}
		i, _ = t.probe(k)
	}
	s := &t.slots[i]
	*s = slot{client: k.Client, vip: k.VIP, cport: k.CPort, vport: k.VPort, proto: k.Proto}
	if k.Template {
		s.flags = FlagTemplate
	}
	t.n++
	t.hint = i
	return i, nil
}

// remove takes the entry in slot i out of the table at now and unbinds
// it. A controlled connection leaves its template; explicit is the
// kernel's "timeout 0" case (ip_vs_conn_del, which sets cp->timeout to 0
// before ip_vs_conn_expire), in which a template left with no connection
// and not ASSURED is dropped too.
func (t *Table) remove(i int, now uint32, explicit bool) {
	s := t.slots[i]
	t.deleteAt(i)
	t.unbind(&s)
	if s.flags&FlagControlled != 0 {
		end := now
		if s.expired(now) {
			end = s.expiry // its timer fired then, not at now
		}
		t.unlink(&s, end, explicit)
	}
}

// deleteAt empties slot i by backward-shift deletion: every later entry of
// the cluster whose home is not in (i, j] moves back into the hole, so
// that probes never need tombstones.
func (t *Table) deleteAt(i int) {
	n := len(t.slots)
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		s := &t.slots[j]
		if s.empty() {
			break
		}
		k := s.key()
		h := t.home(&k)
		stays := h > i && h <= j
		if i > j { // the cluster wraps around the end of the slice
			stays = h > i || h <= j
		}
		if !stays {
			t.slots[i] = *s
			t.lower(i, s.expiry) // it may have moved into another block
			i = j
		}
	}
	t.slots[i] = slot{}
	t.n--
}
