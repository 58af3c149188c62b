//go:build linux

package director_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udr-lb/udr/arpresponder"
	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
	"github.com/udr-lb/udr/internal/drlab"
	"github.com/udr-lb/udr/internal/netlab"
)

// settingsYAML is a udr.yaml with one service and the top-level keys keys.
func settingsYAML(keys ...string) string {
	return "interface: eth0\n" + strings.Join(keys, "\n") + `
services:
  - address: 192.0.2.100
    port: 80
    servers: [{address: 192.0.2.11}]
`
}

// compiled is what a table was compiled with, of the settings.
type compiled struct {
	SloppyTCP, ExpireNodestConn, ExpireQuiescentTemplate bool
	ConnReuseMode                                        int
	VIPMAC                                               string
	IO                                                   string // the receive backend in use, when checked
	Workers                                              int    // the packet workers, when checked
}

func compiledOf(o forwarder.Options) compiled {
	return compiled{
		SloppyTCP: o.SloppyTCP, ExpireNodestConn: o.ExpireNodestConn, ExpireQuiescentTemplate: o.ExpireQuiescentTemplate,
		ConnReuseMode: o.ConnReuseMode.Mode(), VIPMAC: net.HardwareAddr(o.VIPMAC[:]).String(),
	}
}

// diff lists the fields in which got differs from want, as "Field want→got".
func (want compiled) diff(got compiled) string {
	var d []string
	w, g := fmt.Sprintf("%+v", want), fmt.Sprintf("%+v", got)
	wf, gf := strings.Fields(strings.Trim(w, "{}")), strings.Fields(strings.Trim(g, "{}"))
	for i := range wf {
		if wf[i] != gf[i] {
			name, wv, _ := strings.Cut(wf[i], ":")
			_, gv, _ := strings.Cut(gf[i], ":")
			d = append(d, name+" "+wv+"→"+gv)
		}
	}
	return strings.Join(d, ", ")
}

