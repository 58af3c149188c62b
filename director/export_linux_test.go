//go:build linux

package director

import (
	"net/netip"

	"github.com/udr-lb/udr/forwarder"
)

// TableOptions returns the options the running table was compiled with.
func (d *Director) TableOptions() forwarder.Options { return d.table.Load().Options() }

// SkipHostCheck makes d's later changes skip the check that no VIP is an
// address of this host: a netlink dump per change, which a test making
// hundreds of thousands of changes cannot afford. Call it before Run.
func (d *Director) SkipHostCheck() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.localVIPs = func([]netip.Addr) ([]netip.Addr, error) { return nil, nil }
}
