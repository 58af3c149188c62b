// Package metrics exports udr's state to Prometheus: per service and per
// real server connections, traffic counters, rates and health, the
// forwarder's verdicts (drops by reason), the connection table's size and
// evictions, and the socket's kernel drops, all named udr_*; and, beside
// them, node_exporter's IPVS metrics (node_ipvs_*) for the dashboards and
// alerts written for a kernel IPVS director.
//
// Nothing is updated per packet: a Collector calls the snapshot function
// it was given at each scrape and turns the Snapshot into constant
// metrics, so the packet path never touches Prometheus. The snapshot
// function runs on the scraping goroutine; it must copy what it reports
// (values owned by the forwarding worker are read through the director,
// never directly). A Collector is safe for concurrent use if its snapshot
// function is.
package metrics
