package metrics

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/udr-lb/udr/service"
	"github.com/udr-lb/udr/stats"
)

var nodeIPVSNames = []string{
	"node_ipvs_connections_total", "node_ipvs_incoming_packets_total", "node_ipvs_outgoing_packets_total",
	"node_ipvs_incoming_bytes_total", "node_ipvs_outgoing_bytes_total",
	"node_ipvs_backend_connections_active", "node_ipvs_backend_connections_inactive", "node_ipvs_backend_weight",
}

// nodeIPVSState is a director with IPv4 and IPv6 services, TCP and UDP,
// several real servers (some on another port than the VIP's) and every
// number non-zero and distinct, the outgoing totals included (0 in DR, but
// non-zero here so that a swapped column shows).
func nodeIPVSState() Snapshot {
	srv := func(addr string, weight, active, inactive int32) Server {
		return Server{Addr: netip.MustParseAddrPort(addr), Weight: weight, Active: active, Inactive: inactive, Persist: 1}
	}
	key := func(p service.Proto, addr string, port uint16) service.Key {
		return service.Key{Proto: p, Addr: netip.MustParseAddr(addr), Port: port}
	}
	total := stats.Counters{Conns: 0x1234567, InPkts: 0x89abcdef, OutPkts: 17, InBytes: 0x123456789abc, OutBytes: 1234}
	return Snapshot{
		Total: stats.Snapshot{Counters: total, Cumulative: total, Rates: stats.Rates{CPS: 12, InPPS: 3400, OutPPS: 1, InBPS: 560000, OutBPS: 70}},
		Services: []Service{
			{Key: key(service.TCP, "192.0.2.100", 80), Servers: []Server{
				srv("192.0.2.11:80", 1, 3, 12), srv("192.0.2.12:8080", 2, 5, 20), srv("198.51.100.13:80", 100, 1000, 65535),
			}},
			{Key: key(service.UDP, "192.0.2.100", 53), Servers: []Server{
				srv("192.0.2.11:53", 3, 7, 4096), srv("192.0.2.12:5353", 4, 9, 1),
			}},
			{Key: key(service.TCP, "2001:db8::100", 443), Servers: []Server{
				srv("[2001:db8::11]:443", 5, 11, 13), srv("[2001:db8:0:1::abcd]:8443", 6, 15, 17),
			}},
			{Key: key(service.UDP, "2001:db8::100", 53), Servers: []Server{
				srv("[2001:db8::11]:53", 7, 19, 23), srv("[2001:db8::12]:53", 65535, 29, 31),
			}},
		},
	}
}

