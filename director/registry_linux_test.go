//go:build linux

package director_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedRegistryChurn adds and deletes 200,000 distinct real
// servers, one at a time, through the director's apply path while clients
// connect through it and listings, statistics and metrics are read: the
// real server registry holds 65,536 IDs, so this passes only if the IDs of
// deleted servers are freed (and listings never take one).
func TestPrivilegedRegistryChurn(t *testing.T) {
	netlab.Privileged(t)
	cycles := 200_000
	if raceDetector {
		// Five times slower: the run without the race detector is the
		// one that goes past the registry's 65,536 IDs.
		cycles = 10_000
	}
	if s := os.Getenv("UDR_CHURN_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	l := newLab(t, "churn", drlab.Options{})
	l.start(2,
		"-A -t 192.0.2.100:80 -s rr",
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1",
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1",
		// The churned servers' service: in direct routing a real server
		// has the service's port, and only IPv6 documentation space has
		// 200,000 addresses.
		"-A -t [2001:db8::100]:80 -s wlc",
	)
	// 400,000 changes log 800,000 lines: keep them out of the test log.
	l.log.stop()
	// The rest of each change is what Apply always does: admin.Apply,
	// compile, swap, publish, reap.
	l.d.SkipHostCheck()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var nget, lists int
	client := drlab.HTTPClient(l.Client, requestTimeout)
	wg.Add(2)
	go func() { // the packet worker forwards throughout
		defer wg.Done()
		for ; ctx.Err() == nil && nget < 100_000; nget++ {
			if _, err := drlab.Get(client, "http://192.0.2.100/"); err != nil {
				t.Errorf("GET during churn (after %d): %v", nget, err)
				return
			}
			time.Sleep(time.Millisecond) // leave the two cores to the churn
		}
	}()
	go func() { // read-only code: listings with connections, metrics
		defer wg.Done()
		for ; ctx.Err() == nil && lists < 100_000; lists++ {
			// A connection listing copies the whole table on the worker
			// (1.2M slots): one in 16.
			st, err := l.d.State(lists%16 == 0)
			if err != nil {
				t.Errorf("listing during churn (after %d): %v", lists, err)
				return
			}
			if len(st.Dests) < 2 {
				t.Errorf("listing during churn shows %d real servers, want at least 2", len(st.Dests))
				return
			}
			if snap := l.d.MetricsSnapshot(); len(snap.Services) != 2 {
				t.Errorf("metrics during churn: %d services, want 2", len(snap.Services))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	start := time.Now()
	done := 0
	for i := range cycles {
		if ctx.Err() != nil {
			t.Errorf("cycle %d of %d: out of time", i, cycles)
			break
		}
		rip := netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), 80).String()
		if err := apply(l, "-a", "-t", "[2001:db8::100]:80", "-r", rip, "-g", "-w", "1"); err != nil {
			t.Errorf("cycle %d: -a %s: %v", i, rip, err)
			break
		}
		if err := apply(l, "-d", "-t", "[2001:db8::100]:80", "-r", rip); err != nil {
			t.Errorf("cycle %d: -d %s: %v", i, rip, err)
			break
		}
		done++
	}
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	t.Logf("%d add/delete cycles in %v (%v per change); %d GETs and %d listings meanwhile",
		done, elapsed.Round(time.Millisecond), (elapsed / time.Duration(2*max(done, 1))).Round(time.Microsecond), nget, lists)
	if nget == 0 || lists == 0 {
		t.Errorf("%d GETs and %d listings during churn, want some of each", nget, lists)
	}

	// The servers that stayed still take connections, both of them.
	got := gets(t, client, "http://192.0.2.100/", 4)
	if !slices.Contains(got, "rs1") || !slices.Contains(got, "rs2") {
		t.Errorf("GETs after churn answered by %q, want rs1 and rs2", got)
	}
}

// apply runs one ipvsadm command through the director's apply path.
func apply(l *lab, args ...string) error {
	cmd, err := admin.ParseCommand(args)
	if err != nil {
		return fmt.Errorf("parse %q: %w", args, err)
	}
	return l.d.Apply(cmd)
}
