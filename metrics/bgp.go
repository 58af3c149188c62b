package metrics

import "github.com/prometheus/client_golang/prometheus"

// BGP is the state of udr's BGP speaker that a scrape reports, copied by
// the director.
type BGP struct {
	Peers  []BGPPeer
	Routes []BGPRoute
	// Announcements and Withdrawals count the routes udr announced and
	// withdrew since it started.
	Announcements, Withdrawals uint64
}

// BGPPeer is one BGP session.
type BGPPeer struct {
	Address                      string
	Up                           bool // established
	UpdatesSent, UpdatesReceived uint64
}

// BGPRoute is one VIP's route.
type BGPRoute struct {
	Prefix    string
	Announced bool
}

// BGPCollector is a prometheus.Collector of the BGP speaker's state,
// taken at scrape time. A nil BGP reports nothing.
type BGPCollector struct {
	snapshot                  func() *BGP
	peerUp, peerUpdates       *prometheus.Desc
	routeAnnounced, announces *prometheus.Desc
}

// NewBGPCollector returns a BGPCollector that calls snapshot at each
// scrape.
func NewBGPCollector(snapshot func() *BGP) *BGPCollector {
	return &BGPCollector{
		snapshot:       snapshot,
		peerUp:         prometheus.NewDesc("udr_bgp_peer_up", "Whether the BGP session with the peer is established (1) or not (0).", []string{"peer"}, nil),
		peerUpdates:    prometheus.NewDesc("udr_bgp_peer_updates_total", "BGP UPDATE messages exchanged with the peer, by direction (sent, received), over every session.", []string{"peer", "direction"}, nil),
		routeAnnounced: prometheus.NewDesc("udr_bgp_route_announced", "Whether udr announces the VIP's route (1) or has withdrawn it (0).", []string{"prefix"}, nil),
		announces:      prometheus.NewDesc("udr_bgp_route_changes_total", "Routes udr announced or withdrew, by change (announce, withdraw).", []string{"change"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *BGPCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peerUp, c.peerUpdates, c.routeAnnounced, c.announces} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *BGPCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	if s == nil {
		return
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, p := range s.Peers {
		ch <- prometheus.MustNewConstMetric(c.peerUp, prometheus.GaugeValue, b(p.Up), p.Address)
		ch <- prometheus.MustNewConstMetric(c.peerUpdates, prometheus.CounterValue, float64(p.UpdatesSent), p.Address, "sent")
		ch <- prometheus.MustNewConstMetric(c.peerUpdates, prometheus.CounterValue, float64(p.UpdatesReceived), p.Address, "received")
	}
	for _, r := range s.Routes {
		ch <- prometheus.MustNewConstMetric(c.routeAnnounced, prometheus.GaugeValue, b(r.Announced), r.Prefix)
	}
	ch <- prometheus.MustNewConstMetric(c.announces, prometheus.CounterValue, float64(s.Announcements), "announce")
	ch <- prometheus.MustNewConstMetric(c.announces, prometheus.CounterValue, float64(s.Withdrawals), "withdraw")
}
