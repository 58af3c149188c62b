package admin

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// walkthroughBackend is the LVS-DR walkthrough with a few counters and
// connections.
func walkthroughBackend(t *testing.T) *fakeBackend {
	t.Helper()
	b := newFakeBackend()
	for _, line := range []string{
		"-A -t 192.0.2.100:80 -s wrr",
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1",
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 2 -x 100 -y 50",
		"-A -u 192.0.2.100:53 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port",
		"-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1",
		"--set 100 10 20",
	} {
		cmd, err := ParseCommand(strings.Fields(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if err := b.Apply(cmd); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	for _, line := range []string{
		"TCP 192.0.2.100:80 conns=17 inpkts=1234 inbytes=98765 cps=2 inpps=15 inbps=1200",
		"TCP 192.0.2.100:80 -> 192.0.2.11:80 active=3 inactive=12 persist=1 conns=8 inpkts=600 inbytes=48000 cps=1",
	} {
		if err := b.setCounters(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.addConn("UDP 7199 ASSURED 192.0.2.0:0 192.0.2.100:53 192.0.2.11:53 template"); err != nil {
		t.Fatal(err)
	}
	return b
}

func runJSON(t *testing.T, b Backend, args ...string) *Listing {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Run(args, b, nil, &stdout, &stderr, Options{Resolver: fakeResolver{}}); code != 0 {
		t.Fatalf("%v: status %d, stderr %q", args, code, stderr.String())
	}
	var l Listing
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("%v: decode: %v", args, err)
	}
	return &l
}

func TestJSON(t *testing.T) {
	b := walkthroughBackend(t)
	got := runJSON(t, b, "-L", "-j", "-c")
	want := &Listing{
		Version:     "1.2.1",
		ConnTabSize: 4096,
		Timeouts:    TimeoutsEntry{TCP: 100, TCPFin: 10, UDP: 20},
		Services: []ServiceEntry{
			{
				Protocol: "TCP", Address: netip.MustParseAddr("192.0.2.100"), Port: 80,
				Scheduler: "wrr", Netmask: 32,
				Stats: StatsEntry{Conns: 17, InPkts: 1234, InBytes: 98765, CPS: 2, InPPS: 15, InBPS: 1200},
				Dests: []DestEntry{
					{
						Address: netip.MustParseAddr("192.0.2.11"), Port: 80, Forward: "Route", Weight: 1,
						ActiveConns: 3, InactiveConns: 12, PersistConns: 1,
						Stats: StatsEntry{Conns: 8, InPkts: 600, InBytes: 48000, CPS: 1},
					},
					{
						Address: netip.MustParseAddr("192.0.2.12"), Port: 80, Forward: "Route", Weight: 2,
						UThreshold: 100, LThreshold: 50,
					},
				},
			},
			{
				Protocol: "UDP", Address: netip.MustParseAddr("192.0.2.100"), Port: 53,
				Scheduler: "sh", Flags: "sh-fallback,sh-port", Persistent: true, PersistenceTimeout: 300, Netmask: 24,
				Dests: []DestEntry{
					{Address: netip.MustParseAddr("192.0.2.11"), Port: 53, Forward: "Route", Weight: 1},
				},
			},
		},
		Conns: []ConnEntry{{
			Protocol: "UDP", Expires: 7199, State: "ASSURED",
			Client:   netip.MustParseAddrPort("192.0.2.0:0"),
			Virtual:  netip.MustParseAddrPort("192.0.2.100:53"),
			Dest:     netip.MustParseAddrPort("192.0.2.11:53"),
			Template: true,
		}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("-L -j -c (-want +got):\n%s", diff)
	}
}

func TestJSONSelection(t *testing.T) {
	b := walkthroughBackend(t)

	one := runJSON(t, b, "-L", "--json", "-u", "192.0.2.100:53")
	if len(one.Services) != 1 || one.Services[0].Port != 53 || one.Conns != nil {
		t.Errorf("-L -j -u 192.0.2.100:53: services %+v, conns %v; want the UDP service alone, no connections", one.Services, one.Conns)
	}

	unsorted := runJSON(t, b, "-Lj", "--nosort")
	var order []string
	for _, d := range unsorted.Services[0].Dests {
		order = append(order, d.Address.String())
	}
	if diff := cmp.Diff([]string{"192.0.2.12", "192.0.2.11"}, order); diff != "" {
		t.Errorf("--nosort real servers (newest first) (-want +got):\n%s", diff)
	}

	var stdout, stderr bytes.Buffer
	code := Run([]string{"-L", "-j", "-t", "192.0.2.100:443"}, b, nil, &stdout, &stderr, Options{Resolver: fakeResolver{}})
	if code != ExitListFail || stdout.Len() != 0 || stderr.String() != "No such service\n" {
		t.Errorf("-L -j of a missing service: status %d, stdout %q, stderr %q; want 1, nothing, \"No such service\\n\"",
			code, stdout.String(), stderr.String())
	}
	if b.connsAsked != 0 {
		t.Errorf("listings without -c asked for the connections %d times", b.connsAsked)
	}
}
