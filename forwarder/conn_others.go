//go:build !linux

package forwarder

import (
	"errors"
	"time"

	"golang.org/x/net/bpf"
)

// errUnimplemented is returned by every PacketConn operation on systems
// without AF_PACKET sockets.
var errUnimplemented = errors.New("forwarder: AF_PACKET sockets are only available on Linux")

// PacketConn is the AF_PACKET Conn; it exists only on Linux.
type PacketConn struct{}

var _ Conn = (*PacketConn)(nil)

// Listen returns an error: AF_PACKET sockets are only available on Linux.
func Listen(ifname string, cfg ConnConfig) (*PacketConn, error) { return nil, errUnimplemented }

// ReadBatch implements Conn.
func (c *PacketConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return 0, errUnimplemented
}

// ReadBatchTypes is ReadBatch that also reports packet types.
func (c *PacketConn) ReadBatchTypes(bufs [][]byte, sizes []int, types []PktType) (int, error) {
	return 0, errUnimplemented
}

// WriteBatch implements Conn.
func (c *PacketConn) WriteBatch(bufs [][]byte) (int, error) { return 0, errUnimplemented }

// Close implements Conn.
func (c *PacketConn) Close() error { return errUnimplemented }

// SetFilter replaces the socket filter.
func (c *PacketConn) SetFilter(filter []bpf.RawInstruction) error { return errUnimplemented }

// SetReadDeadline sets the deadline of ReadBatch.
func (c *PacketConn) SetReadDeadline(t time.Time) error { return errUnimplemented }

// Stats returns the counters.
func (c *PacketConn) Stats() ConnStats { return ConnStats{} }

// Promiscuous reports whether the socket holds the interface promiscuous.
func (c *PacketConn) Promiscuous() bool { return false }

// InPlace reports whether ReadInPlace is supported: never.
func (c *PacketConn) InPlace() bool { return false }

// IO returns the receive backend.
func (c *PacketConn) IO() IO { return IOSocket }

// ReadInPlace implements InPlaceConn.
func (c *PacketConn) ReadInPlace(frames [][]byte) (int, error) { return 0, errUnimplemented }

// Release implements InPlaceConn.
func (c *PacketConn) Release() {}

// ListenGroup returns an error: AF_PACKET sockets are only available on
// Linux.
func ListenGroup(ifname string, cfg ConnConfig, n int, fanout []bpf.RawInstruction) ([]*PacketConn, error) {
	return nil, errUnimplemented
}

// SetFanout implements nothing: AF_PACKET sockets are only available on
// Linux.
func (c *PacketConn) SetFanout(prog []bpf.RawInstruction) error { return errUnimplemented }
