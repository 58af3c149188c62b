//go:build linux

package director

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/ipvssync"
)

// flushTime; answer hellos with dumps.
func (sd *syncDaemons) runMaster(ctx context.Context, m *masterDaemon) {
	enc := ipvssync.Encoder{SyncID: uint8(m.d.SyncID), MaxLen: m.d.SyncMaxLen}
	var first time.Time // when the pending message got its first connection
	tick := time.NewTicker(drainInterval)
	defer tick.Stop()
	var lastDump time.Time
	pendingDump := false
	dumpDone := make(chan struct{}, 1)
	dumping := false
	drain := func(now time.Time) {
		sd.table.DrainSync(func(recs []forwarder.SyncRecord) {
			for i := range recs {
				full, ok := sd.encode(&enc, &recs[i])
				if !ok {
					continue
				}
				if full != nil {
					sd.send(m, full)
					first = now
				} else if enc.Pending() == 1 {
					first = now
				}
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			drain(time.Now())
			if msg := enc.Flush(); msg != nil {
				sd.send(m, msg)
			}
			if dumping {
				<-dumpDone
			}
			return
		case <-m.dump:
			pendingDump = true
		case <-dumpDone:
			dumping = false
		case <-tick.C:
			now := time.Now() // not the tick's: a late tick must not age the records it drains
			drain(now)
			if enc.Pending() > 0 && now.Sub(first) >= flushTime {
				sd.send(m, enc.Flush())
			}
		}
		if now := time.Now(); pendingDump && !dumping && now.Sub(lastDump) >= dumpInterval {
			pendingDump, dumping, lastDump = false, true, now
			go func() {
				sd.dump(ctx, m)
				dumpDone <- struct{}{}
			}()
		}
	}
}

// encode adds one record to enc, as Encoder.Add, and counts it dropped
// when it cannot be encoded.
func (sd *syncDaemons) encode(enc *ipvssync.Encoder, r *forwarder.SyncRecord) (full []byte, ok bool) {
	c := toWire(r)
	full, ok = enc.Add(&c)
	if !ok {
		sd.stats.drop(dropEncode, 1)
	}
	return full, ok
}

// send sends one message and counts it.
func (sd *syncDaemons) send(m *masterDaemon, msg []byte) {
	n := int(msg[4]) // nr_conns
	m.sendMu.Lock()
	err := m.snd.Send(msg)
	m.sendMu.Unlock()
	if err != nil {
		sd.stats.drop(dropSend, n)
		return
	}
	sd.stats.sentMsgs.Add(1)
	sd.stats.sentConns.Add(uint64(n))
}

// dump sends the whole table, paced, with an encoder of its own.
func (sd *syncDaemons) dump(ctx context.Context, m *masterDaemon) {
	start := time.Now()
	enc := ipvssync.Encoder{SyncID: uint8(m.d.SyncID), MaxLen: m.d.SyncMaxLen}
	conns, msgs := 0, 0
	emit := func(msg []byte) {
		sd.send(m, msg)
		msgs++
		if msgs%dumpBurst == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(dumpPause):
			}
		}
	}
	err := sd.table.DumpSync(ctx, func(recs []forwarder.SyncRecord) {
		for i := range recs {
			full, ok := sd.encode(&enc, &recs[i])
			if !ok {
				continue
			}
			conns++
			if full != nil {
				emit(full)
			}
		}
	})
	if msg := enc.Flush(); msg != nil {
		emit(msg)
	}
	sd.stats.dumps.Add(1)
	sd.stats.dumpConns.Add(uint64(conns))
	if err != nil && ctx.Err() == nil {
		sd.log.Error("resync: the table could not be read whole", "conns", conns, "err", err)
	}
	sd.log.Info("resync: sent the connection table to a peer that started", "conns", conns, "messages", msgs,
		"took", time.Since(start).Round(time.Millisecond))
}

// hello sends a backup's hello, which a peer's master answers with its
// table; for the first backup it then waits for that resync to end
// (Warm).
func (sd *syncDaemons) hello(ctx context.Context, b *backupDaemon, first bool) {
	start := time.Now()
	err := sd.ns(func() error {
		snd, err := sd.sockets.sender(b.options())
		if err != nil {
			return err
		}
		defer snd.Close()
		return snd.Send(ipvssync.AppendHello(nil, uint8(b.d.SyncID)))
	})
	if err != nil {
		sd.log.Warn("resync: the hello to the peers could not be sent; the table fills from their sync messages only", "err", err)
	} else {
		sd.stats.hellosSent.Add(1)
	}
	if !first {
		return
	}
	defer sd.setWarm()
	startMsgs := sd.stats.recvMsgs.Load()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := startMsgs, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := sd.stats.recvMsgs.Load()
			if n != last {
				last, lastChange = n, now
			}
			switch {
			case n == startMsgs && now.Sub(start) >= WarmNoPeer:
				sd.log.Info("resync: no peer answered; starting with the connections that come", "waited", now.Sub(start).Round(time.Millisecond))
				return
			case n != startMsgs && now.Sub(lastChange) >= WarmQuiet:
				sd.log.Info("resync: received the peers' connection table", "messages", n-startMsgs,
					"took", lastChange.Sub(start).Round(time.Millisecond))
				return
			case now.Sub(start) >= WarmMax:
				sd.log.Warn("resync: the peers' messages still come; counting the resync done", "messages", n-startMsgs, "waited", WarmMax)
				return
			}
		}
	}
}

// received returns the backup's receive function: a hello asks the
// master, if one runs, for a dump; connections are converted and
// inserted.
func (sd *syncDaemons) received(ctx context.Context, b *backupDaemon) func(netip.AddrPort, uint8, []ipvssync.Conn) {
	var (
		mu   sync.Mutex // the Receiver's sockets (one per family) may call at once
		recs []forwarder.SyncRecord
	)
	return func(from netip.AddrPort, syncid uint8, conns []ipvssync.Conn) {
		mu.Lock()
		defer mu.Unlock()
		if len(conns) == 0 {
			sd.stats.hellosRecv.Add(1)
			sd.mu.Lock()
			m := sd.master
			sd.mu.Unlock()
			if m != nil {
				sd.log.Info("resync: a peer started; sending it the connection table", "peer", from.Addr())
				select {
				case m.dump <- struct{}{}:
				default: // one is asked for already
				}
			}
			return
		}
		sd.stats.recvMsgs.Add(1)
		sd.stats.recvConns.Add(uint64(len(conns)))
		recs = recs[:0]
		for i := range conns {
			r, reason := fromWire(&conns[i])
			if reason != "" {
				sd.stats.drop(reason, 1)
				continue
			}
			recs = append(recs, r)
		}
		if len(recs) == 0 {
			return
		}
		st, err := sd.table.InsertSynced(ctx, recs)
		sd.stats.drop(dropServer, st.NoServer)
		sd.stats.drop(dropInsert, st.Refused)
		if now := time.Now().Unix(); err != nil && ctx.Err() == nil && st.Refused > 0 && sd.refusedLogged.Swap(now) < now-60 {
			sd.log.Warn("sync: connections the table did not take", "refused", st.Refused, "err", err)
		}
	}
}
