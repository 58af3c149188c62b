package conntrack

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/udr-lb/udr/dest"
)

// Flags are the properties of an entry.
type Flags uint8

// Entry flags.
const (
	// FlagTemplate marks a persistence template (IP_VS_CONN_F_TEMPLATE).
	FlagTemplate Flags = 1 << iota
	// FlagActive marks a connection counted in its real server's
	// ActiveConn; without it the connection counts in InActConn (the
	// kernel's IP_VS_CONN_F_INACTIVE, inverted).
	FlagActive
	// FlagControlled marks a connection controlled by a persistence
	// template (cp->control). Its template key is re-derived from the
	// connection key, Entry.Netmask and FlagAllPorts.
	FlagControlled
	// FlagAllPorts marks a controlled connection whose template has
	// virtual port 0 (Persistence.AllPorts).
	FlagAllPorts
	// FlagRearmed marks a template that expired while it still controlled
	// connections: its timeout is 60 s from then on.
	FlagRearmed
	// FlagSynced marks an entry that a sync record created or last
	// updated (Table.ApplySync; the kernel's IP_VS_CONN_F_SYNC, "SYNC" in
	// /proc/net/ip_vs_conn_sync), with no packet of its own since: the
	// first packet clears it.
	FlagSynced
)

// Entry is the state of one connection or template.
type Entry struct {
	// Dest is the real server the entry is bound to.
	Dest dest.ID
	// Expiry is when the entry expires, in ticks of the table's clock
	// (Options.TicksPerSecond): it is alive while now < Expiry.
	Expiry uint32
	// Controlled is, for a template, the number of connections it
	// controls (n_control).
	Controlled uint32
	State      State
	Flags      Flags
	// Netmask is, for a controlled connection, Persistence.Netmask of its
	// service, so that its template can be found again.
	Netmask uint8
	// SyncDue is set by Update and UpdateRef, while the table queues
	// sync records (SetSync), when the packet just applied makes the
	// connection due for one (ip_vs_sync_conn_needed); false elsewhere.
	SyncDue bool
}

// Expires returns the ticks left before e expires, 0 once it has
// (Table.SecondsLeft gives the seconds).
func (e Entry) Expires(now uint32) uint32 {
	if left := int32(e.Expiry - now); left > 0 {
		return uint32(left)
	}
	return 0
}

// slot is one cell of the open-addressing table: a key and its entry
// packed into 52 bytes (the key's Template bool lives in flags). controlled
// is a template's count of connections and a connection's evidence word
// (defense.go). Slot
// count × 52 bytes at a load factor of 7/8 keeps a full table under 64
// bytes per connection. A slot with dest 0 is empty: DestID 0 is never
// handed out.
type slot struct {
	client, vip  [16]byte
	dest         dest.ID
	expiry       uint32
	controlled   uint32
	cport, vport uint16
	proto        uint8
	flags        Flags
	state        State
	netmask      uint8
}

const (
	slotSize     = 52
	maxEntrySize = 32
)

func init() {
	// Guard the sizes the memory budget rests on (Cilium
	// maxBackendParamsSize style).
	if s := unsafe.Sizeof(slot{}); s != slotSize {
		panic(fmt.Sprintf("conntrack: slot is %d bytes, want %d", s, slotSize))
	}
	if s := unsafe.Sizeof(Entry{}); s > maxEntrySize {
		panic(fmt.Sprintf("conntrack: Entry is %d bytes, want <= %d", s, maxEntrySize))
	}
}

func (s *slot) empty() bool { return s.dest == 0 }

func (s *slot) isTemplate() bool { return s.flags&FlagTemplate != 0 }

// matches reports whether s holds key k. Ports first: they differ most.
func (s *slot) matches(k *Key) bool {
	// The addresses are compared as 8-byte words: callers write keys
	// with 8-byte stores, and a 16-byte load of two fresh 8-byte stores
	// cannot be forwarded from the store buffer (it stalls for longer
	// than the whole compare takes).
	return s.cport == k.CPort && s.vport == k.VPort &&
		word(&s.client, 0) == word(&k.Client, 0) && word(&s.client, 8) == word(&k.Client, 8) &&
		word(&s.vip, 0) == word(&k.VIP, 0) && word(&s.vip, 8) == word(&k.VIP, 8) &&
		s.proto == k.Proto && s.isTemplate() == k.Template
}

func word(a *[16]byte, off int) uint64 { return binary.LittleEndian.Uint64(a[off : off+8]) }

func (s *slot) key() Key {
	return Key{
		Client:   s.client,
		VIP:      s.vip,
		CPort:    s.cport,
		VPort:    s.vport,
		Proto:    s.proto,
		Template: s.isTemplate(),
	}
}

func (s *slot) entry() Entry {
	return Entry{
		Dest:       s.dest,
		Expiry:     s.expiry,
		Controlled: s.controlled & -uint32(s.flags&FlagTemplate), // a template's only
		State:      s.state,
		Flags:      s.flags,
		Netmask:    s.netmask,
	}
}

// expired reports whether s's timer has fired at now. The subtraction
// keeps it right across the wrap of the uint32 clock.
func (s *slot) expired(now uint32) bool { return int32(now-s.expiry) >= 0 }

// templateKey returns the key of the template controlling connection s.
func (s *slot) templateKey() Key {
	return templateKey(s.key(), s.netmask, s.flags&FlagAllPorts != 0)
}
