package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/bounded"
	"github.com/udr-lb/udr/stats"
)

// Options select optional metrics. The zero value exports the default set.
type Options struct {
	// Rates adds the estimator's rates (udr_*_per_second gauges), which
	// duplicate what rate() computes from the counters but match ipvsadm
	// --rate exactly.
	Rates bool
	// Listeners are the counters of udr's bounded listeners (the
	// control socket, the metrics endpoint), by name: the
	// udr_listener_* metrics.
	Listeners map[string]*bounded.Counters
}

// Collector is a prometheus.Collector that reports a Snapshot taken at
// scrape time.
type Collector struct {
	snapshot func() Snapshot
	opts     Options
	d        descs
	node     nodeIPVSDescs // node_exporter's node_ipvs_* (nodeipvs.go)
}

// descs are the metric descriptions, built once.
type descs struct {
	svcConns, svcConnsTotal, svcPkts, svcBytes  *prometheus.Desc
	svcCPS, svcPPS, svcBPS                      *prometheus.Desc
	srvConns, srvWeight, srvConnsTotal, srvPkts *prometheus.Desc
	srvBytes, srvCPS, srvPPS, srvBPS            *prometheus.Desc
	srvUp, srvTransitions, srvUnknown           *prometheus.Desc
	svcQuorumUp                                 *prometheus.Desc
	forwarded, replied, dropped                 *prometheus.Desc
	ctEntries, ctCapacity, ctExpired, ctEvicted *prometheus.Desc
	ctDropped, ctDefending                      *prometheus.Desc
	ctFull, kernelDrops                         *prometheus.Desc
	lnHeld, lnIdleClosed, lnWaited              *prometheus.Desc
	standby                                     *prometheus.Desc
	syncRunning, syncMsgs, syncConns            *prometheus.Desc
	syncHellos, syncResyncs, syncResyncConns    *prometheus.Desc
	syncDropped                                 *prometheus.Desc
}

