package forwarder

import "github.com/udr-lb/udr/dest"

// destCounts gathers the InPkts and InBytes of each real server over one
// batch, in plain memory that only the worker touches; Flush adds them to
// the registry's atomics. Two locked additions per frame cost more than
// the whole connection lookup, one pair per server and batch does not.
//
// Counts held here are not yet visible to Stats readers; the Worker
// flushes after every batch, before the registry epoch it has seen can
// move on, so that a slot is never counted after its ID was reaped.
type destCounts struct {
	reg   *dest.Registry
	acc   []destCount // by dest.ID.Index()
	dirty []int32     // indexes of acc that hold counts, in first-seen order
}

type destCount struct {
	id    dest.ID
	pkts  uint64
	bytes uint64
}

func (c *destCounts) init(reg *dest.Registry) {
	c.reg = reg
	c.acc = make([]destCount, reg.Cap()+1)
	c.dirty = make([]int32, 0, reg.Cap()+1)
}

// add counts one frame of n IP bytes to real server id.
func (c *destCounts) add(id dest.ID, n int) {
	i := id.Index()
	a := &c.acc[i]
	if a.pkts == 0 {
		a.id = id
		c.dirty = append(c.dirty, int32(i))
	}
	a.pkts++
	a.bytes += uint64(n)
}

// flush adds the counts gathered since the last flush to the registry.
func (c *destCounts) flush() {
	for _, i := range c.dirty {
		a := &c.acc[i]
		st := c.reg.State(a.id)
		st.InPkts.Add(a.pkts)
		st.InBytes.Add(a.bytes)
		*a = destCount{}
	}
	c.dirty = c.dirty[:0]
}
