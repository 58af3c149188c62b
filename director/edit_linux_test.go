//go:build linux

package director_test

import (
	"strings"
	"testing"

	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedEditServer: an ipvsadm -e that changes nothing still runs
// the scheduler's upd_dest (__ip_vs_update_dest), which moves wrr back to
// the list head (ip_vs_wrr_dest_changed); a reload of the same rules does
// not. rs1 (weight 2) was added before rs2 (weight 1): wrr picks rs2 rs1
// rs1 rs2 rs1 rs1 …
func TestPrivilegedEditServer(t *testing.T) {
	netlab.Privileged(t)
	rules := []string{
		"-A -t 192.0.2.100:80 -s wrr",
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 2",
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 1",
	}
	l := newLab(t, "edit", drlab.Options{})
	l.start(2, rules...)
	client := drlab.HTTPClient(l.Client, requestTimeout)
	const url = "http://192.0.2.100/"

	got := gets(t, client, url, 1)
	l.reload(rules...)
	got = append(got, gets(t, client, url, 1)...)
	if err := apply(l, "-e", "-t", "192.0.2.100:80", "-r", "192.0.2.11:80", "-g", "-w", "2"); err != nil {
		t.Fatalf("-e: %v", err)
	}
	got = append(got, gets(t, client, url, 3)...)
	if got, want := strings.Join(got, " "), "rs2 rs1 rs2 rs1 rs1"; got != want {
		t.Errorf("answers around a reload and a no-op -e: %s, want %s", got, want)
	}

	// -E to rr and back to wrr: init_service over the whole list starts
	// wrr at cw = mw, on rs1.
	if err := apply(l, "-E", "-t", "192.0.2.100:80", "-s", "rr"); err != nil {
		t.Fatalf("-E -s rr: %v", err)
	}
	if err := apply(l, "-E", "-t", "192.0.2.100:80", "-s", "wrr"); err != nil {
		t.Fatalf("-E -s wrr: %v", err)
	}
	if got, want := strings.Join(gets(t, client, url, 3), " "), "rs1 rs2 rs1"; got != want {
		t.Errorf("answers after -E -s wrr: %s, want %s", got, want)
	}
}
