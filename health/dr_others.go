//go:build !linux

package health

import (
	"context"
	"errors"
	"net/netip"
)

// drProber is unavailable: dr mode needs Linux's AF_PACKET sockets.
type drProber struct{}

func newDRProber(DRConfig) (*drProber, error) {
	return nil, errors.New("dr mode: only available on Linux")
}

func (*drProber) close() error { return nil }

func (*drProber) probe(context.Context, netip.Addr, netip.AddrPort) error {
	return errors.New("dr mode: only available on Linux")
}