func reuseMode(t *testing.T, n int) forwarder.ConnReuse {
	t.Helper()
	c, err := forwarder.ConnReuseMode(n)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPrivilegedSettings starts directors from a udr.yaml with the
// settings it compiles into its table given as flags or not, and in the
// file or not: a flag given wins (also when it gives the default), the
// file's key applies when no flag is given, the default when neither.
func TestPrivilegedSettings(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "settings", drlab.Options{RealServers: 1})
	ifMAC, err := l.Director.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	vmac := arpresponder.VirtualMAC([6]byte(ifMAC))
	// The ring: this kernel has TPACKET_V3.
	defaults := compiled{ConnReuseMode: 1, VIPMAC: net.HardwareAddr(vmac[:]).String(), IO: "ring-v2", Workers: workersOf(t, director.WorkersAuto)}
	rows := []struct {
		name               string
		given              director.Setting
		flag               func(*director.Settings)
		key                string
		fromFlag, fromFile func(*compiled)
	}{
		{"sloppy-tcp", director.SetSloppyTCP, func(s *director.Settings) { s.SloppyTCP = true }, "sloppy_tcp: false",
			func(c *compiled) { c.SloppyTCP = true }, func(c *compiled) { c.SloppyTCP = false }},
		{"sloppy-tcp=false", director.SetSloppyTCP, func(s *director.Settings) { s.SloppyTCP = false }, "sloppy_tcp: true",
			func(c *compiled) { c.SloppyTCP = false }, func(c *compiled) { c.SloppyTCP = true }},
		{"conn-reuse-mode=0", director.SetConnReuseMode, func(s *director.Settings) { s.ConnReuseMode = reuseMode(t, 0) }, "conn_reuse_mode: 2",
			func(c *compiled) { c.ConnReuseMode = 0 }, func(c *compiled) { c.ConnReuseMode = 2 }},
		{"conn-reuse-mode=1", director.SetConnReuseMode, func(s *director.Settings) { s.ConnReuseMode = reuseMode(t, 1) }, "conn_reuse_mode: 3",
			func(c *compiled) { c.ConnReuseMode = 1 }, func(c *compiled) { c.ConnReuseMode = 3 }},
		{"expire-nodest-conn", director.SetExpireNodestConn, func(s *director.Settings) { s.ExpireNodestConn = true }, "expire_nodest_conn: false",
			func(c *compiled) { c.ExpireNodestConn = true }, func(c *compiled) { c.ExpireNodestConn = false }},
		{"expire-nodest-conn=false", director.SetExpireNodestConn, func(s *director.Settings) { s.ExpireNodestConn = false }, "expire_nodest_conn: true",
			func(c *compiled) { c.ExpireNodestConn = false }, func(c *compiled) { c.ExpireNodestConn = true }},
		{"expire-quiescent-template", director.SetExpireQuiescentTemplate, func(s *director.Settings) { s.ExpireQuiescentTemplate = true }, "expire_quiescent_template: false",
			func(c *compiled) { c.ExpireQuiescentTemplate = true }, func(c *compiled) { c.ExpireQuiescentTemplate = false }},
		{"expire-quiescent-template=false", director.SetExpireQuiescentTemplate, func(s *director.Settings) { s.ExpireQuiescentTemplate = false }, "expire_quiescent_template: true",
			func(c *compiled) { c.ExpireQuiescentTemplate = false }, func(c *compiled) { c.ExpireQuiescentTemplate = true }},
		{"vip-mac=02:00:00:00:00:07", director.SetVIPMAC, func(s *director.Settings) { s.VIPMAC = "02:00:00:00:00:07" }, "vip_mac: 02:00:00:00:00:08",
			func(c *compiled) { c.VIPMAC = "02:00:00:00:00:07" }, func(c *compiled) { c.VIPMAC = "02:00:00:00:00:08" }},
		{"vip-mac=", director.SetVIPMAC, func(s *director.Settings) { s.VIPMAC = "" }, "vip_mac: 02:00:00:00:00:08",
			func(c *compiled) { c.VIPMAC = defaults.VIPMAC }, func(c *compiled) { c.VIPMAC = "02:00:00:00:00:08" }},
		{"io=socket", director.SetIO, func(s *director.Settings) { s.IO = forwarder.IOSocket }, "io: ring",
			func(c *compiled) { c.IO = "socket" }, func(c *compiled) { c.IO = "ring" }},
		{"io=ring", director.SetIO, func(s *director.Settings) { s.IO = forwarder.IORing }, "io: socket",
			func(c *compiled) { c.IO = "ring" }, func(c *compiled) { c.IO = "socket" }},
		{"io=ring-v2", director.SetIO, func(s *director.Settings) { s.IO = forwarder.IORingV2 }, "io: ring",
			func(c *compiled) { c.IO = "ring-v2" }, func(c *compiled) { c.IO = "ring" }},
		{"io=auto", director.SetIO, func(s *director.Settings) { s.IO = forwarder.IOAuto }, "io: socket",
			func(c *compiled) { c.IO = "ring-v2" }, func(c *compiled) { c.IO = "socket" }},
		{"workers=2", director.SetWorkers, func(s *director.Settings) { s.Workers = 2 }, "workers: 3",
			func(c *compiled) { c.Workers = 2 }, func(c *compiled) { c.Workers = 3 }},
		{"workers=1", director.SetWorkers, func(s *director.Settings) { s.Workers = 1 }, "workers: 2",
			func(c *compiled) { c.Workers = 1 }, func(c *compiled) { c.Workers = 2 }},
	}
	path := filepath.Join(t.TempDir(), "udr.yaml")
	for _, r := range rows {
		for _, flagSet := range []bool{true, false} {
			for _, inFile := range []bool{true, false} {
				name := fmt.Sprintf("%s/flag=%v/key=%v", r.name, flagSet, inFile)
				// The flags' defaults, as udr run's flag set leaves them.
				cfg := director.Config{
					Settings:   director.Settings{ConnReuseMode: reuseMode(t, 1), IO: forwarder.IOAuto, Workers: 1},
					ConfigFile: path,
					Logger:     slog.New(slog.DiscardHandler),
				}
				want := defaults
				var keys []string
				if inFile {
					keys = append(keys, r.key)
					r.fromFile(&want)
				}
				if flagSet {
					r.flag(&cfg.Settings)
					cfg.Given = r.given
					r.fromFlag(&want)
				}
				if err := os.WriteFile(path, []byte(settingsYAML(keys...)), 0o644); err != nil {
					t.Fatal(err)
				}
				var got compiled
				err := l.Director.Run(func() error {
					d, err := director.New(cfg)
					if err != nil {
						return err
					}
					got = compiledOf(d.TableOptions())
					got.IO = d.IO().String()
					got.Workers = d.Workers()
					return d.Close()
				})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if d := want.diff(got); d != "" {
					t.Errorf("%s: the table is compiled with %s", name, d)
				}
			}
		}
	}
}

