package forwarder

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/udr-lb/udr/internal/udrtest"
)

// TestFTPDataNotScheduled: a packet from client port 20 (FTP data) that
// has no connection entry is never scheduled, TCP or UDP, whatever the
// scheduler (ip_vs_schedule: "Not scheduling FTPDATA"); it leaves no entry
// and no count.
func TestFTPDataNotScheduled(t *testing.T) {
	h := newHarness(t, rules2+`-A -u 192.0.2.100:54 -s rr -o
-a -u 192.0.2.100:54 -r 192.0.2.11:54 -g -w 1
-A -t 192.0.2.100:81 -s sh
-a -t 192.0.2.100:81 -r 192.0.2.11:81 -g -w 1
-A -t 192.0.2.100:82 -s rr -p 60
-a -t 192.0.2.100:82 -r 192.0.2.11:82 -g -w 1
`, 1024)
	vip := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(udrtest.VIP, port) }
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"tcp syn", udrtest.TCP(h.toVIP(), client(20), vip80, udrtest.SYN, nil)},
		{"tcp syn+ack", udrtest.TCP(h.toVIP(), client(20), vip80, udrtest.SYN|udrtest.ACK, nil)},
		{"udp", udrtest.UDP(h.toVIP(), client(20), vip53, []byte("q"))},
		{"udp one-packet", udrtest.UDP(h.toVIP(), client(20), vip(54), []byte("q"))},
		{"sh mid-stream", udrtest.TCP(h.toVIP(), client(20), vip(81), udrtest.ACK, nil)},
		{"persistent", udrtest.TCP(h.toVIP(), client(20), vip(82), udrtest.SYN, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := h.p.Process(slices.Clone(tt.frame), epoch)
			if got := v.String(); got != "ftp-data" {
				t.Errorf("verdict %v, want ftp-data", v)
			}
			if n := h.p.Conns().Len(); n != 0 {
				t.Errorf("connection table holds %d entries, want 0", n)
			}
		})
	}
	// Any other client port is scheduled as usual.
	if v, _ := h.p.Process(udrtest.TCP(h.toVIP(), client(21), vip80, udrtest.SYN, nil), epoch); v != VerdictForward {
		t.Errorf("SYN from port 21: %v, want forward", v)
	}
}
