//go:build !linux

package ipvssync

import (
	"context"
	"errors"
	"net/netip"
)

var errUnimplemented = errors.New("ipvssync: the sync sockets are implemented on Linux only")

// Sender is the master side; it is implemented on Linux only.
type Sender struct{}

// NewSender returns an error: the sync sockets are Linux only.
func NewSender(o Options) (*Sender, error) { return nil, errUnimplemented }

// Send returns an error.
func (s *Sender) Send(msg []byte) error { return errUnimplemented }

// Destinations returns nil.
func (s *Sender) Destinations() []netip.AddrPort { return nil }

// Stats returns zero counters.
func (s *Sender) Stats() SenderStats { return SenderStats{} }

// Close does nothing.
func (s *Sender) Close() error { return nil }

// Receiver is the backup side; it is implemented on Linux only.
type Receiver struct{}

// NewReceiver returns an error: the sync sockets are Linux only.
func NewReceiver(o Options, fn func(from netip.AddrPort, syncid uint8, conns []Conn)) (*Receiver, error) {
	return nil, errUnimplemented
}

// Addrs returns nil.
func (r *Receiver) Addrs() []netip.AddrPort { return nil }

// Run returns an error.
func (r *Receiver) Run(ctx context.Context) error { return errUnimplemented }

// Stats returns zero counters.
func (r *Receiver) Stats() ReceiverStats { return ReceiverStats{} }

// Close does nothing.
func (r *Receiver) Close() error { return nil }
