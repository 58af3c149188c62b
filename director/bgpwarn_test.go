//go:build linux

package director

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/config"
)

// The --sync* flags replace the file's sync block, so the warning about a
// BGP VIP whose scheduler picks from local state follows the flags: given
// by them, both daemons silence it; taken away by them, it is back.
func TestBGPWarningsFollowSyncFlags(t *testing.T) {
	const yaml = `interface: eth0
services:
  - {address: 203.0.113.10, port: 80, scheduler: wlc, servers: [{address: 192.0.2.11}]}
bgp:
  asn: 65001
  router_id: 192.0.2.2
  peers: [{address: 192.0.2.1, asn: 65000}]
`
	for _, tc := range []struct {
		name       string
		fileSync   string
		flags      config.Sync
		wantWarned bool
	}{
		{"flags give both daemons", "", config.Sync{Master: true, Backup: true}, false},
		{"flags give the master only", "", config.Sync{Master: true}, true},
		{"flags take the file's daemons away", "sync: {master: true, backup: true}\n", config.Sync{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "udr.yaml")
			if err := os.WriteFile(path, []byte(yaml+tc.fileSync), 0o600); err != nil {
				t.Fatal(err)
			}
			fc, cfg, warnings, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := bgpWarningsFor(warnings, path, fc, cfg, tc.flags)
			warned := false
			for _, w := range got {
				if strings.Contains(w, "bgp: service tcp 203.0.113.10:80 uses wlc") {
					warned = true
				}
			}
			if warned != tc.wantWarned {
				t.Fatalf("warnings %q: wlc warned %v, want %v", got, warned, tc.wantWarned)
			}
		})
	}
}
