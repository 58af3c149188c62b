package ipvssync

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Options configure a Sender or a Receiver, as ipvsadm --start-daemon's
// options configure the kernel's sync threads (start_sync_thread).
type Options struct {
	// Interface is --mcast-interface: the multicast group is sent to and
	// joined on it, and the Sender's IPv4 socket is bound to its address,
	// as the kernel's master binds (bind_mcastif_addr). Required when a
	// group is used.
	Interface string
	// SyncID is --syncid: written in sent messages; a Receiver with a
	// SyncID other than 0 drops messages with another one.
	SyncID uint8
	// MaxLen is --sync-maxlen: 0 means the kernel's default, see
	// SendMaxLen and the Receiver's buffer.
	MaxLen int
	// Group is --mcast-group. The zero value means 224.0.0.81 when Peers
	// is empty, and no multicast at all when Peers is set; an IPv6 group
	// is allowed, as ipvsadm allows it.
	Group netip.Addr
	// Port is --mcast-port: 0 means 8848. Messages go to Group:Port and to
	// the Peers; a Receiver listens on Port for both.
	Port uint16
	// TTL is --mcast-ttl, the multicast TTL or hop limit: 0 means 1.
	TTL int
	// Peers are unicast destinations, instead of the group (Group unset)
	// or as well as it: for networks without multicast. A Sender sends
	// each message to each of them; a Receiver drops messages sent from
	// one of its own addresses, so every director can list every director.
	Peers []netip.AddrPort
}

// group returns the multicast group in use, invalid for none.
func (o *Options) group() netip.Addr {
	if o.Group.IsValid() {
		return o.Group.Unmap()
	}
	if len(o.Peers) > 0 {
		return netip.Addr{}
	}
	return DefaultGroup
}

func (o *Options) port() uint16 {
	if o.Port == 0 {
		return DefaultPort
	}
	return o.Port
}

func (o *Options) ttl() int {
	if o.TTL == 0 {
		return DefaultTTL
	}
	return o.TTL
}

// headerLen is the IP and UDP header length the kernel subtracts from the
// MTU for the configured family (start_sync_thread: hlen): 28 for IPv4,
// 48 for IPv6 (a group, or with Peers only, any IPv6 peer).
func (o *Options) headerLen() int {
	g := o.group()
	v6 := g.IsValid() && g.Is6()
	if !g.IsValid() {
		for _, p := range o.Peers {
			if p.Addr().Unmap().Is6() {
				v6 = true
			}
		}
	}
	if v6 {
		return 48
	}
	return 28
}

// SendMaxLen is the kernel master's sync_maxlen for o (start_sync_thread):
// MaxLen clamped to 1..65535-hlen, or 1500-hlen when MaxLen is 0 (1472 for
// IPv4, 1452 for IPv6). Set Encoder.MaxLen to it.
func (o *Options) SendMaxLen() int {
	h := o.headerLen()
	if o.MaxLen == 0 {
		return 1500 - h
	}
	return min(max(o.MaxLen, 1), 65535-h)
}

// recvLen is the kernel backup's buffer (start_sync_thread): MaxLen
// clamped to 1024..65535-hlen, or max(MTU, 1500)-hlen (at most 65535-hlen)
// when MaxLen is 0. A longer datagram is truncated, so its size field no
// longer matches and it is dropped.
func (o *Options) recvLen(mtu int) int {
	h := o.headerLen()
	if o.MaxLen == 0 {
		return min(max(mtu, 1500), 65535) - h
	}
	return min(max(o.MaxLen, 1024), 65535-h)
}

func (o *Options) check() error {
	g := o.group()
	if g.IsValid() {
		if !g.IsMulticast() {
			return fmt.Errorf("ipvssync: group %s is not a multicast address", g)
		}
		if o.Interface == "" {
			return fmt.Errorf("ipvssync: multicast group %s needs an interface (--mcast-interface)", g)
		}
	}
	if o.TTL < 0 || o.TTL > 255 {
		return fmt.Errorf("ipvssync: TTL %d out of range 1..255", o.TTL)
	}
	if o.MaxLen < 0 {
		return fmt.Errorf("ipvssync: MaxLen %d is negative", o.MaxLen)
	}
	for _, p := range o.Peers {
		if !p.Addr().IsValid() || p.Addr().IsUnspecified() || p.Port() == 0 {
			return fmt.Errorf("ipvssync: peer %s: want an address and a port", p)
		}
	}
	return nil
}

// DropReason is why a Receiver dropped a datagram.
type DropReason int

const (
	DropOwn     DropReason = iota // sent from one of this host's addresses
	DropTooLong                   // longer than the receive buffer (truncated)
	DropShort                     // ErrShort
	DropSize                      // ErrSize: size field differs from the length
	DropSyncID                    // another sync ID than the Receiver's (non-zero) one
	DropVersion                   // ErrVersion
	DropRecord                    // a malformed record or option (the other Err* values)
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"own", "too_long", "short", "size", "syncid", "version", "record"}

func (r DropReason) String() string {
	if r < 0 || r >= NumDropReasons {
		return fmt.Sprintf("DropReason(%d)", int(r))
	}
	return dropNames[r]
}

// dropReason classifies a DecodeMessage error.
func dropReason(err error) DropReason {
	switch {
	case errors.Is(err, ErrShort):
		return DropShort
	case errors.Is(err, ErrSize):
		return DropSize
	case errors.Is(err, ErrVersion):
		return DropVersion
	}
	return DropRecord
}

// ReceiverStats are a Receiver's counters since it started.
type ReceiverStats struct {
	Messages uint64 // messages accepted and passed to fn (hellos included)
	Conns    uint64 // connections passed to fn
	Skipped  uint64 // records the kernel would drop alone (ErrSkip*), not passed
	Drops    [NumDropReasons]uint64
}

type receiverCounters struct {
	messages, conns, skipped atomic.Uint64
	drops                    [NumDropReasons]atomic.Uint64
}

func (c *receiverCounters) snapshot() ReceiverStats {
	s := ReceiverStats{Messages: c.messages.Load(), Conns: c.conns.Load(), Skipped: c.skipped.Load()}
	for i := range s.Drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}

// SenderStats are a Sender's counters since it started.
type SenderStats struct {
	Messages uint64 // datagrams sent (one per destination)
	Errors   uint64 // datagrams that could not be sent
}
