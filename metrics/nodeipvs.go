package metrics

import (
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The node_ipvs_* metrics are node_exporter's IPVS collector's
// (collector/ipvs_linux.go), exported by udr beside its own so that the
// dashboards and alerts written for a kernel IPVS director keep working:
// the same names, HELP texts, types, label names and label value formats,
// with node_exporter's default label set (--collector.ipvs.backend-labels
// unset: all six labels).
//
// node_exporter reads the totals from /proc/net/ip_vs_stats and the real
// servers from /proc/net/ip_vs; udr gives the same numbers that ipvsadm -L
// -n --stats --exact and -L -n show, with one difference: the totals are
// the cumulative counters, which ipvsadm -Z does not reset (the kernel's
// /proc/net/ip_vs_stats goes back to 0, which Prometheus takes for a
// counter reset). The outgoing counters are 0, as in the kernel for DR.
//
// Label values, as node_exporter formats what procfs parses:
//   - local_address, remote_address: Go's net.IP.String of the address
//     ("192.0.2.100", "2001:db8::100", no brackets);
//   - local_port, remote_port: decimal;
//   - proto: "TCP" or "UDP" (the kernel's ip_vs_proto_name);
//   - local_mark: the firewall mark of an FWM service, "" otherwise (udr
//     has no fwmark services, so always "").
//
// With all six labels each (service, real server) pair is its own series:
// node_exporter's summing of backends that share a label set (with fewer
// labels) never applies.

// nodeIPVSLabels are node_exporter's fullIpvsBackendLabels, in its order.
var nodeIPVSLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}

// nodeIPVSDescs are node_exporter's IPVS metric descriptions.
type nodeIPVSDescs struct {
	connections, incomingPackets, outgoingPackets, incomingBytes, outgoingBytes *prometheus.Desc
	backendActive, backendInactive, backendWeight                               *prometheus.Desc
}

func newNodeIPVSDescs() nodeIPVSDescs {
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("node_ipvs_"+name, help, labels, nil)
	}
	return nodeIPVSDescs{
		connections:     d("connections_total", "The total number of connections made.", nil),
		incomingPackets: d("incoming_packets_total", "The total number of incoming packets.", nil),
		outgoingPackets: d("outgoing_packets_total", "The total number of outgoing packets.", nil),
		incomingBytes:   d("incoming_bytes_total", "The total amount of incoming data.", nil),
		outgoingBytes:   d("outgoing_bytes_total", "The total amount of outgoing data.", nil),
		backendActive:   d("backend_connections_active", "The current active connections by local and remote address.", nodeIPVSLabels),
		backendInactive: d("backend_connections_inactive", "The current inactive connections by local and remote address.", nodeIPVSLabels),
		backendWeight:   d("backend_weight", "The current backend weight by local and remote address.", nodeIPVSLabels),
	}
}

func (d *nodeIPVSDescs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{
		d.connections, d.incomingPackets, d.outgoingPackets, d.incomingBytes, d.outgoingBytes,
		d.backendActive, d.backendInactive, d.backendWeight,
	} {
		ch <- x
	}
}

// collect reports s as node_exporter's IPVS collector would report a kernel
// director in the same state.
func (d *nodeIPVSDescs) collect(ch chan<- prometheus.Metric, s *Snapshot) {
	counter := func(desc *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	t := s.Total.Cumulative
	counter(d.connections, t.Conns)
	counter(d.incomingPackets, t.InPkts)
	counter(d.outgoingPackets, t.OutPkts)
	counter(d.incomingBytes, t.InBytes)
	counter(d.outgoingBytes, t.OutBytes)

	for _, svc := range s.Services {
		// procfs parses the kernel's hex address into a net.IP, which
		// node_exporter prints with String.
		local := net.IP(svc.Key.Addr.AsSlice()).String()
		localPort := strconv.FormatUint(uint64(svc.Key.Port), 10)
		proto := svc.Key.Proto.String()
		for _, srv := range svc.Servers {
			labels := []string{
				local, localPort,
				net.IP(srv.Addr.Addr().AsSlice()).String(), strconv.FormatUint(uint64(srv.Addr.Port()), 10),
				proto, "",
			}
			gauge := func(desc *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
			}
			gauge(d.backendActive, float64(srv.Active))
			gauge(d.backendInactive, float64(srv.Inactive))
			gauge(d.backendWeight, float64(srv.Weight))
		}
	}
}