// NewCollector returns a Collector that calls snapshot at each scrape; opts
// may be nil.
func NewCollector(snapshot func() Snapshot, opts *Options) *Collector {
	c := &Collector{snapshot: snapshot, node: newNodeIPVSDescs()}
	if opts != nil {
		c.opts = *opts
	}
	svc := []string{"service"}
	srv := []string{"service", "server"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("udr_"+name, help, labels, nil)
	}
	c.d = descs{
		svcConns:      d("service_connections", "Connections of the service's configured real servers, by state (active, inactive, persistent templates).", []string{"service", "state"}),
		svcConnsTotal: d("service_connections_total", "Connections scheduled to the service.", svc),
		svcPkts:       d("service_packets_total", "Client-to-server packets forwarded for the service (the only direction a DR director sees).", svc),
		svcBytes:      d("service_bytes_total", "Client-to-server bytes (IP datagram lengths) forwarded for the service.", svc),
		svcCPS:        d("service_connections_per_second", "The kernel estimator's connection rate of the service (ipvsadm --rate CPS).", svc),
		svcPPS:        d("service_packets_per_second", "The kernel estimator's packet rate of the service (ipvsadm --rate InPPS).", svc),
		svcBPS:        d("service_bytes_per_second", "The kernel estimator's byte rate of the service (ipvsadm --rate InBPS).", svc),
		srvConns:      d("server_connections", "Connections of the real server, by state (active, inactive, persistent templates).", []string{"service", "server", "state"}),
		srvWeight:     d("server_weight", "Configured weight of the real server.", srv),
		srvConnsTotal: d("server_connections_total", "Connections scheduled to the real server.", srv),
		srvPkts:       d("server_packets_total", "Client-to-server packets forwarded to the real server.", srv),
		srvBytes:      d("server_bytes_total", "Client-to-server bytes (IP datagram lengths) forwarded to the real server.", srv),
		srvCPS:        d("server_connections_per_second", "The kernel estimator's connection rate of the real server.", srv),
		srvPPS:        d("server_packets_per_second", "The kernel estimator's packet rate of the real server.", srv),
		srvBPS:        d("server_bytes_per_second", "The kernel estimator's byte rate of the real server.", srv),
		srvUp:         d("server_up", "Whether the real server's health check considers it up (1) or down (0).", srv),
		svcQuorumUp: d("service_quorum_up",
			"Whether the service has its quorum (1), or its sorry server, if any, serves in place of its real servers (0); only for services with a sorry server, quorum or hysteresis.", svc),
		srvTransitions: d("server_health_transitions_total",
			"Changes of the real server's health state.", srv),
		srvUnknown: d("server_health_unknown_total",
			"Health checks of the real server that could not run for the director's own want of resources (descriptors, buffers, memory): no result, the state stays.", srv),
		forwarded:       d("frames_forwarded_total", "Frames rewritten and sent to a real server.", nil),
		replied:         d("frames_replied_total", "Frames answered by udr (ARP replies, neighbor advertisements, ICMP unreachables).", nil),
		dropped:         d("frames_dropped_total", "Frames dropped, by the forwarder's verdict.", []string{"reason"}),
		ctEntries:       d("conntrack_entries", "Entries in the connection table.", nil),
		ctCapacity:      d("conntrack_capacity", "Most entries the connection table holds.", nil),
		ctExpired:       d("conntrack_expired_total", "Connection entries removed because their timer had fired.", nil),
		ctEvicted:       d("conntrack_evictions_total", "Live connection entries evicted to make room.", nil),
		ctFull:          d("conntrack_full_total", "New connections refused because the connection table was full.", nil),
		lnHeld:          d("listener_connections", "Connections the listener (control, metrics) holds; at most its cap.", []string{"listener"}),
		lnIdleClosed:    d("listener_idle_closed_total", "Idle connections the listener closed, at its cap, to make room for a new one.", []string{"listener"}),
		lnWaited:        d("listener_waited_total", "New connections that waited, at the listener's cap, for a busy one to end.", []string{"listener"}),
		kernelDrops:     d("socket_kernel_drops_total", "Frames the kernel dropped at udr's packet socket: rx when the receive buffer was full, tx when the device queue was.", []string{"direction"}),
		ctDropped:       d("conntrack_defense_dropped_total", "Connection entries the drop_entry and secure_tcp defences removed before their timer fired.", nil),
		ctDefending:     d("conntrack_defending_workers", "Workers whose connection table has the drop_entry or secure_tcp defence on.", nil),
		syncRunning:     d("sync_daemon_running", "Whether the connection sync daemon of the state (master, backup) runs.", []string{"state"}),
		syncMsgs:        d("sync_messages_total", "Connection sync messages sent by the master (resyncs included) or received by the backup (hellos apart).", []string{"direction"}),
		syncConns:       d("sync_connections_total", "Connections in the sync messages sent or received.", []string{"direction"}),
		syncHellos:      d("sync_hellos_total", "Hellos (sync messages without connections) sent by a starting backup, or received from a starting peer.", []string{"direction"}),
		syncResyncs:     d("sync_resyncs_total", "Whole connection tables sent in answer to a peer's hello.", nil),
		syncResyncConns: d("sync_resync_connections_total", "Connections sent in resyncs.", nil),
		syncDropped:     d("sync_dropped_total", "Sync messages or connections dropped, by reason (decode, syncid, skipped, fwmark, no-cport, no-server, insert, encode, send, queue).", []string{"reason"}),
		standby:         d("standby", "Whether the director is in standby (1: no ARP/NDP answers and no forwarding for the VIPs, udr admin --standby) or active (0).", nil),
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, x := range []*prometheus.Desc{
		d.svcConns, d.svcConnsTotal, d.svcPkts, d.svcBytes,
		d.srvConns, d.srvWeight, d.srvConnsTotal, d.srvPkts, d.srvBytes,
		d.srvUp, d.srvTransitions, d.srvUnknown, d.svcQuorumUp, d.forwarded, d.replied, d.dropped,
		d.ctEntries, d.ctCapacity, d.ctExpired, d.ctEvicted, d.ctFull, d.ctDropped, d.ctDefending, d.kernelDrops, d.standby,
		d.syncRunning, d.syncMsgs, d.syncConns, d.syncHellos, d.syncResyncs, d.syncResyncConns, d.syncDropped,
	} {
		ch <- x
	}
	c.node.describe(ch)
	if c.opts.Rates {
		for _, x := range []*prometheus.Desc{d.svcCPS, d.svcPPS, d.svcBPS, d.srvCPS, d.srvPPS, d.srvBPS} {
			ch <- x
		}
	}
	if len(c.opts.Listeners) > 0 {
		for _, x := range []*prometheus.Desc{d.lnHeld, d.lnIdleClosed, d.lnWaited} {
			ch <- x
		}
	}
}

// Collect implements prometheus.Collector: it takes one snapshot and
// reports it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	d := &c.d
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	rates := func(cps, pps, bps *prometheus.Desc, r stats.Rates, labels ...string) {
		if c.opts.Rates {
			gauge(cps, float64(r.CPS), labels...)
			gauge(pps, float64(r.InPPS), labels...)
			gauge(bps, float64(r.InBPS), labels...)
		}
	}

	for _, svc := range s.Services {
		sl := serviceLabel(svc.Key)
		var active, inactive, persist int64
		for _, srv := range svc.Servers {
			rl := srv.Addr.String()
			active += int64(srv.Active)
			inactive += int64(srv.Inactive)
			persist += int64(srv.Persist)
			gauge(d.srvConns, float64(srv.Active), sl, rl, "active")
			gauge(d.srvConns, float64(srv.Inactive), sl, rl, "inactive")
			gauge(d.srvConns, float64(srv.Persist), sl, rl, "persistent")
			gauge(d.srvWeight, float64(srv.Weight), sl, rl)
			counter(d.srvConnsTotal, srv.Stats.Cumulative.Conns, sl, rl)
			counter(d.srvPkts, srv.Stats.Cumulative.InPkts, sl, rl)
			counter(d.srvBytes, srv.Stats.Cumulative.InBytes, sl, rl)
			rates(d.srvCPS, d.srvPPS, d.srvBPS, srv.Stats.Rates, sl, rl)
			if h := srv.Health; h != nil {
				up := 0.0
				if h.Up {
					up = 1
				}
				gauge(d.srvUp, up, sl, rl)
				counter(d.srvTransitions, h.Transitions, sl, rl)
				counter(d.srvUnknown, h.Unknown, sl, rl)
			}
		}
		if q := svc.QuorumUp; q != nil {
			up := 0.0
			if *q {
				up = 1
			}
			gauge(d.svcQuorumUp, up, sl)
		}
		gauge(d.svcConns, float64(active), sl, "active")
		gauge(d.svcConns, float64(inactive), sl, "inactive")
		gauge(d.svcConns, float64(persist), sl, "persistent")
		counter(d.svcConnsTotal, svc.Stats.Cumulative.Conns, sl)
		counter(d.svcPkts, svc.Stats.Cumulative.InPkts, sl)
		counter(d.svcBytes, svc.Stats.Cumulative.InBytes, sl)
		rates(d.svcCPS, d.svcPPS, d.svcBPS, svc.Stats.Rates, sl)
	}

	for _, v := range forwarder.Verdicts() {
		n := s.Frames.Verdicts[v]
		switch v {
		case forwarder.VerdictForward:
			counter(d.forwarded, n)
		case forwarder.VerdictReply:
			counter(d.replied, n)
		default:
			counter(d.dropped, n, v.String())
		}
	}

	gauge(d.ctEntries, float64(s.Conntrack.Entries))
	gauge(d.ctCapacity, float64(s.Conntrack.Capacity))
	counter(d.ctExpired, s.Conntrack.Expired)
	counter(d.ctEvicted, s.Conntrack.Evicted)
	counter(d.ctFull, s.Conntrack.Full)
	counter(d.ctDropped, s.Conntrack.Dropped)
	gauge(d.ctDefending, float64(s.Conntrack.Defending))
	standby := 0.0
	if s.Standby {
		standby = 1
	}
	gauge(d.standby, standby)
	counter(d.kernelDrops, s.Socket.RxKernelDrops, "rx")
	counter(d.kernelDrops, s.Socket.TxNoBuffers, "tx")
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(d.syncRunning, b2f(s.Sync.Master), "master")
	gauge(d.syncRunning, b2f(s.Sync.Backup), "backup")
	counter(d.syncMsgs, s.Sync.SentMessages, "sent")
	counter(d.syncMsgs, s.Sync.ReceivedMessages, "received")
	counter(d.syncConns, s.Sync.SentConns, "sent")
	counter(d.syncConns, s.Sync.ReceivedConns, "received")
	counter(d.syncHellos, s.Sync.HellosSent, "sent")
	counter(d.syncHellos, s.Sync.HellosReceived, "received")
	counter(d.syncResyncs, s.Sync.Resyncs)
	counter(d.syncResyncConns, s.Sync.ResyncConns)
	for reason, n := range s.Sync.Dropped {
		counter(d.syncDropped, n, reason)
	}
	for name, n := range c.opts.Listeners {
		gauge(d.lnHeld, float64(n.Held.Load()), name)
		counter(d.lnIdleClosed, n.IdleClosed.Load(), name)
		counter(d.lnWaited, n.Waited.Load(), name)
	}
	c.node.collect(ch, &s)
}