// kernelAddr formats an address as the kernel's /proc/net/ip_vs does
// (ip_vs_ctl.c ip_vs_info_seq_show): IPv4 as %08X of the host-order
// address, IPv6 as [%pI6], eight groups of four hex digits.
func kernelAddr(a netip.Addr) string {
	b := a.AsSlice()
	if a.Is4() {
		return fmt.Sprintf("%08X", uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
	}
	var g []string
	for i := 0; i < 16; i += 2 {
		g = append(g, fmt.Sprintf("%02x%02x", b[i], b[i+1]))
	}
	return "[" + strings.Join(g, ":") + "]"
}

// procIPVS renders s as the kernel's /proc/net/ip_vs (ip_vs_ctl.c
// ip_vs_info_seq_show; /work/shared/IPVS.md 5.6): what node_exporter
// reads for the node_ipvs_backend_* metrics.
func procIPVS(s Snapshot) string {
	var b strings.Builder
	b.WriteString("IP Virtual Server version 1.2.1 (size=4096)\n")
	b.WriteString("Prot LocalAddress:Port Scheduler Flags\n")
	b.WriteString("  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n")
	for i, svc := range s.Services {
		if svc.Key.Addr.Is4() {
			fmt.Fprintf(&b, "%s  %s:%04X %s %s ", svc.Key.Proto, kernelAddr(svc.Key.Addr), svc.Key.Port, "wlc", "")
		} else {
			fmt.Fprintf(&b, "%s  %s:%04X %s ", svc.Key.Proto, kernelAddr(svc.Key.Addr), svc.Key.Port, "wlc")
		}
		if i == 0 { // a persistent service: the timeout in jiffies, the netmask
			fmt.Fprintf(&b, "persistent %d %08X\n", 300*250, 0xffffffff)
		} else {
			b.WriteString("\n")
		}
		for _, srv := range svc.Servers {
			fmt.Fprintf(&b, "  -> %s:%04X      %-7s %-6d %-10d %-10d\n",
				kernelAddr(srv.Addr.Addr()), srv.Addr.Port(), "Route", srv.Weight, srv.Active, srv.Inactive)
		}
	}
	return b.String()
}

// procIPVSStats renders the totals as the kernel's /proc/net/ip_vs_stats
// (ip_vs_ctl.c ip_vs_stats_show): the counters since the last zeroing
// (what ipvsadm --stats would sum), then the rates.
func procIPVSStats(s Snapshot) string {
	c, r := s.Total.Counters, s.Total.Rates
	return "   Total Incoming Outgoing         Incoming         Outgoing\n" +
		"   Conns  Packets  Packets            Bytes            Bytes\n" +
		fmt.Sprintf("%8X %8X %8X %16X %16X\n\n", c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes) +
		" Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n" +
		fmt.Sprintf("%8X %8X %8X %16X %16X\n", r.CPS, r.InPPS, r.OutPPS, r.InBPS, r.OutBPS)
}

// nodeExporterIPVS is node_exporter's IPVS collector with its default
// --collector.ipvs.backend-labels (all six labels), reproduced from
// github.com/prometheus/node_exporter collector/ipvs_linux.go at commit
// a7dcc3a01545180d4f2087db70994cbc3abfed13 (newIPVSCollector and Update):
// the names, HELP texts, types and label formatting are copied, not
// shared with udr's code. The node_exporter module itself is not imported:
// its collector package registers kingpin flags at init and would bring
// its whole dependency tree into udr's go.mod.
type nodeExporterIPVS struct {
	fs                                                                          procfs.FS
	backendLabels                                                               []string
	backendConnectionsActive, backendConnectionsInact, backendWeight            *prometheus.Desc
	connections, incomingPackets, outgoingPackets, incomingBytes, outgoingBytes *prometheus.Desc
}

type ipvsBackendStatus struct {
	ActiveConn uint64
	InactConn  uint64
	Weight     uint64
}

func newNodeExporterIPVS(fs procfs.FS) *nodeExporterIPVS {
	const namespace, subsystem = "node", "ipvs"
	c := nodeExporterIPVS{
		fs:            fs,
		backendLabels: []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"},
	}
	c.connections = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "connections_total"),
		"The total number of connections made.", nil, nil)
	c.incomingPackets = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "incoming_packets_total"),
		"The total number of incoming packets.", nil, nil)
	c.outgoingPackets = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "outgoing_packets_total"),
		"The total number of outgoing packets.", nil, nil)
	c.incomingBytes = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "incoming_bytes_total"),
		"The total amount of incoming data.", nil, nil)
	c.outgoingBytes = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "outgoing_bytes_total"),
		"The total amount of outgoing data.", nil, nil)
	c.backendConnectionsActive = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "backend_connections_active"),
		"The current active connections by local and remote address.", c.backendLabels, nil)
	c.backendConnectionsInact = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "backend_connections_inactive"),
		"The current inactive connections by local and remote address.", c.backendLabels, nil)
	c.backendWeight = prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "backend_weight"),
		"The current backend weight by local and remote address.", c.backendLabels, nil)
	return &c
}

func (c *nodeExporterIPVS) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.incomingPackets, c.outgoingPackets, c.incomingBytes, c.outgoingBytes,
		c.backendConnectionsActive, c.backendConnectionsInact, c.backendWeight} {
		ch <- d
	}
}

