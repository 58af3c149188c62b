package forwarder

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/internal/udrtest"
)

// TestLocalityTimerFromCompile: an lblc service added by a reload starts
// its collection timer at the reload (Options.Now; init_service), not at
// the clock's start nor at its first connection. Added at 1000, first
// connection at 1500: the full checks fall at 1000 + k·1800, and the entry
// unused since 1500 goes at the first one after 1500 + 24 h = 87900,
// which is 89200.
func TestLocalityTimerFromCompile(t *testing.T) {
	h := newHarness(t, rules2, 1024)
	h.opts.Now = 1000
	h.reload(t, rules2+`-A -t 192.0.2.100:8080 -s lblc
-a -t 192.0.2.100:8080 -r 192.0.2.11:8080 -g -w 1
-a -t 192.0.2.100:8080 -r 192.0.2.12:8080 -g -w 1
`)
	svc := netip.AddrPortFrom(udrtest.VIP, 8080)
	at := func(clock uint32) time.Time { return epoch.Add(time.Duration(clock-1) * time.Second) }
	send := func(port uint16, flags int, clock uint32) []byte {
		t.Helper()
		v, out := h.p.Process(udrtest.TCP(h.toVIP(), client(port), svc, flags, nil), at(clock))
		if v != VerdictForward {
			t.Fatalf("port %d at %d: %v, want forward", port, clock, v)
		}
		return out[:6]
	}
	// rs2 heads the list: the first connection goes there and stays
	// open (an ACK every 800 s), so that wlc would now prefer rs1.
	if mac := send(40000, udrtest.SYN, 1500); !bytes.Equal(mac, udrtest.RS2MAC) {
		t.Fatalf("first connection to %x, want rs2", mac)
	}
	send(40000, udrtest.ACK, 1500)
	for c := uint32(2300); c < 89500; c += 800 {
		send(40000, udrtest.ACK, c)
	}
	if mac := send(40001, udrtest.SYN, 89000); !bytes.Equal(mac, udrtest.RS2MAC) {
		t.Errorf("at 89000 to %x, want rs2: the entry lives until the check at 89200", mac)
	}
	if mac := send(40002, udrtest.SYN, 89300); !bytes.Equal(mac, udrtest.RS1MAC) {
		t.Errorf("at 89300 to %x, want rs1: the check at 89200 dropped the entry", mac)
	}
}
