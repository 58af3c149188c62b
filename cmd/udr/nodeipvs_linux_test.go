//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedNodeIPVSMetrics runs HTTP requests through the daemon and
// checks that its node_exporter-named metrics give the numbers ipvsadm -L
// -n --stats --exact and -L -n show: the totals (one service, none
// deleted) and, per real server, the weight and connection counts.
func TestPrivilegedNodeIPVSMetrics(t *testing.T) {
	netlab.Privileged(t)
	bin := buildUDR(t)
	lab := newDaemonLab(t, "nodeipvs")
	rules := filepath.Join(bin.dir, "rules")
	if err := os.WriteFile(rules, []byte(walkthroughRules), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(bin.dir, "udr.sock")
	d := startDaemon(t, lab, bin, sock, "--iface", "eth0", "--rules", rules, "--control", sock, "--metrics", daemonMetrics)

	client := drlab.HTTPClient(lab.Client, 5*time.Second)
	ok := 0
	for i := 0; i < 40 && ok < 6; i++ { // the first requests wait for the servers' MACs
		if _, err := drlab.Get(client, "http://192.0.2.100/"); err != nil {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		ok++
	}
	if ok < 6 {
		t.Fatalf("%d of 6 requests through the VIP succeeded\n%s", ok, d.log)
	}

	// The estimator publishes the counters every 2 s: poll until the
	// metrics and the listing, read one after the other, agree and count
	// every connection.
	metrics := drlab.HTTPClient(lab.Director, daemonEventTimeout)
	const svc = `TCP  192.0.2.100:80`
	backend := func(rip string) string {
		return `{local_address="192.0.2.100",local_mark="",local_port="80",proto="TCP",remote_address="` + rip + `",remote_port="80"}`
	}
	var problems []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		list := d.mustIpvsadm(t, "-L", "-n")
		statsList := d.mustIpvsadm(t, "-L", "-n", "--stats", "--exact")
		m := scrape(t, metrics)
		problems = nil
		check := func(name string, want float64) {
			if got, ok := m[name]; !ok || got != want {
				problems = append(problems, fmt.Sprintf("%s = %v (present %v), want %v", name, got, ok, want))
			}
		}
		// ipvsadm -L -n --stats --exact: Conns InPkts OutPkts InBytes OutBytes.
		f := fieldsAfter(statsList, svc)
		if len(f) != 5 {
			t.Fatalf("no service line %q in:\n%s", svc, statsList)
		}
		if f[0] < float64(ok) {
			problems = append(problems, fmt.Sprintf("ipvsadm --stats shows %v connections, want at least %d", f[0], ok))
		}
		check("node_ipvs_connections_total", f[0])
		check("node_ipvs_incoming_packets_total", f[1])
		check("node_ipvs_outgoing_packets_total", f[2])
		check("node_ipvs_incoming_bytes_total", f[3])
		check("node_ipvs_outgoing_bytes_total", f[4])
		// ipvsadm -L -n: Forward Weight ActiveConn InActConn.
		for _, rip := range []string{"192.0.2.11", "192.0.2.12"} {
			f := fieldsAfter(list, "  -> "+rip+":80")
			if len(f) != 3 {
				t.Fatalf("no real server line for %s in:\n%s", rip, list)
			}
			check("node_ipvs_backend_weight"+backend(rip), f[0])
			check("node_ipvs_backend_connections_active"+backend(rip), f[1])
			check("node_ipvs_backend_connections_inactive"+backend(rip), f[2])
		}
		if len(problems) == 0 {
			t.Logf("ipvsadm -L -n --stats --exact:\n%s", statsList)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s the metrics and ipvsadm still disagree:\n%s\nipvsadm -L -n:\n%s\nipvsadm -L -n --stats --exact:\n%s",
				strings.Join(problems, "\n"), list, statsList)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// fieldsAfter returns the numbers of the listing line that starts with
// prefix, the word "Route" skipped; nil if there is no such line.
func fieldsAfter(listing, prefix string) []float64 {
	for line := range strings.SplitSeq(listing, "\n") {
		if !strings.HasPrefix(line, prefix+" ") {
			continue
		}
		var nums []float64
		for _, w := range strings.Fields(strings.TrimPrefix(line, prefix)) {
			if w == "Route" {
				continue
			}
			v, err := strconv.ParseFloat(w, 64)
			if err != nil {
				return nil
			}
			nums = append(nums, v)
		}
		return nums
	}
	return nil
}