// syncBuffer is a bytes.Buffer that several goroutines may write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPrivilegedSettingsReload reloads a director whose udr.yaml changed:
// the settings that no flag gave take the file's new values if the running
// director can change them, flag-given ones keep the flags' values, and a
// change of the others is logged and waits for a restart.
func TestPrivilegedSettingsReload(t *testing.T) {
	netlab.Privileged(t)
	l := newLab(t, "setreload", drlab.Options{RealServers: 1})
	path := filepath.Join(t.TempDir(), "udr.yaml")
	write := func(keys ...string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(settingsYAML(keys...)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sloppy_tcp: false", "conn_reuse_mode: 2", "expire_nodest_conn: true", "expire_quiescent_template: true",
		"vip_mac: 02:00:00:00:00:08", "capacity: 4096", "control_socket: /tmp/a.sock", "io: ring", "workers: 2")
	var log syncBuffer
	cfg := director.Config{
		Settings: director.Settings{
			SloppyTCP: true, ConnReuseMode: reuseMode(t, 1), ExpireQuiescentTemplate: false,
			ControlSocket: "/tmp/flag.sock",
		},
		Given:      director.SetSloppyTCP | director.SetExpireQuiescentTemplate | director.SetControlSocket,
		ConfigFile: path,
		Logger:     slog.New(slog.NewTextHandler(&log, nil)),
	}
	var d *director.Director
	if err := l.Director.Run(func() (err error) { d, err = director.New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check := func(when string, want compiled, wantSettings director.Settings) {
		t.Helper()
		if diff := want.diff(compiledOf(d.TableOptions())); diff != "" {
			t.Errorf("%s: the table is compiled with %s", when, diff)
		}
		if got := d.Settings(); !got.Equal(wantSettings) {
			t.Errorf("%s: settings\n%+v, want\n%+v", when, got, wantSettings)
		}
	}
	settings := director.Settings{
		Iface: "eth0", VIPMAC: "02:00:00:00:00:08", AnnounceInterval: 10 * time.Second, Capacity: 4096,
		SloppyTCP: true, ConnReuseMode: reuseMode(t, 2), ExpireNodestConn: true, ExpireQuiescentTemplate: false,
		ControlSocket: "/tmp/flag.sock", MetricsAddress: "127.0.0.1:9780", IO: forwarder.IORing, Workers: 2,
		Sync: config.DefaultSync(),
	}
	check("New", compiled{SloppyTCP: true, ConnReuseMode: 2, ExpireNodestConn: true, VIPMAC: "02:00:00:00:00:08"}, settings)

	write("sloppy_tcp: false", "conn_reuse_mode: 0", "expire_nodest_conn: false", "expire_quiescent_template: true",
		"vip_mac: 02:00:00:00:00:09", "capacity: 8192", "control_socket: /tmp/b.sock", "io: socket", "workers: 3")
	if err := l.Director.Run(d.Reload); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	settings.ConnReuseMode, settings.ExpireNodestConn = reuseMode(t, 0), false
	check("Reload", compiled{SloppyTCP: true, ConnReuseMode: 0, VIPMAC: "02:00:00:00:00:08"}, settings)
	if want := `msg="settings changed in the config file apply at the next start" keys="vip_mac, capacity, io, workers"`; !strings.Contains(log.String(), want) {
		t.Errorf("the log has no line with %s:\n%s", want, log.String())
	}

	// An invalid file changes nothing.
	write("conn_reuse_mode: 3", "capacity: 0", "io: ring")
	if err := l.Director.Run(d.Reload); err == nil {
		t.Errorf("Reload of a file with capacity 0: no error")
	}
	check("failed Reload", compiled{SloppyTCP: true, ConnReuseMode: 0, VIPMAC: "02:00:00:00:00:08"}, settings)
}
