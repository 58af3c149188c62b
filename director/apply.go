//go:build linux

package director

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

var _ admin.Backend = (*Director)(nil)

// connTabSize is what ipvsadm -L shows as "size=": the kernel's default
// connection hash of 4096 buckets. udr's table is sized differently (see
// Config.Capacity), but scripts parse this header.
const connTabSize = 4096

// Apply makes one ipvsadm change to the running configuration: it is
// validated and compiled whole on a copy, then swapped in; on error
// nothing changed. It implements admin.Backend.
func (d *Director) Apply(cmd *admin.Command) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cmd.Op == admin.OpZero {
		return d.zero(cmd)
	}
	next := d.running.Clone()
	if err := admin.Apply(next, cmd); err != nil {
		return err
	}
	var edited []dest.Key
	if cmd.Op == admin.OpEditServer {
		// Every -e runs the scheduler's upd_dest hook, even one that
		// changes nothing (__ip_vs_update_dest).
		edited = append(edited, cmd.Service.Key.DestKey(cmd.Dest))
	}
	if err := d.install(next, edited...); err != nil {
		// The host refused what the kernel would have taken (a VIP on
		// a local interface, a full registry): the kernel's nearest
		// answer is EINVAL, with udr's reason as the message.
		return &admin.KernelError{Op: cmd.Op, Errno: syscall.EINVAL, Msg: err.Error()}
	}
	if cmd.Service.Addr.IsValid() {
		d.log.Info("applied", "command", cmd.Op.Flag(), "service", cmd.Service.Key.String())
	} else {
		d.log.Info("applied", "command", cmd.Op.Flag()) // -C, --set: no service
	}
	return nil
}

// Edit makes a change of many commands (ipvsadm -R) as one: f applies them
// to an Editor over a copy of the running configuration, and when it
// succeeds the result is compiled whole and swapped in once; -Z counters
// are zeroed after. On error nothing changed. The change is logged in one
// line that counts what it added, removed and edited. It implements
// admin.Backend.
func (d *Director) Edit(f func(*admin.Editor) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now()
	prev := d.running
	e := admin.NewEditor(prev)
	if err := f(e); err != nil {
		return err
	}
	next := e.Config()
	if err := d.install(next, e.Edited()...); err != nil {
		return err
	}
	all, zero := e.Zeroed()
	if all || len(zero) > 0 {
		d.stats.Tick(time.Now(), d.reg, d.table.Load().Config().Services)
		if all {
			d.stats.ZeroAll()
		}
		have := make(map[service.Key]bool, len(next.Services))
		for _, s := range next.Services {
			have[s.Key] = true
		}
		for _, k := range zero {
			if have[k] {
				d.stats.Zero(k)
			}
		}
	}
	ch := admin.Diff(prev, next)
	d.log.Info("applied a restore",
		"services", len(next.Services),
		"services_added", ch.ServicesAdded, "services_removed", ch.ServicesRemoved, "services_edited", ch.ServicesEdited,
		"servers_added", ch.ServersAdded, "servers_removed", ch.ServersRemoved, "servers_edited", ch.ServersEdited,
		"timeouts_changed", ch.TimeoutsChanged, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// State returns the running table for a listing. It implements
// admin.Backend.
func (d *Director) State(conns bool) (*admin.State, error) {
	d.mu.Lock()
	t := d.table.Load()
	cfg := t.Config()
	st := &admin.State{
		Config:      cfg,
		Standby:     t.Options().Standby,
		ConnTabSize: connTabSize,
		Dests:       make(map[admin.DestKey]admin.DestInfo),
		Services:    make(map[service.Key]admin.Stats),
	}
	for _, s := range cfg.Services {
		for _, dst := range s.Dests {
			id, ok := d.reg.Lookup(s.DestKey(dst))
			if !ok {
				continue // not possible: the table's servers have IDs
			}
			ds := d.reg.State(id)
			st.Dests[admin.DestKey{Service: s.Key, Dest: dst.AddrPort()}] = admin.DestInfo{
				ActiveConn:  int(ds.Active.Load()),
				InActConn:   int(ds.Inactive.Load()),
				PersistConn: int(ds.Persist.Load()),
				Stats:       d.destStats(id),
			}
		}
		st.Services[s.Key] = d.serviceStats(s.Key)
	}
	d.mu.Unlock()
	if conns {
		list, err := d.connList()
		if err != nil {
			return nil, err
		}
		st.Conns = list
	}
	return st, nil
}

// connList lists the worker's connection table in steps: the worker stops
// forwarding for one step at a time (see forwarder.Worker.ListConns), and
// the entries are converted here. The list is not a point-in-time
// snapshot: connections created or removed while it is taken may be in it
// or not.
func (d *Director) connList() ([]admin.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := make([]admin.Conn, 0, d.ws.Stats().Conns)
	err := d.ws.ListConns(ctx, func(chunk []conntrack.Listed) {
		list = admin.AppendConns(list, chunk, d.reg)
	})
	if err != nil {
		return nil, errors.New("the packet worker did not answer")
	}
	return list, nil
}
