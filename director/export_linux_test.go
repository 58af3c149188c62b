//go:build linux

package director

import (
	"context"
	"net/netip"
	"time"

	"github.com/udr-lb/udr/conntrack"
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

// Defenses returns the drop_entry and secure_tcp modes of each worker's
// connection table, read by the worker.
func (d *Director) Defenses(ctx context.Context) ([][2]conntrack.DefenseMode, error) {
	var modes [][2]conntrack.DefenseMode
	err := d.ws.Do(ctx, func(p *forwarder.Pipeline, _ time.Time) {
		de, st := p.Conns().Defense()
		modes = append(modes, [2]conntrack.DefenseMode{de, st})
	})
	return modes, err
}