// Collect is node_exporter's Update; an error panics, failing the test.
func (c *nodeExporterIPVS) Collect(ch chan<- prometheus.Metric) {
	if err := c.update(ch); err != nil {
		panic(err)
	}
}

func (c *nodeExporterIPVS) update(ch chan<- prometheus.Metric) error {
	ipvsStats, err := c.fs.IPVSStats()
	if err != nil {
		return fmt.Errorf("could not get IPVS stats: %w", err)
	}
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.CounterValue, float64(ipvsStats.Connections))
	ch <- prometheus.MustNewConstMetric(c.incomingPackets, prometheus.CounterValue, float64(ipvsStats.IncomingPackets))
	ch <- prometheus.MustNewConstMetric(c.outgoingPackets, prometheus.CounterValue, float64(ipvsStats.OutgoingPackets))
	ch <- prometheus.MustNewConstMetric(c.incomingBytes, prometheus.CounterValue, float64(ipvsStats.IncomingBytes))
	ch <- prometheus.MustNewConstMetric(c.outgoingBytes, prometheus.CounterValue, float64(ipvsStats.OutgoingBytes))

	backendStats, err := c.fs.IPVSBackendStatus()
	if err != nil {
		return fmt.Errorf("could not get backend status: %w", err)
	}

	sums := map[string]ipvsBackendStatus{}
	labelValues := map[string][]string{}
	for _, backend := range backendStats {
		localAddress := ""
		if backend.LocalAddress.String() != "<nil>" {
			localAddress = backend.LocalAddress.String()
		}
		kv := make([]string, len(c.backendLabels))
		for i, label := range c.backendLabels {
			var labelValue string
			switch label {
			case "local_address":
				labelValue = localAddress
			case "local_port":
				labelValue = strconv.FormatUint(uint64(backend.LocalPort), 10)
			case "remote_address":
				labelValue = backend.RemoteAddress.String()
			case "remote_port":
				labelValue = strconv.FormatUint(uint64(backend.RemotePort), 10)
			case "proto":
				labelValue = backend.Proto
			case "local_mark":
				labelValue = backend.LocalMark
			}
			kv[i] = labelValue
		}
		key := strings.Join(kv, "-")
		status := sums[key]
		status.ActiveConn += backend.ActiveConn
		status.InactConn += backend.InactConn
		status.Weight += backend.Weight
		sums[key] = status
		labelValues[key] = kv
	}
	for key, status := range sums {
		kv := labelValues[key]
		ch <- prometheus.MustNewConstMetric(c.backendConnectionsActive, prometheus.GaugeValue, float64(status.ActiveConn), kv...)
		ch <- prometheus.MustNewConstMetric(c.backendConnectionsInact, prometheus.GaugeValue, float64(status.InactConn), kv...)
		ch <- prometheus.MustNewConstMetric(c.backendWeight, prometheus.GaugeValue, float64(status.Weight), kv...)
	}
	return nil
}

