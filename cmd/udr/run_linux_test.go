//go:build linux

package main

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
)

// TestRunSettings checks, for every setting that both a flag of udr run and
// a udr.yaml key give, that the flag wins when given (even at its default
// value), the file's key when not, and the default when neither: flag set
// or not × the file's key set, left out, or no file at all.
func TestRunSettings(t *testing.T) {
	defaults := director.Settings{
		AnnounceInterval: 10 * time.Second,
		Capacity:         1 << 20,
		ConnReuseMode:    reuse(1),
		ControlSocket:    "/run/udr/udr.sock",
		MetricsAddress:   "127.0.0.1:9780",
		IO:               forwarder.IOAuto,
		Workers:          director.WorkersAuto,
		Sync:             config.DefaultSync(),
	}
	syncWith := func(f func(*config.Sync)) config.Sync { s := config.DefaultSync(); f(&s); return s }
	// Each row gives a value by flag and another by the file's key; the
	// settings that have a non-default value by either source appear twice,
	// so that each source is seen giving the default and not.
	rows := []struct {
		field    string // of director.Settings
		flag     string // --flag=value
		key      string // key: value
		fromFlag any
		fromFile any
	}{
		{"Iface", "--iface=eth7", "", "eth7", "eth0"}, // interface: eth0 is in every file
		{"VIPMAC", "--vip-mac=02:00:00:00:00:07", "vip_mac: iface", "02:00:00:00:00:07", "iface"},
		{"VIPMAC", "--vip-mac=", "vip_mac: 02:00:00:00:00:08", "", "02:00:00:00:00:08"},
		{"AnnounceInterval", "--garp-interval=3s", "announce_interval: 7s", 3 * time.Second, 7 * time.Second},
		{"AnnounceInterval", "--garp-interval=10s", "announce_interval: 7s", 10 * time.Second, 7 * time.Second},
		{"Capacity", "--capacity=4096", "capacity: 8192", 4096, 8192},
		{"Capacity", "--capacity=1048576", "capacity: 8192", 1 << 20, 8192},
		{"SloppyTCP", "--sloppy-tcp", "sloppy_tcp: false", true, false},
		{"SloppyTCP", "--sloppy-tcp=false", "sloppy_tcp: true", false, true},
		{"ConnReuseMode", "--conn-reuse-mode=0", "conn_reuse_mode: 2", reuse(0), reuse(2)},
		{"ConnReuseMode", "--conn-reuse-mode=1", "conn_reuse_mode: 3", reuse(1), reuse(3)},
		{"ExpireNodestConn", "--expire-nodest-conn", "expire_nodest_conn: false", true, false},
		{"ExpireNodestConn", "--expire-nodest-conn=false", "expire_nodest_conn: true", false, true},
		{"ExpireQuiescentTemplate", "--expire-quiescent-template", "expire_quiescent_template: false", true, false},
		{"ExpireQuiescentTemplate", "--expire-quiescent-template=false", "expire_quiescent_template: true", false, true},
		{"ControlSocket", "--control=/tmp/flag.sock", "control_socket: /tmp/file.sock", "/tmp/flag.sock", "/tmp/file.sock"},
		{"ControlSocket", "--control=/run/udr/udr.sock", "control_socket: /tmp/file.sock", "/run/udr/udr.sock", "/tmp/file.sock"},
		{"MetricsAddress", "--metrics=off", "metrics_address: 192.0.2.1:9100", "off", "192.0.2.1:9100"},
		{"MetricsAddress", "--metrics=127.0.0.1:9780", `metrics_address: ""`, "127.0.0.1:9780", "off"},
		{"MetricsAddress", "--metrics=127.0.0.1:9000", "metrics_address: off", "127.0.0.1:9000", "off"},
		{"IO", "--io=socket", "io: ring", forwarder.IOSocket, forwarder.IORing},
		{"IO", "--io=auto", "io: socket", forwarder.IOAuto, forwarder.IOSocket},
		{"IO", "--io=ring", "io: auto", forwarder.IORing, forwarder.IOAuto},
		{"Workers", "--workers=2", "workers: 3", 2, 3},
		{"Workers", "--workers=1", "workers: 4", 1, 4},
		{"Workers", "--workers=auto", "workers: 1", director.WorkersAuto, 1},
		{"Workers", "--workers=2", "workers: auto", 2, director.WorkersAuto},
		{"IO", "--io=ring-v2", "io: ring", forwarder.IORingV2, forwarder.IORing},
		{"DropEntry", "--drop-entry=1", "drop_entry: 3", conntrack.DefenseAuto, conntrack.DefenseAlways},
		{"DropEntry", "--drop-entry=0", "drop_entry: 2", conntrack.DefenseOff, conntrack.DefenseAutoOn},
		{"SecureTCP", "--secure-tcp=3", "secure_tcp: 1", conntrack.DefenseAlways, conntrack.DefenseAuto},
		{"SecureTCP", "--secure-tcp=0", "secure_tcp: 1", conntrack.DefenseOff, conntrack.DefenseAuto},
		{"Standby", "--standby", "standby: false", true, false},
		{"Standby", "--standby=false", "standby: true", false, true},
		// Any --sync* flag gives the whole sync block.
		{"Sync", "--sync=master,backup", "sync: {backup: true, syncid: 3}",
			syncWith(func(s *config.Sync) { s.Master, s.Backup = true, true }), syncWith(func(s *config.Sync) { s.Backup, s.SyncID = true, 3 })},
		{"Sync", "--sync-id=9", "sync: {master: true, peers: [192.0.2.3]}",
			syncWith(func(s *config.Sync) { s.SyncID = 9 }),
			syncWith(func(s *config.Sync) {
				s.Master, s.Peers = true, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.3:8848")}
			})},
		{"Sync", "--sync-peers=192.0.2.4:9000,[2001:db8::4]", "sync: {backup: true, port: 8849}",
			syncWith(func(s *config.Sync) {
				s.Peers = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.4:9000"), netip.MustParseAddrPort("[2001:db8::4]:8848")}
			}),
			syncWith(func(s *config.Sync) { s.Backup, s.Port = true, 8849 })},
	}
	dir := t.TempDir()
	for i, r := range rows {
		for _, flagSet := range []bool{true, false} {
			for _, file := range []string{"key", "no key", "no file"} {
				if r.field == "Iface" && file == "no key" {
					continue // required in the file: TestRunUsageErrors
				}
				name := r.flag
				if !flagSet {
					name = "no flag"
				}
				t.Run(strings.Join([]string{r.field, name, file}, "/"), func(t *testing.T) {
					var args []string
					want := defaults
					if file == "no file" {
						args = []string{"--rules", "rules"}
						if r.field != "Iface" {
							args = append(args, "--iface=eth9")
							want.Iface = "eth9"
						}
					} else {
						yaml := "interface: eth0\n"
						if file == "key" {
							yaml += r.key + "\n"
						}
						path := filepath.Join(dir, "udr.yaml")
						if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
							t.Fatal(err)
						}
						args = []string{"--config", path}
						want.Iface = "eth0"
					}
					field := reflect.ValueOf(&want).Elem().FieldByName(r.field)
					switch {
					case flagSet:
						args = append(args, r.flag)
						field.Set(reflect.ValueOf(r.fromFlag))
					case file == "key" || r.field == "Iface" && file != "no file":
						field.Set(reflect.ValueOf(r.fromFile))
					}
					got, err := runSettings(args)
					if r.field == "Iface" && !flagSet && file == "no file" {
						if err == nil || !strings.Contains(err.Error(), "--iface") {
							t.Fatalf("udr run %s: settings %+v, error %v; want the error that --iface is required", strings.Join(args, " "), got, err)
						}
						return
					}
					if err != nil {
						t.Fatalf("udr run %s: %v", strings.Join(args, " "), err)
					}
					if diff := cmp.Diff(want, got, connReuseMode); diff != "" {
						t.Errorf("row %d: udr run %s: settings (-want +got):\n%s", i, strings.Join(args, " "), diff)
					}
				})
			}
		}
	}
}

