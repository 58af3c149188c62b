//go:build linux

package director

import (
	"fmt"
	"strings"

	"github.com/udr-lb/udr/internal/host"
)

// disableOffloads turns off the interface's GRO, LRO, TSO and GSO and logs
// what the kernel reports afterwards: the features now off, and those the
// driver keeps on.
func (d *Director) disableOffloads() {
	iface := d.settings.Iface
	c, err := host.DisableOffloads(iface)
	d.offloads = c
	if err != nil {
		d.log.Warn("cannot turn off offloads; frames larger than the MTU will be dropped and counted", "iface", iface, "err", err)
	}
	if len(c.Off) > 0 {
		d.log.Info("turned off offloads so that no frame exceeds the MTU; they are turned on again when udr stops", "iface", iface, "features", strings.Join(host.EthtoolNames(c.Off), ","))
	}
	if len(c.Stuck) > 0 {
		d.log.Warn("offloads the driver keeps on; frames larger than the MTU will be dropped and counted", "iface", iface, "features", strings.Join(host.EthtoolNames(c.Stuck), ","))
	}
}

// restoreOffloads turns on again, in the director's namespace, what
// disableOffloads turned off, once, and logs what the kernel reports
// afterwards.
func (d *Director) restoreOffloads() {
	c := d.offloads
	if !c.Changed() {
		return
	}
	d.offloads = host.OffloadChange{}
	var on, off []string
	err := d.ns.Do(func() (err error) {
		on, off, err = c.Restore()
		return err
	})
	if err != nil {
		d.log.Error("cannot turn the offloads udr turned off on again", "iface", c.Iface, "err", err,
			"fix", fmt.Sprintf("ethtool -K %s %s on", c.Iface, strings.Join(host.EthtoolNames(c.Off), " on ")))
		return
	}
	if len(on) > 0 {
		d.log.Info("turned offloads on again", "iface", c.Iface, "features", strings.Join(host.EthtoolNames(on), ","))
	}
	if len(off) > 0 {
		d.log.Warn("offloads that stay off although asked for again", "iface", c.Iface, "features", strings.Join(host.EthtoolNames(off), ","))
	}
}

// offloadsHeader carries, in the answer to a hand-off, the interface and
// the features the udr handing off turned off and leaves off for the one
// taking over ("eth0 rx-gro,tx-tcp-segmentation,..."), so that the last
// udr to stop turns them on again.
const offloadsHeader = "Udr-Offloads-Cleared"

// offloadsLeft is the offloadsHeader value for this director, or "".
func (d *Director) offloadsLeft() string {
	if !d.offloads.Changed() {
		return ""
	}
	return d.offloads.Iface + " " + strings.Join(d.offloads.Cleared(), ",")
}

// adoptOffloads takes over the offloads that the udr that handed its table
// over left off (offloadsHeader), for Close to turn on again.
func (d *Director) adoptOffloads(v string) {
	iface, list, ok := strings.Cut(v, " ")
	if !ok || d.cfg.KeepOffloads || iface != d.settings.Iface || list == "" {
		return
	}
	d.offloads.Iface = iface
	d.offloads.Adopt(strings.Split(list, ","))
	d.log.Info("offloads the udr that handed over left off are turned on again when this one stops", "iface", iface, "features", strings.Join(host.EthtoolNames(d.offloads.Cleared()), ","))
}
