//go:build linux

package director

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/forwarder"
)

const (
	batchSize = forwarder.DefaultBatchSize
	// idleWake bounds how long the worker blocks in a read, so that
	// announcements, probes and the sweep run on an idle link too.
	idleWake = 200 * time.Millisecond
	// sweepBudget is how many connection slots each batch ages.
	sweepBudget = 256
	// checkInterval is how often the worker looks for real servers whose
	// MAC became known, to log it.
	checkInterval = 100 * time.Millisecond
	// dropsInterval is how often the socket's kernel drop count is read
	// (a system call) and, when it grew, logged.
	dropsInterval = 10 * time.Second
	// publishInterval is how often the worker copies its counters for the
	// metrics.
	publishInterval = time.Second
)

// loop is the worker: read a batch, decide every frame, write the batch.
func (d *Director) loop(ctx context.Context) error {
	bufSize := d.ifi.MTU + 14 + 4 + 4 // Ethernet header, one VLAN tag, slack
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	// Replies are built in the pipeline's scratch buffer; they are copied
	// here so that a whole batch can be written at once.
	replies := make([][]byte, batchSize)
	for i := range replies {
		replies[i] = make([]byte, 0, forwarder.MaxReplyLen)
	}
	sizes := make([]int, batchSize)
	out := make([][]byte, 0, batchSize)
	var extra [][]byte // announcements and probes

	for {
		if ctx.Err() != nil {
			return nil
		}
		d.conn.SetReadDeadline(time.Now().Add(idleWake))
		n, err := d.conn.ReadBatch(bufs, sizes)
		now := time.Now()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		out = out[:0]
		for i := range n {
			v, frame := d.p.Process(bufs[i][:sizes[i]], now)
			switch {
			case v == forwarder.VerdictForward:
				out = append(out, frame)
			case frame != nil: // a reply, or an ICMP error
				replies[i] = append(replies[i][:0], frame...)
				out = append(out, replies[i])
			}
			switch v {
			case forwarder.VerdictARPConflict:
				d.conflict(bufs[i][:sizes[i]], now)
			case forwarder.VerdictNoNeighbor:
				d.unknownNeighbor()
			}
		}
		if len(out) > 0 {
			if _, err := d.conn.WriteBatch(out); err != nil {
				d.log.Warn("write batch", "err", err)
			}
		}
		d.p.Sweep(now, sweepBudget)
		select {
		case <-d.changed:
			d.announcer.Reset(now)
			d.lastProbe = time.Time{}
			if to := d.table.Load().Config().Timeouts; to != d.timeouts {
				// ipvsadm --set: the new timeouts apply from each
				// connection's next packet, as in the kernel.
				d.timeouts = to
				d.p.Conns().SetTimeouts(to)
			}
		case reply := <-d.connReq:
			d.answerConnList(reply, now)
		default:
		}
		extra = d.periodic(now, extra[:0])
		if len(extra) > 0 {
			if _, err := d.conn.WriteBatch(extra); err != nil {
				d.log.Warn("write announcements", "err", err)
			}
		}
	}
}

// periodic appends the gratuitous ARPs / unsolicited NAs that are due, and
// the neighbour probes for real servers.
func (d *Director) periodic(now time.Time, frames [][]byte) [][]byte {
	t := d.table.Load()
	if d.announcer.Due(now) {
		vmac := t.Options().VIPMAC
		for _, vip := range t.VIPs() {
			if f, err := announce(vmac, vip); err == nil {
				frames = append(frames, f)
			}
		}
	}
	if now.Sub(d.lastProbe) >= probeInterval {
		d.lastProbe = now
		for _, rip := range t.RealServers() {
			if f, err := arpresponder.Probe(arpresponder.VLAN{}, d.ifi.MAC, rip); err == nil {
				frames = append(frames, f)
			}
		}
	}
	if now.Sub(d.lastCheck) >= checkInterval {
		d.lastCheck = now
		d.checkReachable(t.RealServers())
	}
	if now.Sub(d.lastPub) >= publishInterval {
		d.lastPub = now
		d.publish()
	}
	if now.Sub(d.lastDrops) >= dropsInterval {
		d.lastDrops = now
		if drops := d.conn.Stats().RxKernelDrops; drops > d.drops {
			d.log.Warn("the kernel dropped frames: udr's receive buffer was full", "dropped", drops-d.drops, "total", drops)
			d.drops = drops
		}
	}
	return frames
}

// checkReachable logs each real server whose MAC became known or was lost.
func (d *Director) checkReachable(rips []netip.Addr) {
	for _, rip := range rips {
		mac, ok := d.neigh.Lookup(rip)
		if ok == d.reachable[rip] {
			continue
		}
		d.reachable[rip] = ok
		if ok {
			d.log.Info("real server reachable", "rs", rip, "mac", net.HardwareAddr(mac[:]).String())
			// A server that was unknown may be logged again if it is lost.
			for id := range d.noNeigh {
				delete(d.noNeigh, id)
			}
		} else {
			d.log.Warn("real server MAC lost", "rs", rip)
		}
	}
}

func announce(vmac [6]byte, vip netip.Addr) ([]byte, error) {
	if vip.Is4() {
		return arpresponder.GratuitousARP(arpresponder.VLAN{}, vmac[:], vip)
	}
	return arpresponder.UnsolicitedNA(arpresponder.VLAN{}, vmac[:], vip)
}

// conflict logs, once per MAC, another host that claims a VIP, and defends
// the VIPs with an announcement at most once per RFC 5227 interval.
func (d *Director) conflict(frame []byte, now time.Time) {
	src := [6]byte(frame[6:12])
	if !d.conflicts[src] {
		d.conflicts[src] = true
		d.log.Warn("another host answers for a VIP: if it is a real server, it lacks arp_ignore/arp_announce or has the VIP on a non-loopback interface; run `udr realserver setup --vip VIP` there (sysctl net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2); if it is a second director, stop one of them",
			"mac", net.HardwareAddr(src[:]).String())
	}
	if d.announcer.Defend(now) {
		d.announcer.Reset(now)
	}
}

// unknownNeighbor logs, once per real server, that its MAC is not known
// yet, so it got no connection.
func (d *Director) unknownNeighbor() {
	dec := d.p.Decision()
	id := dec.Dest
	if id == 0 || d.noNeigh[id] {
		return
	}
	d.noNeigh[id] = true
	rs := d.reg.Key(id).Real
	d.log.Warn("real server MAC unknown: no new connections go to it until it answers ARP/NDP", "rs", rs.Addr())
}
