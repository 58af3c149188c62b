package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every problem of a sync block is reported with its field path and line.
func TestLoadConfigSyncErrors(t *testing.T) {
	const in = `interface: eth0
sync:
  master: yes please
  interface: "eth0/1"
  syncid: 256
  maxlen: 65508
  group: 192.0.2.81
  port: 0
  ttl: 256
  peers:
    - 192.0.2.3
    - 224.0.0.81
    - "[2001:db8::3]:0"
    - 192.0.2.3:8848
    - nonsense
  unknown_key: 1
`
	_, _, _, err := parseConfig([]byte(in), "udr.yaml", ".")
	if err == nil || err.Error() != "udr.yaml:16: sync.unknown_key: unknown field" {
		t.Errorf("unknown key in sync: %v", err)
	}
	_, _, _, err = parseConfig([]byte(strings.Replace(in, "  unknown_key: 1\n", "", 1)), "udr.yaml", ".")
	want := []string{
		`udr.yaml:3: sync.master: want true or false, got string "yes please"`,
		`udr.yaml:4: sync.interface: "eth0/1" is not an interface name`,
		`udr.yaml:5: sync.syncid: 256 out of range 0..255`,
		`udr.yaml:6: sync.maxlen: 65508 out of range 0..65507`,
		`udr.yaml:7: sync.group: 192.0.2.81 is not a multicast address`,
		`udr.yaml:8: sync.port: 0 out of range 1..65535`,
		`udr.yaml:9: sync.ttl: 256 out of range 1..255`,
		`udr.yaml:12: sync.peers[1]: 224.0.0.81 is not a unicast address`,
		`udr.yaml:13: sync.peers[2]: "[2001:db8::3]:0": port 0`,
		`udr.yaml:14: sync.peers[3]: 192.0.2.3:8848 given twice`,
		`udr.yaml:15: sync.peers[4]: "nonsense" is not an address or address:port`,
	}
	if err == nil {
		t.Fatal("parseConfig succeeded, want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadConfigSyncDefaults(t *testing.T) {
	fc, _, _, err := parseConfig([]byte("interface: eth0\nsync: {backup: true}\n"), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	want := Sync{Backup: true, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	if !fc.Sync.Equal(want) || !fc.Sync.Enabled() {
		t.Errorf("sync %+v, want %+v", fc.Sync, want)
	}
	if DefaultSync().Enabled() {
		t.Error("the default sync block starts a daemon")
	}
}

// group: none sends to the peers only, and needs some.
func TestLoadConfigSyncNoGroup(t *testing.T) {
	fc, _, _, err := parseConfig([]byte("interface: eth0\nsync: {master: true, group: none, peers: [192.0.2.3]}\n"), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	if fc.Sync.Group.IsValid() || len(fc.Sync.Peers) != 1 {
		t.Errorf("sync %+v, want no group and one peer", fc.Sync)
	}
	_, _, _, err = parseConfig([]byte("interface: eth0\nsync: {master: true, group: none}\n"), "udr.yaml", ".")
	if want := "udr.yaml:2: sync.group: none needs peers: with neither a group nor peers, nothing is sent or received"; err == nil || err.Error() != want {
		t.Errorf("group: none without peers: %v, want %q", err, want)
	}
}