// kernelProc writes s as the kernel's /proc/net/ip_vs and ip_vs_stats
// under a temporary directory and returns it opened by procfs, as
// node_exporter opens /proc.
func kernelProc(t *testing.T, s Snapshot) procfs.FS {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"ip_vs": procIPVS(s), "ip_vs_stats": procIPVSStats(s)} {
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := procfs.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestNodeIPVSAsNodeExporter renders one state as the kernel's /proc files,
// has procfs parse them and node_exporter's collector logic export them,
// and compares that, series by series, HELP and TYPE included, with udr's
// node_ipvs_* for the same state.
func TestNodeIPVSAsNodeExporter(t *testing.T) {
	s := nodeIPVSState()
	fs := kernelProc(t, s)

	// The rendering round-trips through procfs: nothing is lost before
	// node_exporter's logic runs.
	st, err := fs.IPVSStats()
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Total.Counters; st != (procfs.IPVSStats{Connections: c.Conns, IncomingPackets: c.InPkts, OutgoingPackets: c.OutPkts, IncomingBytes: c.InBytes, OutgoingBytes: c.OutBytes}) {
		t.Fatalf("procfs read totals %+v from\n%s", st, procIPVSStats(s))
	}
	backends, err := fs.IPVSBackendStatus()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, svc := range s.Services {
		n += len(svc.Servers)
	}
	if len(backends) != n {
		t.Fatalf("procfs read %d backends, want %d, from\n%s", len(backends), n, procIPVS(s))
	}

	want := gather(t, newNodeExporterIPVS(fs), nodeIPVSNames...)
	got := gather(t, NewCollector(func() Snapshot { return s }, nil), nodeIPVSNames...)
	if lines := strings.Count(want, "\n"); lines != 8*2+5+3*n {
		t.Fatalf("node_exporter's export has %d lines, want %d:\n%s", lines, 8*2+5+3*n, want)
	}
	compareSeries(t, want, got)
	// Spot-check the formats the comparison relies on.
	for _, series := range []string{
		`node_ipvs_backend_weight{local_address="192.0.2.100",local_mark="",local_port="80",proto="TCP",remote_address="192.0.2.12",remote_port="8080"} 2`,
		`node_ipvs_backend_connections_inactive{local_address="2001:db8::100",local_mark="",local_port="443",proto="TCP",remote_address="2001:db8:0:1::abcd",remote_port="8443"} 17`,
		`node_ipvs_backend_connections_active{local_address="2001:db8::100",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::12",remote_port="53"} 29`,
		`node_ipvs_incoming_bytes_total 2.0015998343868e+13`,
	} {
		if !strings.Contains(got, series+"\n") {
			t.Errorf("udr's export lacks %s", series)
		}
	}
}

// compareSeries fails the test with every line (series, HELP, TYPE) that
// only one of the two expositions has.
func compareSeries(t *testing.T, nodeExporter, udr string) {
	t.Helper()
	ne, u := strings.Split(nodeExporter, "\n"), strings.Split(udr, "\n")
	for _, l := range ne {
		if !slices.Contains(u, l) {
			t.Errorf("node_exporter only: %s", l)
		}
	}
	for _, l := range u {
		if !slices.Contains(ne, l) {
			t.Errorf("udr only:           %s", l)
		}
	}
	if !t.Failed() && nodeExporter != udr {
		t.Errorf("same lines, another order:\n%s\nnode_exporter:\n%s", udr, nodeExporter)
	}
}

// TestNodeIPVSTotalsCumulative checks that the node_ipvs_* totals do not go
// back after ipvsadm -Z, unlike the kernel's /proc/net/ip_vs_stats: they
// are Prometheus counters.
func TestNodeIPVSTotalsCumulative(t *testing.T) {
	s := nodeIPVSState()
	s.Total.Cumulative.Conns = 30
	s.Total.Counters = stats.Counters{Conns: 1} // zeroed since
	got := gather(t, NewCollector(func() Snapshot { return s }, nil), "node_ipvs_connections_total")
	want := "node_ipvs_connections_total 30\n"
	if !strings.HasSuffix(got, want) {
		t.Fatalf("got\n%s\nwant the line %q", got, want)
	}
}

// TestNodeIPVSNoServices: a director without services exports the totals
// and no backend series, as node_exporter does for an empty /proc/net/ip_vs.
func TestNodeIPVSNoServices(t *testing.T) {
	s := Snapshot{}
	want := gather(t, newNodeExporterIPVS(kernelProc(t, s)), nodeIPVSNames...)
	got := gather(t, NewCollector(func() Snapshot { return s }, nil), nodeIPVSNames...)
	compareSeries(t, want, got)
	if !strings.Contains(got, "node_ipvs_connections_total 0\n") || strings.Contains(got, "backend") {
		t.Fatalf("udr's export without services:\n%s", got)
	}
}
