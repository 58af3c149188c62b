//go:build linux

package director_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// TestPrivilegedRefusesLocalVIP: a VIP configured on the director itself
// would be answered by the director's kernel (ARP, RSTs), so udr refuses to
// start and says what to remove.
func TestPrivilegedRefusesLocalVIP(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "localvip", drlab.Options{RealServers: 1})
	if err := l.Director.Command("ip", "addr", "add", "192.0.2.100/32", "dev", "lo").Run(); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n"), 0o644)
	err := l.Director.Run(func() error {
		d, err := director.New(director.Config{Settings: director.Settings{Iface: "eth0"}, Rules: rules})
		if err == nil {
			d.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "192.0.2.100 is configured on this host") || !strings.Contains(err.Error(), "ip addr del 192.0.2.100/32") {
		t.Fatalf("New with the VIP on the director's lo: %v; want a refusal that says what to remove", err)
	}
}
