//go:build linux

package director_test

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// bogusMAC is a MAC no host of the lab has.
const bogusMAC = "02:00:00:00:00:99"

// staleNeighbor makes eth0's neighbour entry for ip a stale one to mac: an
// entry that an announcement (a gratuitous ARP) updates, as it updates the
// entries of clients and routers that knew the other director's MAC.
func staleNeighbor(ip netip.Addr, mac string) error {
	link, err := netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	n := neighOf(link, ip, hw)
	n.State = netlink.NUD_STALE
	return netlink.NeighSet(n)
}

// TestPrivilegedStandby: a director started in standby answers no ARP for
// its VIP, sends no announcement and forwards nothing, though it finds
// its real servers; made active, it announces the VIP's MAC at once (the
// client's stale entry is updated without the client asking) and
// forwards; in standby again it drops the frames to the VIP, counted. The
// listing, the metrics and the log say which state it is in.
func TestPrivilegedStandby(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "standby", drlab.Options{})
	l.writeRules(
		"-A -t "+vipPort+" -s rr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	// The client knew the VIP at another MAC (the other director's).
	if err := l.Client.Run(func() error { return staleNeighbor(drlab.VIP, bogusMAC) }); err != nil {
		t.Fatal(err)
	}
	cfg := director.Config{Settings: director.Settings{Iface: "eth0", Standby: true}, Rules: l.rules}
	l.startWith(2, cfg) // the real servers' MACs are found in standby too
	if err := l.log.await("starting in standby: no ARP/NDP answers, announcements or forwarding for the VIPs until `udr admin --active`", 1, eventTimeout); err != nil {
		t.Error(err)
	}
	vmac := net.HardwareAddr(func() []byte { m := arpresponder.VirtualMAC([6]byte(l.ifaceMAC(t))); return m[:] }()).String()

	if !l.d.Standby() || !l.d.MetricsSnapshot().Standby {
		t.Fatal("the director started with Standby is not in standby")
	}
	checkListing(t, l.d, true)

	// The start's burst of announcements (3, a second apart) would have
	// updated the client's entry by now.
	time.Sleep(2 * arpresponder.AnnounceBurstGap)
	if mac, ok := neighborMAC(t, l.Client, drlab.VIP); !ok || mac.String() != bogusMAC {
		t.Errorf("in standby, the client's entry for the VIP changed to %v (%v): udr announced it", mac, ok)
	}
	// Asked, udr does not answer either.
	if err := l.Client.Run(func() error { return forgetNeighbor(drlab.VIP) }); err != nil {
		t.Fatal(err)
	}
	c := drlab.HTTPClient(l.Client, 2*time.Second)
	if _, err := drlab.Get(c, "http://192.0.2.100/"); err == nil {
		t.Error("GET through a director in standby succeeded")
	}
	if mac, ok := neighborMAC(t, l.Client, drlab.VIP); ok {
		t.Errorf("in standby, the client learnt the VIP at %s", mac)
	}
	awaitVerdict(t, l.d, forwarder.VerdictStandby, 1)

	// Active: the announcement reaches the client at once, unasked.
	if err := l.Client.Run(func() error { return staleNeighbor(drlab.VIP, bogusMAC) }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !l.d.SetStandby(false) {
		t.Fatal("SetStandby(false) changed nothing")
	}
	if l.d.SetStandby(false) {
		t.Error("SetStandby(false) a second time reported a change")
	}
	for {
		if mac, ok := neighborMAC(t, l.Client, drlab.VIP); ok && mac.String() == vmac {
			t.Logf("the client learnt %s at %s %v after the switch to active", drlab.VIP, mac, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > eventTimeout {
			t.Fatalf("the client did not learn the VIP's MAC %s within %v of the switch to active", vmac, eventTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.log.await("active: announcing the VIPs and forwarding", 1, eventTimeout); err != nil {
		t.Error(err)
	}
	if _, err := drlab.Get(c, "http://192.0.2.100/"); err != nil {
		t.Errorf("GET once active: %v", err)
	}
	checkListing(t, l.d, false)
	if l.d.MetricsSnapshot().Standby {
		t.Error("metrics say standby once active")
	}
	// A reload keeps the state (the file's start state is for the start).
	l.reload(
		"-A -t "+vipPort+" -s rr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
	)
	if l.d.Standby() {
		t.Error("a reload put the active director in standby")
	}
	if got, err := drlab.Get(c, "http://192.0.2.100/"); err != nil || got != "rs1" {
		t.Errorf("GET after the reload: %q, %v; want rs1", got, err)
	}

	// Standby again: the client still sends to udr's MAC, and udr drops.
	before := verdictCount(l.d, forwarder.VerdictStandby)
	if !l.d.SetStandby(true) {
		t.Fatal("SetStandby(true) changed nothing")
	}
	if _, err := drlab.Get(c, "http://192.0.2.100/"); err == nil {
		t.Error("GET through a director back in standby succeeded")
	}
	awaitVerdict(t, l.d, forwarder.VerdictStandby, before+1)
	if err := l.log.await("standby: no ARP/NDP answers, announcements or forwarding for the VIPs", 1, eventTimeout); err != nil {
		t.Error(err)
	}
	checkListing(t, l.d, true)
	l.reload(
		"-A -t "+vipPort+" -s rr",
		"-a -t "+vipPort+" -r "+rs1+":80 -g -w 1",
		"-a -t "+vipPort+" -r "+rs2+":80 -g -w 1",
	)
	if !l.d.Standby() {
		t.Error("a reload made the director in standby active")
	}
}

// ifaceMAC returns the director's eth0 MAC.
func (l *lab) ifaceMAC(t *testing.T) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := l.Director.Run(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// verdictCount is the workers' published count of verdict v.
func verdictCount(d *director.Director, v forwarder.Verdict) uint64 {
	var n uint64
	for _, w := range d.WorkerStats() {
		n += w.Frames.Verdicts[v]
	}
	return n
}

// awaitVerdict waits until the workers have published at least n verdicts
// v (they publish about once a second).
func awaitVerdict(t *testing.T, d *director.Director, v forwarder.Verdict, n uint64) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for verdictCount(d, v) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s verdicts published within %v, want %d or more", verdictCount(d, v), v, eventTimeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkListing checks that udr admin -L says standby (on stderr, stdout
// being ipvsadm's) and -L -j ("standby": true) exactly when standby.
func checkListing(t *testing.T, d *director.Director, standby bool) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := admin.Run([]string{"-L", "-n"}, d, nil, &out, &errb, admin.Options{}); code != 0 {
		t.Fatalf("-L -n: exit %d: %s", code, errb.String())
	}
	if got := strings.Contains(errb.String(), "udr: standby:"); got != standby {
		t.Errorf("-L -n with standby %v: stderr %q", standby, errb.String())
	}
	if strings.Contains(out.String(), "standby") {
		t.Errorf("-L -n: stdout, ipvsadm's, speaks of standby:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := admin.Run([]string{"-L", "-n", "-j"}, d, nil, &out, &errb, admin.Options{}); code != 0 {
		t.Fatalf("-L -n -j: exit %d: %s", code, errb.String())
	}
	if got := strings.Contains(out.String(), `"standby": true`); got != standby {
		t.Errorf("-L -n -j with standby %v:\n%s", standby, out.String())
	}
}
