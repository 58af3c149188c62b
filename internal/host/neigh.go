//go:build linux

package host

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// WatchNeighbors calls fn with every usable entry (reachable, stale,
// delayed, probing or permanent) of the kernel's neighbour table for the
// interface ifindex: first those present now, then each update until stop
// is called. It lets the director use MACs its kernel already resolved.
func WatchNeighbors(ifindex int, fn func(addr netip.Addr, mac [6]byte)) (stop func(), err error) {
	updates := make(chan netlink.NeighUpdate, 64)
	done := make(chan struct{})
	if err := netlink.NeighSubscribe(updates, done); err != nil {
		return nil, fmt.Errorf("subscribe to neighbour updates: %w", err)
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := netlink.NeighList(ifindex, family)
		if err != nil {
			close(done)
			return nil, fmt.Errorf("list neighbours: %w", err)
		}
		for _, n := range list {
			report(n, ifindex, fn)
		}
	}
	go func() {
		for u := range updates {
			if u.Type == unix.RTM_NEWNEIGH {
				report(u.Neigh, ifindex, fn)
			}
		}
	}()
	return func() { close(done) }, nil
}

const usableStates = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

func report(n netlink.Neigh, ifindex int, fn func(netip.Addr, [6]byte)) {
	if n.LinkIndex != ifindex || n.State&usableStates == 0 || len(n.HardwareAddr) != 6 {
		return
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return
	}
	fn(addr.Unmap(), [6]byte(n.HardwareAddr))
}
