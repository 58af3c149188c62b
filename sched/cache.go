package sched

import (
	"encoding/binary"
	"sync"
)

// Cache constants of ip_vs_lblc.c and ip_vs_lblcr.c (identical in both).
// Times are in seconds.
const (
	cacheMaxSize           = 1024 * 16    // tbl->max_size = IP_VS_LBLC_TAB_SIZE*16
	cacheCheckInterval     = 60           // CHECK_EXPIRE_INTERVAL: the collection timer
	cacheEntryTimeout      = 6 * 60       // ENTRY_TIMEOUT: idle time before a busy table drops an entry
	cacheDefaultExpiration = 24 * 60 * 60 // DEFAULT_EXPIRATION of lblc(r)_expiration
	cacheFullCheckEvery    = 30           // COUNT_FOR_FULL_EXPIRATION: timer runs between full checks

	// udr's bound: at most max_size*3/2 entries, as the kernel's 2025
	// "bound LBLCR and LBLC cache growth" backport; a new destination is
	// still scheduled when the table is full, only not cached. The table
	// is allocated once, at most 75% full, so probes stay short.
	cacheCapacity = cacheMaxSize * 3 / 2
	cacheBits     = 15
	cacheSlots    = 1 << cacheBits
	cacheMask     = cacheSlots - 1
)

// cacheSlot is one entry of the open-addressing table: a destination
// address (Flow.Dst) and what the scheduler keeps for it.
type cacheSlot[V any] struct {
	key     [16]byte
	used    bool
	lastuse uint32 // seconds, Flow.Now of the last lookup
	val     V
}

// cache is the lblc/lblcr table: a fixed array with linear probing and
// backward-shift deletion, so that neither lookup nor insert allocates and
// there are no pointers per entry. The kernel's 60 s collection timer,
// armed when the table is made (init_service), is replayed lazily from
// Flow.Now at each Pick.
//
// mu is the kernel's svc->sched_lock: only Pick takes it. A scheduler built
// with prev of the same kind shares prev's cache, as the kernel keeps its
// table across -a, -d and -e.
type cache[V any] struct {
	mu      sync.Mutex
	slots   []cacheSlot[V]
	entries int
	// release, if set, is called with an entry's value before the timer
	// drops the entry.
	release func(*V)

	nextCheck uint32 // when the timer fires next
	counter   int    // tbl->counter
	rover     int    // tbl->rover
}

// newCache returns an empty table whose timer was armed at now
// (ip_vs_lblc_init_svc, ip_vs_lblcr_init_svc: the first run is
// CHECK_EXPIRE_INTERVAL later).
func newCache[V any](now uint32) *cache[V] {
	return &cache[V]{slots: make([]cacheSlot[V], cacheSlots), counter: 1, nextCheck: now + cacheCheckInterval}
}

// home returns the first slot to probe for key.
func home(key *[16]byte) int {
	x := binary.LittleEndian.Uint64(key[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(key[8:])
	x *= 0xbf58476d1ce4e5b9
	return int(x >> (64 - cacheBits))
}

// lookup returns the entry for key, or nil.
func (c *cache[V]) lookup(key *[16]byte) *cacheSlot[V] {
	for i := home(key); c.slots[i].used; i = (i + 1) & cacheMask {
		if c.slots[i].key == *key {
			return &c.slots[i]
		}
	}
	return nil
}

// insert adds an entry for key, which must not be in the table, and
// returns it zeroed but for the key; nil when the table is full.
func (c *cache[V]) insert(key *[16]byte) *cacheSlot[V] {
	if c.entries >= cacheCapacity {
		return nil
	}
	i := home(key)
	for c.slots[i].used {
		i = (i + 1) & cacheMask
	}
	c.slots[i] = cacheSlot[V]{key: *key, used: true}
	c.entries++
	return &c.slots[i]
}

// remove deletes the entry in slot i, moving later entries of the same
// probe run back so that lookups still find them.
func (c *cache[V]) remove(i int) {
	c.entries--
	for {
		c.slots[i] = cacheSlot[V]{}
		j := i
		for {
			j = (j + 1) & cacheMask
			if !c.slots[j].used {
				return
			}
			// The entry at j stays when its home lies cyclically in (i, j].
			h := home(&c.slots[j].key)
			if i <= j && (i < h && h <= j) || i > j && (i < h || h <= j) {
				continue
			}
			break
		}
		c.slots[i] = c.slots[j]
		i = j
	}
}

// tick runs the collection timers (ip_vs_lblc_check_expire) that fell due
// up to now. While the table holds at most max_size entries, a run only
// counts towards the next full check, so such runs are skipped in one
// step, and of several full checks due only the last runs: nothing is
// looked up meanwhile, so it drops exactly what the earlier ones together
// would have dropped.
func (c *cache[V]) tick(now, expiration uint32) {
	const period = cacheFullCheckEvery * cacheCheckInterval
	for !before(now, c.nextCheck) {
		if c.counter%cacheFullCheckEvery != 0 && c.entries <= cacheMaxSize {
			toFull := uint32(cacheFullCheckEvery - c.counter%cacheFullCheckEvery)
			due := (now-c.nextCheck)/cacheCheckInterval + 1
			if due <= toFull { // the full check is not due yet
				c.counter += int(due)
				c.nextCheck += due * cacheCheckInterval
				return
			}
			c.counter += int(toFull)
			c.nextCheck += toFull * cacheCheckInterval
			c.nextCheck += (now - c.nextCheck) / period * period
			continue
		}
		c.checkExpire(c.nextCheck, expiration)
		c.nextCheck += cacheCheckInterval
	}
}

// checkExpire is one run of the timer at time now: every 30th run drops the
// entries unused for expiration seconds; the others, when the table holds
// more than max_size entries, drop up to (entries-max)*4/3 (at most max/2)
// entries idle for 6 minutes. The kernel walks its 1024 hash chains from
// the rover; udr walks its slots, so which idle entries go first differs.
func (c *cache[V]) checkExpire(now, expiration uint32) {
	if c.counter%cacheFullCheckEvery == 0 {
		c.sweep(now, expiration, cacheSlots)
		c.counter = 1
		return
	}
	if c.entries <= cacheMaxSize {
		c.counter++
		return
	}
	goal := min((c.entries-cacheMaxSize)*4/3, cacheMaxSize/2)
	c.sweep(now, cacheEntryTimeout, goal)
}

// sweep walks the slots after the rover and removes the entries unused
// for idle seconds, until goal entries went or every slot was seen.
func (c *cache[V]) sweep(now, idle uint32, goal int) {
	j := c.rover
	for seen := 0; seen < cacheSlots && goal > 0; seen++ {
		j = (j + 1) & cacheMask
		// A removal may move another entry into slot j: look again.
		for c.slots[j].used && !before(now, c.slots[j].lastuse+idle) {
			if c.release != nil {
				c.release(&c.slots[j].val)
			}
			c.remove(j)
			goal--
		}
	}
	c.rover = j
}

// before is the kernel's time_before for 32-bit seconds: a is earlier
// than b, across wrap-around.
func before(a, b uint32) bool { return int32(a-b) < 0 }
