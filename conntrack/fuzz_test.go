package conntrack

import (
	"testing"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// FuzzTCPStates drives a small table with arbitrary packets, clock steps,
// deletes and settings, and checks after every step that each entry is in
// a valid state and that the real servers' counters match the table; at
// the end, deleting everything must bring every counter back to 0.
//
// Each step is two bytes: the first selects the connection (low 3 bits:
// 0-3 TCP, 4 UDP, 5-7 TCP under a persistence template) and the action
// (bits 3-4: packet, clock step and Sweep, Delete, setting); the second is
// its argument (TCP flags, seconds, ...).
func FuzzTCPStates(f *testing.F) {
	for _, seed := range []struct {
		name string
		ops  []byte
	}{
		{"typical DR lifetime", []byte{0, TCPSyn, 0, TCPAck, 0, TCPFin | TCPAck, 0, TCPAck, 8, 121}},
		{"RST on a new connection", []byte{1, TCPRst}},
		{"no flags", []byte{2, 0}},
		{"every flag", []byte{3, 0xff}},
		{"port reuse after RST", []byte{0, TCPSyn, 0, TCPRst, 0, TCPSyn}},
		{"persistent client", []byte{5, TCPSyn, 6, TCPSyn, 5, TCPAck, 8, 200, 7, TCPSyn, 8, 250}},
		{"delete under a template", []byte{5, TCPSyn, 16 | 5, 0, 6, TCPSyn}},
		{"udp then secure_tcp", []byte{4, 0, 24, 1, 0, TCPSyn, 4, 0}},
		{"table full", []byte{0, TCPSyn, 1, TCPSyn, 2, TCPSyn, 3, TCPSyn, 4, 0, 5, TCPSyn, 6, TCPSyn}},
	} {
		f.Add(seed.ops)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		tb, reg, ids := newTestTable(t, 5, 2, Options{})
		p := Persistence{Timeout: 30, Netmask: 24}
		var now uint32
		for i := 0; i+1 < len(ops); i += 2 {
			sel, arg := ops[i], ops[i+1]
			conn := int(sel & 7)
			k := testKey(tcp, conn)
			if conn == 4 {
				k.Proto = udp
			}
			dest := ids[int(sel>>5)&1]
			switch sel >> 3 & 3 {
			case 0:
				fuzzPacket(t, tb, k, conn >= 5, p, dest, arg, now)
			case 1:
				now += uint32(arg)
				tb.Sweep(now, int(arg%32))
				if arg%32 != 0 {
					// The table is one block: any budget covers it.
					tb.Range(func(k Key, e Entry) bool {
						if int32(now-e.Expiry) >= 0 {
							t.Fatalf("%v expired at %d, still there after Sweep(%d)", k, e.Expiry, now)
						}
						return true
					})
				}
			case 2:
				tb.Delete(k, now)
			case 3:
				secure := DefenseOff
				if arg&1 != 0 {
					secure = DefenseAlways
				}
				dropEntry, _ := tb.Defense()
				tb.SetDefense(dropEntry, secure)
				tb.SetTimeouts(service.Timeouts{TCP: uint32(arg >> 1), TCPFin: uint32(arg >> 2)})
			}
			checkTable(t, tb, reg, ids)
			checkWheel(t, tb)
		}
		var conns, templates []Key
		tb.Range(func(k Key, _ Entry) bool {
			if k.Template {
				templates = append(templates, k)
			} else {
				conns = append(conns, k)
			}
			return true
		})
		for _, k := range append(conns, templates...) {
			tb.Delete(k, now)
		}
		if tb.Len() != 0 {
			t.Fatalf("Len %d after deleting every entry", tb.Len())
		}
		for _, id := range ids {
			if got := countsOf(reg, id); got != (counts{}) {
				t.Fatalf("dest %d counts %+v after deleting every entry", id, got)
			}
		}
	})
}