// reuse returns conn_reuse_mode n.
func reuse(n int) forwarder.ConnReuse {
	c, err := forwarder.ConnReuseMode(n)
	if err != nil {
		panic(err)
	}
	return c
}

// connReuseMode compares and shows a conn_reuse_mode as its number.
var connReuseMode = cmp.Transformer("Mode", forwarder.ConnReuse.Mode)

// runSettings returns the settings that `udr run args` runs with: its
// command line, resolved against its --config file as the director does.
func runSettings(args []string) (director.Settings, error) {
	cfg, err := parseRun(args, io.Discard)
	if err != nil {
		return director.Settings{}, err
	}
	if cfg == nil {
		return director.Settings{}, errors.New("-h")
	}
	var fc *config.File
	if cfg.ConfigFile != "" {
		if fc, _, _, err = config.Load(cfg.ConfigFile); err != nil {
			return director.Settings{}, err
		}
	}
	return director.Resolve(cfg.Settings, cfg.Given, fc)
}

// TestRunUsageErrors checks that a bad command line or config file of udr
// run is a usage error: exit status 2.
func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	noIface := filepath.Join(dir, "noiface.yaml")
	if err := os.WriteFile(noIface, []byte("capacity: 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--iface", "eth0"}, "give one of --rules, --config or --keepalived"},
		{[]string{"--iface", "eth0", "--rules", "r", "--config", noIface}, "give one of --rules, --config or --keepalived"},
		{[]string{"--rules", "r"}, "--iface (or interface: in the config file) is required"},
		{[]string{"--config", noIface}, "interface: required"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"--rules", "r", "--iface", "eth0", "--conn-reuse-mode", "4"}, "--conn-reuse-mode"},
		{[]string{"--rules", "r", "--iface", "eth0", "--drop-entry", "4"}, "--drop-entry: 4 out of range 0..3"},
		{[]string{"--rules", "r", "--iface", "eth0", "--secure-tcp", "-1"}, "--secure-tcp: -1 out of range 0..3"},
		{[]string{"--rules", "r", "--iface", "eth0", "extra"}, `unexpected argument "extra"`},
		{[]string{"--rules", "r", "--iface", "eth0", "--workers", "0"}, `--workers "0": want 1..256 or auto`},
		{[]string{"--rules", "r", "--iface", "eth0", "--workers", "all"}, `--workers "all": want 1..256 or auto`},
		{[]string{"--rules", "r", "--iface", "eth0", "--capacity", "-1"}, "--capacity -1 out of range 1..268435456"},
		{[]string{"--rules", "r", "--iface", "eth0", "--capacity", "0"}, "--capacity 0 out of range 1..268435456"},
		{[]string{"--rules", "r", "--iface", "eth0", "--capacity", "99999999999"}, "--capacity 99999999999 out of range 1..268435456"},
		{[]string{"--rules", "r", "--iface", "eth0", "--garp-interval", "0"}, "--garp-interval 0s out of range 1s..1h"},
		{[]string{"--rules", "r", "--iface", "eth0", "--garp-interval", "-5s"}, "--garp-interval -5s out of range 1s..1h"},
		{[]string{"--rules", "r", "--iface", "eth0", "--garp-interval", "2h"}, "--garp-interval 2h out of range 1s..1h"},
		{[]string{"--rules", "r", "--iface", "eth0", "--vip-mac", "00:00:00:00:00:00"}, "--vip-mac 00:00:00:00:00:00 is the all-zero MAC"},
		{[]string{"--rules", "r", "--iface", "eth0", "--vip-mac", "ff:ff:ff:ff:ff:ff"}, "--vip-mac ff:ff:ff:ff:ff:ff is the broadcast MAC"},
		{[]string{"--rules", "r", "--iface", "eth0", "--vip-mac", "33:33:00:00:00:01"}, "--vip-mac 33:33:00:00:00:01 is a multicast MAC"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync", "slave"}, `--sync "slave": want master, backup, master,backup or off`},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-id", "256"}, "--sync-id 256 out of range 0..255"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-maxlen", "65508"}, "--sync-maxlen 65508 out of range 0..65507"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-group", "192.0.2.81"}, "--sync-group 192.0.2.81 is not a multicast address"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-port", "0"}, "--sync-port 0 out of range 1..65535"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-group", "none"}, "--sync-group none needs --sync-peers"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-ttl", "0"}, "--sync-ttl 0 out of range 1..255"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-peers", "224.0.0.81"}, "--sync-peers 224.0.0.81 is not a unicast address"},
		{[]string{"--rules", "r", "--iface", "eth0", "--sync-interface", "a/b"}, `--sync-interface "a/b" is not an interface name`},
	} {
		cfg, err := parseRun(tt.args, io.Discard)
		var ee *exitError
		if cfg != nil || !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("udr run %s: %v, want a usage error (exit status 2) containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
