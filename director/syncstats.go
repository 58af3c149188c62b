//go:build linux

package director

import (
	"sync/atomic"

	"github.com/udr-lb/udr/ipvssync"
	"github.com/udr-lb/udr/metrics"
)

// Reasons for which sync messages or connections are dropped, as the
// udr_sync_dropped_total metric labels them.
const (
	dropDecode  = "decode"    // a message the decoder refused (malformed, wrong size, ...)
	dropSyncID  = "syncid"    // a message of another sync ID
	dropSkipped = "skipped"   // records the kernel's backup skips too (unknown protocol, state, option)
	dropFwmark  = "fwmark"    // a firewall-mark connection: udr has no fwmark services
	dropNoCPort = "no-cport"  // a connection with no client port yet (FTP), which udr does not keep
	dropServer  = "no-server" // no local service, or no such real server in it
	dropInsert  = "insert"    // the connection table did not take it
	dropEncode  = "encode"    // a connection the encoder refused
	dropSend    = "send"      // a message the socket did not take
	dropQueue   = "queue"     // connections a worker could not queue for the master (its queue was full)
)

var syncDropReasons = []string{dropDecode, dropSyncID, dropSkipped, dropFwmark, dropNoCPort,
	dropServer, dropInsert, dropEncode, dropSend, dropQueue}

// syncCounters are the sync metrics, updated by the daemons' goroutines.
type syncCounters struct {
	sentMsgs, sentConns, recvMsgs, recvConns atomic.Uint64
	hellosSent, hellosRecv, dumps, dumpConns atomic.Uint64
	dropped                                  [10]atomic.Uint64 // by syncDropReasons index
}

func (c *syncCounters) drop(reason string, n int) {
	for i, r := range syncDropReasons {
		if r == reason {
			c.dropped[i].Add(uint64(n))
			return
		}
	}
}

func addReceiverStats(to *ipvssync.ReceiverStats, s ipvssync.ReceiverStats) {
	to.Messages += s.Messages
	to.Conns += s.Conns
	to.Skipped += s.Skipped
	for i := range to.Drops {
		to.Drops[i] += s.Drops[i]
	}
}

// snapshot is the daemons' part of the metrics.
func (sd *syncDaemons) snapshot() metrics.Sync {
	sd.mu.Lock()
	s := metrics.Sync{Master: sd.master != nil, Backup: sd.backup != nil}
	rs := sd.recvDone
	if sd.backup != nil {
		addReceiverStats(&rs, sd.backup.rcv.Stats())
	}
	sd.mu.Unlock()
	qs := sd.table.SyncStats()
	c := &sd.stats
	s.SentMessages, s.SentConns = c.sentMsgs.Load(), c.sentConns.Load()
	s.ReceivedMessages, s.ReceivedConns = c.recvMsgs.Load(), c.recvConns.Load()
	s.HellosSent, s.HellosReceived = c.hellosSent.Load(), c.hellosRecv.Load()
	s.Resyncs, s.ResyncConns = c.dumps.Load(), c.dumpConns.Load()
	s.Dropped = make(map[string]uint64, len(syncDropReasons))
	for i, r := range syncDropReasons {
		s.Dropped[r] = c.dropped[i].Load()
	}
	// What the receiver's socket and the workers' queues dropped.
	for i, n := range rs.Drops {
		switch ipvssync.DropReason(i) {
		case ipvssync.DropOwn: // this director's own messages: not a loss
		case ipvssync.DropSyncID:
			s.Dropped[dropSyncID] += n
		default:
			s.Dropped[dropDecode] += n
		}
	}
	s.Dropped[dropSkipped] += rs.Skipped
	s.Dropped[dropQueue] += qs.Dropped
	s.Dropped[dropServer] += qs.NoServer
	return s
}