// fuzzPacket handles one packet as the forwarder would.
func fuzzPacket(t *testing.T, tb *Table, k Key, persistent bool, p Persistence, dest dest.ID, flags uint8, now uint32) {
	e, ok := tb.Lookup(k, now)
	if ok && flags&TCPSyn != 0 && RescheduleOnSYN(e, 1) {
		tb.Delete(k, now)
		ok = false
	}
	if !ok {
		if k.Proto == tcp && flags&TCPSyn == 0 {
			return // not scheduled (sloppy_tcp=0)
		}
		if persistent {
			tk := p.TemplateKey(k)
			te, ok := tb.Lookup(tk, now)
			if ok && te.Dest != dest {
				// The forwarder found the template's server unusable
				// (ip_vs_check_template).
				tb.InvalidateTemplate(tk, now)
				ok = false
			}
			if !ok {
				if err := tb.InsertTemplate(tk, dest, p.Timeout, now); err != nil {
					return
				}
			}
			if _, err := tb.InsertControlled(k, p, now); err != nil {
				return
			}
		} else if err := tb.Insert(k, dest, now); err != nil {
			return
		}
	}
	if _, ok := tb.Update(k, flags, now); !ok {
		t.Fatalf("Update(%v) right after Lookup or Insert found nothing", k)
	}
}

// checkTable recounts the table and compares it with the servers' counters.
func checkTable(t *testing.T, tb *Table, reg *dest.Registry, ids []dest.ID) {
	t.Helper()
	if tb.Len() > tb.Cap() {
		t.Fatalf("Len %d > Cap %d", tb.Len(), tb.Cap())
	}
	want := map[dest.ID]counts{}
	type group struct {
		tk Key
		d  dest.ID
	}
	controlled := map[group]uint32{}
	var total uint32
	n := 0
	tb.Range(func(k Key, e Entry) bool {
		n++
		c := want[e.Dest]
		switch {
		case k.Template:
			if e.State != StateNone && e.State != StateAssured {
				t.Fatalf("template %v in state %v", k, e.State)
			}
			c.Persist++
		case k.Proto == tcp:
			if e.State >= numTCPStates || e.State.Active() != (e.Flags&FlagActive != 0) {
				t.Fatalf("TCP entry %v: state %v flags %#x", k, e.State, e.Flags)
			}
			if e.Flags&FlagActive != 0 {
				c.Active++
			} else {
				c.Inactive++
			}
		default:
			if e.State != StateUDP || e.Flags&FlagActive != 0 {
				t.Fatalf("UDP entry %v: state %v flags %#x", k, e.State, e.Flags)
			}
			c.Inactive++
		}
		want[e.Dest] = c
		if e.Flags&FlagControlled != 0 {
			controlled[group{templateKey(k, e.Netmask, e.Flags&FlagAllPorts != 0), e.Dest}]++
		}
		if k.Template {
			total += e.Controlled
		}
		return true
	})
	if n != tb.Len() {
		t.Fatalf("Range saw %d entries, Len %d", n, tb.Len())
	}
	// A client's connections of one server are counted by its template
	// under the template key, or by the invalidated one of that server
	// (which of the two is not tracked: see templateOf).
	var sum uint32
	for g, n := range controlled {
		var got uint32
		if e, ok := tb.Lookup(g.tk, 0); ok && e.Dest == g.d {
			got += e.Controlled
		}
		ik := invalidKey(g.tk, g.d)
		if e, ok := tb.Lookup(ik, 0); ok {
			got += e.Controlled
		}
		if got != n {
			t.Fatalf("templates %v of dest %d count %d connections, table holds %d", g.tk, g.d, got, n)
		}
		sum += n
	}
	if total != sum {
		t.Fatalf("templates count %d connections in all, table holds %d", total, sum)
	}
	for _, id := range ids {
		got := countsOf(reg, id)
		got.Overloaded = false
		if got != want[id] {
			t.Fatalf("dest %d counters %+v, table holds %+v", id, got, want[id])
		}
	}
}
