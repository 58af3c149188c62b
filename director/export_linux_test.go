//go:build linux

package director

import "github.com/udr-lb/udr/forwarder"

// TableOptions returns the options the running table was compiled with.
func (d *Director) TableOptions() forwarder.Options { return d.table.Load().Options() }
