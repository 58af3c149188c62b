package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/admin"
	"github.com/udr-lb/udr/health"
	"github.com/udr-lb/udr/service"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestLoadConfigFull(t *testing.T) {
	fc, cfg, warnings, err := Load("testdata/config/full.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	a := netip.MustParseAddr
	web := &health.CheckConfig{Kind: "http", Path: "/healthz", Host: "www.example", Status: 204,
		Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 2, OnFailure: "remove"}
	webStatus := *web
	webStatus.Port, webStatus.Path = 8080, "/status"
	dns := &health.CheckConfig{Kind: "dns", DNSName: "www.example.", DNSType: 28, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
		InitialDown: true, OnFailure: "quiesce"}
	udp := &health.CheckConfig{Kind: "udp", Port: 5353, Payload: "ping", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, OnFailure: "quiesce"}
	ssh := &health.CheckConfig{Kind: "tcp", Port: 22, Interval: 10 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Mode: "dr", OnFailure: "quiesce"}
	wantFC := &File{
		Interface:        "eth1",
		VIPMAC:           "02:00:5e:00:01:64",
		ControlSocket:    "/run/udr-test/udr.sock",
		StateFile:        "/run/udr-test/conns.state",
		IO:               "ring",
		Workers:          2,
		AnnounceInterval: 30 * time.Second,
		Capacity:         65536,
		SloppyTCP:        true,

		ConnReuseMode:           2,
		ExpireNodestConn:        true,
		ExpireQuiescentTemplate: true,
		Timeouts:                service.Timeouts{TCP: 3600, TCPFin: 60},
		Sync: Sync{Master: true, Backup: true, Interface: "eth2", SyncID: 7, MaxLen: 9000, Group: a("ff02::81"), Port: 8849, TTL: 2,
			Peers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.3:8849"), netip.MustParseAddrPort("[2001:db8::3]:8850")}},
		Services: []Service{
			{
				Key: service.Key{Proto: service.TCP, Addr: a("192.0.2.100"), Port: 80}, Scheduler: "wrr", HealthCheck: web, Quorum: 1,
				Servers: []Server{
					{Addr: a("192.0.2.11"), Port: 80, Weight: 3, UpperThreshold: 100, LowerThreshold: 50, HealthCheck: web},
					{Addr: a("192.0.2.12"), Port: 80, Weight: 1, HealthCheck: &webStatus},
					{Addr: a("192.0.2.13"), Port: 80, Weight: 0},
				},
			},
			{
				Key: service.Key{Proto: service.UDP, Addr: a("2001:db8::53"), Port: 53}, Scheduler: "sh", Flags: service.SchedFlag1 | service.SchedFlag2, Quorum: 1,
				Persistence: &Persistence{Timeout: 600 * time.Second, Netmask: 64}, OnePacket: true, HealthCheck: dns,
				Servers: []Server{
					{Addr: a("2001:db8::11"), Port: 53, Weight: 1, HealthCheck: dns},
					{Addr: a("2001:db8::12"), Port: 53, Weight: 1, HealthCheck: udp},
				},
			},
			{
				Key: service.Key{Proto: service.TCP, Addr: a("198.51.100.1"), Port: 0}, Scheduler: "wlc", Quorum: 1,
				Persistence: &Persistence{Timeout: 360 * time.Second, Netmask: 24},
				Servers:     []Server{{Addr: a("198.51.100.11"), Port: 0, Weight: 1, HealthCheck: ssh}},
			},
			{
				Key: service.Key{Proto: service.TCP, Addr: a("192.0.2.100"), Port: 443}, Scheduler: "wlc", HealthCheck: web, Quorum: 1,
				Servers: []Server{{Addr: a("192.0.2.11"), Port: 443, Weight: 1, HealthCheck: web}},
			},
		},
	}
	if diff := cmp.Diff(wantFC, fc, addrCmp); diff != "" {
		t.Errorf("File mismatch (-want +got):\n%s", diff)
	}

	// The servers listed first end up last, as after ipvsadm -a in file order.
	wantCfg := &service.Config{
		Timeouts: service.Timeouts{TCP: 3600, TCPFin: 60},
		Services: []*service.Service{
			{Key: service.Key{Proto: service.TCP, Addr: a("192.0.2.100"), Port: 80}, Scheduler: "wrr", Netmask: 32, Dests: []service.Dest{
				{Addr: a("192.0.2.13"), Port: 80, Weight: 0, LastWeight: 0},
				{Addr: a("192.0.2.12"), Port: 80, Weight: 1, LastWeight: 1},
				{Addr: a("192.0.2.11"), Port: 80, Weight: 3, UThreshold: 100, LThreshold: 50, LastWeight: 3},
			}},
			{Key: service.Key{Proto: service.UDP, Addr: a("2001:db8::53"), Port: 53}, Scheduler: "sh", Flags: service.SchedFlag1 | service.SchedFlag2,
				Persistent: true, Timeout: 600, Netmask: 64, OnePacket: true, Dests: []service.Dest{
					{Addr: a("2001:db8::12"), Port: 53, Weight: 1, LastWeight: 1},
					{Addr: a("2001:db8::11"), Port: 53, Weight: 1, LastWeight: 1},
				}},
			{Key: service.Key{Proto: service.TCP, Addr: a("198.51.100.1"), Port: 0}, Scheduler: "wlc", Persistent: true, Timeout: 360, Netmask: 24, Dests: []service.Dest{
				{Addr: a("198.51.100.11"), Port: 0, Weight: 1, LastWeight: 1},
			}},
			{Key: service.Key{Proto: service.TCP, Addr: a("192.0.2.100"), Port: 443}, Scheduler: "wlc", Netmask: 32, Dests: []service.Dest{
				{Addr: a("192.0.2.11"), Port: 443, Weight: 1, LastWeight: 1},
			}},
		},
	}
	if diff := cmp.Diff(wantCfg, cfg, addrCmp); diff != "" {
		t.Errorf("Config mismatch (-want +got):\n%s", diff)
	}

	wantWarnings := []string{
		"testdata/config/full.yaml:34: services[0].servers[1].port: real server port 8080 ignored: direct routing forwards to the service port 80",
	}
	if diff := cmp.Diff(wantWarnings, warnings); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}

	ap := netip.MustParseAddrPort
	withPort := func(h *health.CheckConfig, port uint16) health.CheckConfig { c := *h; c.Port = port; return c }
	wantChecks := map[service.Key]map[netip.AddrPort]health.CheckConfig{
		{Proto: service.TCP, Addr: a("192.0.2.100"), Port: 80}: {
			ap("192.0.2.11:80"): withPort(web, 80),
			ap("192.0.2.12:80"): webStatus,
		},
		{Proto: service.UDP, Addr: a("2001:db8::53"), Port: 53}: {
			ap("[2001:db8::11]:53"): withPort(dns, 53),
			ap("[2001:db8::12]:53"): *udp,
		},
		{Proto: service.TCP, Addr: a("198.51.100.1"), Port: 0}:  {ap("198.51.100.11:0"): *ssh},
		{Proto: service.TCP, Addr: a("192.0.2.100"), Port: 443}: {ap("192.0.2.11:443"): withPort(web, 443)},
	}
	if diff := cmp.Diff(wantChecks, fc.HealthChecks(), addrCmp, cmp.Comparer(func(a, b service.Key) bool { return a == b })); diff != "" {
		t.Errorf("HealthChecks mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	fc, cfg, warnings, err := parseConfig([]byte("interface: eth0\n"), "udr.yaml", ".")
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	want := &File{
		Interface:        "eth0",
		ControlSocket:    DefaultControlSocket,
		MetricsAddress:   DefaultMetricsAddress,
		IO:               DefaultIO,
		Workers:          DefaultWorkers,
		AnnounceInterval: DefaultAnnounceInterval,
		Capacity:         DefaultCapacity,
		ConnReuseMode:    DefaultConnReuseMode,
		Sync:             DefaultSync(),
	}
	if diff := cmp.Diff(want, fc, addrCmp); diff != "" {
		t.Errorf("File mismatch (-want +got):\n%s", diff)
	}
	if len(cfg.Services) != 0 || cfg.Timeouts != (service.Timeouts{}) || len(warnings) != 0 {
		t.Errorf("got Config %+v, warnings %q; want an empty table and no warnings", cfg, warnings)
	}

	// A service with only its address and port, and a server with only
	// its address: ipvsadm's defaults.
	fc, cfg, _, err = parseConfig([]byte(`interface: eth0
services:
  - {address: 192.0.2.100, port: 80, health_check: {}, servers: [{address: 192.0.2.11}]}
`), "udr.yaml", ".")
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	wantSvc := &service.Service{Key: service.Key{Proto: service.TCP, Addr: netip.MustParseAddr("192.0.2.100"), Port: 80}, Scheduler: "wlc", Netmask: 32,
		Dests: []service.Dest{{Addr: netip.MustParseAddr("192.0.2.11"), Port: 80, Weight: 1, LastWeight: 1}}}
	if diff := cmp.Diff([]*service.Service{wantSvc}, cfg.Services, addrCmp); diff != "" {
		t.Errorf("Config mismatch (-want +got):\n%s", diff)
	}
	// Path and Status are for http only, DNSType for dns only.
	wantHC := health.CheckConfig{Kind: "tcp", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, OnFailure: "quiesce"}
	if diff := cmp.Diff(&wantHC, fc.Services[0].Servers[0].HealthCheck, addrCmp); diff != "" {
		t.Errorf("health check mismatch (-want +got):\n%s", diff)
	}
}

// The keys dns_type, payload and initial_down: their values, defaults and
// inheritance from the service's health_check to a server's.
func TestLoadConfigHealthKeys(t *testing.T) {
	check := func(kind health.Kind, f func(*health.CheckConfig)) *health.CheckConfig {
		c := &health.CheckConfig{Kind: kind, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, OnFailure: "quiesce"}
		f(c)
		return c
	}
	const dnsMX = "{kind: dns, dns_name: www.example., dns_type: MX, initial_down: true}"
	tests := []struct {
		name     string
		svc, srv string // the health_check of the service and of its server
		want     *health.CheckConfig
	}{
		{
			name: "all three inherited",
			svc:  dnsMX,
			want: check("dns", func(c *health.CheckConfig) { c.DNSName, c.DNSType, c.InitialDown = "www.example.", 15, true }),
		},
		{
			name: "server overrides dns_type only",
			svc:  dnsMX,
			srv:  "{dns_type: 28}",
			want: check("dns", func(c *health.CheckConfig) { c.DNSName, c.DNSType, c.InitialDown = "www.example.", 28, true }),
		},
		{
			name: "server turns initial_down off",
			svc:  dnsMX,
			srv:  "{initial_down: false}",
			want: check("dns", func(c *health.CheckConfig) { c.DNSName, c.DNSType = "www.example.", 15 }),
		},
		{
			name: "dns_type name in lower case",
			svc:  "{kind: dns, dns_name: www.example., dns_type: srv}",
			want: check("dns", func(c *health.CheckConfig) { c.DNSName, c.DNSType = "www.example.", 33 }),
		},
		{
			name: "dns_type number 65535",
			svc:  "{kind: dns, dns_name: www.example., dns_type: 65535}",
			want: check("dns", func(c *health.CheckConfig) { c.DNSName, c.DNSType = "www.example.", 65535 }),
		},
		{
			name: "dns_type default A",
			svc:  "{kind: dns, dns_name: www.example.}",
			want: check("dns", func(c *health.CheckConfig) { c.DNSName, c.DNSType = "www.example.", 1 }),
		},
		{
			name: "udp payload inherited, initial_down from the server",
			svc:  `{kind: udp, payload: "ping\n"}`,
			srv:  "{initial_down: true}",
			want: check("udp", func(c *health.CheckConfig) { c.Payload, c.InitialDown = "ping\n", true }),
		},
		{
			name: "udp payload default empty",
			svc:  "{kind: udp}",
			want: check("udp", func(*health.CheckConfig) {}),
		},
		{
			name: "server of another kind inherits nothing",
			svc:  dnsMX,
			srv:  "{kind: udp, payload: hello}",
			want: check("udp", func(c *health.CheckConfig) { c.Payload = "hello" }),
		},
		{
			name: "initial_down of a tcp check",
			svc:  "{initial_down: true}",
			want: check("tcp", func(c *health.CheckConfig) { c.InitialDown = true }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n" +
				"    health_check: " + tt.svc + "\n    servers:\n      - address: 192.0.2.11\n"
			if tt.srv != "" {
				yaml += "        health_check: " + tt.srv + "\n"
			}
			fc, _, _, err := parseConfig([]byte(yaml), "udr.yaml", ".")
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if diff := cmp.Diff(tt.want, fc.Services[0].Servers[0].HealthCheck, addrCmp); diff != "" {
				t.Errorf("server health check mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigRules(t *testing.T) {
	fc, cfg, warnings, err := Load("testdata/config/with-rules.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := filepath.Join("testdata", "config", "rules"); fc.Rules != want {
		t.Errorf("Rules = %q, want %q (relative to the config file)", fc.Rules, want)
	}
	f, err := os.Open("testdata/config/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, wantWarnings, err := admin.ParseRules(f, "testdata/config/rules")
	if err != nil {
		t.Fatal(err)
	}
	want.Timeouts = service.Timeouts{TCP: 600}
	if diff := cmp.Diff(want, cfg, addrCmp); diff != "" {
		t.Errorf("Config mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantWarnings, warnings); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{
			name: "unknown top-level field",
			yaml: "interface: eth0\nforward: nat\n",
			want: "udr.yaml:2: forward: unknown field",
		},
		{
			name: "unknown nested field",
			yaml: `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    servers:
      - address: 192.0.2.11
        forward: nat
`,
			want: "udr.yaml:7: services[0].servers[0].forward: unknown field",
		},
		{
			name: "unknown health check field",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, health_check: {kind: http, url: /}}\n",
			want: "udr.yaml:3: services[0].health_check.url: unknown field",
		},
		{
			name: "unknown io",
			yaml: "interface: eth0\nio: xdp\n",
			want: `udr.yaml:2: io: "xdp" is not ring, ring-v2, socket or auto`,
		},
		{
			name: "workers not a number",
			yaml: "interface: eth0\nworkers: all\n",
			want: `udr.yaml:2: workers: "all" is not a number of workers (1..256) or auto`,
		},
		{
			name: "no workers",
			yaml: "interface: eth0\nworkers: 0\n",
			want: `udr.yaml:2: workers: 0 out of range 1..256`,
		},
		{
			name: "syntax error",
			yaml: "interface: eth0\nservices: [\n",
			want: "udr.yaml:2: sequence end token ']' not found",
		},
		{
			name: "duplicate key",
			yaml: "interface: eth0\ninterface: eth1\n",
			want: `udr.yaml:2: mapping key "interface" already defined at [1:1]`,
		},
		{
			name: "two documents",
			yaml: "interface: eth0\n---\ninterface: eth1\n",
			want: "udr.yaml:2: want one YAML document, got 2",
		},
		{
			name: "services not a list",
			yaml: "interface: eth0\nservices: {address: 192.0.2.100}\n",
			want: "udr.yaml:2: services: want a list, got mapping",
		},
		{
			name: "conn_reuse_mode out of range",
			yaml: "interface: eth0\nconn_reuse_mode: 4\n",
			want: "udr.yaml:2: conn_reuse_mode: 4 out of range 0..3",
		},
		{
			name: "drop_entry out of range",
			yaml: "interface: eth0\ndrop_entry: 4\n",
			want: "udr.yaml:2: drop_entry: 4 out of range 0..3",
		},
		{
			name: "secure_tcp out of range",
			yaml: "interface: eth0\nsecure_tcp: -1\n",
			want: "udr.yaml:2: secure_tcp: -1 out of range 0..3",
		},
		{
			name: "missing interface",
			yaml: "capacity: 10\n",
			want: "udr.yaml: interface: required",
		},
		{
			name: "wrong type",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: \"80\"\n",
			want: `udr.yaml:4: services[0].port: want an integer, got string "80"`,
		},
		{
			name: "bad address",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.256\n    port: 80\n",
			want: `udr.yaml:3: services[0].address: "192.0.2.256" is not an IP address`,
		},
		{
			name: "bad port",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 65536\n",
			want: "udr.yaml:4: services[0].port: 65536 out of range 0..65535",
		},
		{
			name: "weight out of range",
			yaml: `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
        weight: 70000
`,
			want: "udr.yaml:8: services[0].servers[1].weight: 70000 out of range 0..65535",
		},
		{
			name: "unknown scheduler",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, scheduler: wrrr}\n",
			want: `udr.yaml:3: services[0].scheduler: unknown scheduler "wrrr"`,
		},
		{
			name: "port 0 without persistence",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 0}\n",
			want: "udr.yaml:3: services[0].port: 0 (every port) needs persistence",
		},
		{
			name: "port missing",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n",
			want: "udr.yaml:3: services[0].port: required (0, every port, only with persistence)",
		},
		{
			name: "bad duration",
			yaml: "interface: eth0\nannounce_interval: 2x\n",
			want: `udr.yaml:2: announce_interval: "2x" is not a duration, want e.g. 10s or 1m30s`,
		},
		{
			name: "duration without unit",
			yaml: "interface: eth0\ntimeouts:\n  tcp: 900\n",
			want: "udr.yaml:3: timeouts.tcp: 900 has no unit, want a duration such as 900s",
		},
		{
			name: "timeout out of range",
			yaml: "interface: eth0\ntimeouts: {udp: 745h}\n",
			want: "udr.yaml:2: timeouts.udp: 745h out of range 0s..2678400s",
		},
		{
			name: "persistence not whole seconds",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, persistence: {timeout: 1500ms}}\n",
			want: "udr.yaml:3: services[0].persistence.timeout: 1500ms is not a whole number of seconds",
		},
		{
			name: "bad health check kind",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, health_check: {kind: icmp}}\n",
			want: `udr.yaml:3: services[0].health_check.kind: "icmp" unknown, want tcp, http, https, udp, dns, misc or none`,
		},
		{
			name: "interval not above timeout",
			yaml: `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    health_check:
      interval: 2s
      timeout: 2s
`,
			want: "udr.yaml:7: services[0].health_check.timeout: timeout 2s must be shorter than interval 2s",
		},
		{
			name: "rise 0",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {rise: 0}\n",
			want: "udr.yaml:5: services[0].health_check.rise: 0 out of range 1..1000",
		},
		{
			name: "dr mode of an http check",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {kind: http, mode: dr}\n",
			want: "udr.yaml:5: services[0].health_check.mode: dr is for kind tcp only, not http",
		},
		{
			name: "field of another kind",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {path: /}\n",
			want: "udr.yaml:5: services[0].health_check.path: not used by kind tcp",
		},
		{
			name: "dns without a name",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n    health_check: {kind: dns}\n",
			want: "udr.yaml:5: services[0].health_check.dns_name: required for kind dns",
		},
		{
			name: "dns_type of a tcp check",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {dns_type: AAAA}\n",
			want: "udr.yaml:5: services[0].health_check.dns_type: not used by kind tcp",
		},
		{
			name: "payload of an http check",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {kind: http, payload: ping}\n",
			want: "udr.yaml:5: services[0].health_check.payload: not used by kind http",
		},
		{
			name: "server payload on the service's dns check",
			yaml: `interface: eth0
services:
  - address: 192.0.2.100
    port: 53
    health_check: {kind: dns, dns_name: www.example.}
    servers:
      - address: 192.0.2.11
        health_check: {payload: ping}
`,
			want: "udr.yaml:8: services[0].servers[0].health_check.payload: not used by kind dns",
		},
		{
			name: "initial_down of kind none",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {kind: none, initial_down: true}\n",
			want: "udr.yaml:5: services[0].health_check.initial_down: not used by kind none",
		},
		{
			name: "unknown dns_type name",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n    health_check: {kind: dns, dns_name: www.example., dns_type: AXFR}\n",
			want: `udr.yaml:5: services[0].health_check.dns_type: "AXFR" unknown, want A, AAAA, NS, SOA, MX, TXT, CNAME, PTR, SRV or a number 1..65535`,
		},
		{
			name: "dns_type 0",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n    health_check: {kind: dns, dns_name: www.example., dns_type: 0}\n",
			want: "udr.yaml:5: services[0].health_check.dns_type: 0 out of range 1..65535",
		},
		{
			name: "dns_type above 65535",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n    health_check: {kind: dns, dns_name: www.example., dns_type: 65536}\n",
			want: "udr.yaml:5: services[0].health_check.dns_type: 65536 out of range 1..65535",
		},
		{
			name: "dns_type a list",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n    health_check: {kind: dns, dns_name: www.example., dns_type: [A]}\n",
			want: "udr.yaml:5: services[0].health_check.dns_type: want A, AAAA, NS, SOA, MX, TXT, CNAME, PTR, SRV or a number 1..65535, got list",
		},
		{
			name: "payload not a string",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 53\n    health_check: {kind: udp, payload: 7}\n",
			want: "udr.yaml:5: services[0].health_check.payload: want a string, got int 7",
		},
		{
			name: "initial_down not a bool",
			yaml: "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {initial_down: 1}\n",
			want: "udr.yaml:5: services[0].health_check.initial_down: want true or false, got int 1",
		},
		{
			name: "health check port for a port-0 service",
			yaml: `interface: eth0
services:
  - address: 192.0.2.100
    port: 0
    persistence: {}
    health_check: {kind: tcp}
    servers:
      - address: 192.0.2.11
`,
			want: "udr.yaml:6: services[0].health_check.port: required: the service port is 0 (every port)",
		},
		{
			name: "rules and services",
			yaml: "interface: eth0\nrules: rules\nservices:\n  - {address: 192.0.2.100, port: 80}\n",
			want: "udr.yaml:3: services: give services or rules, not both",
		},
		{
			name: "duplicate service",
			yaml: `interface: eth0
services:
  - {address: 192.0.2.100, port: 80}
  - {address: 192.0.2.100, port: 80, protocol: udp}
  - {address: 192.0.2.100, port: 80, scheduler: rr}
`,
			want: "udr.yaml:5: services[2]: tcp 192.0.2.100:80 already defined by services[0] (udr.yaml:3)",
		},
		{
			name: "duplicate server",
			yaml: `interface: eth0
services:
  - address: 192.0.2.100
    port: 80
    servers:
      - address: 192.0.2.11
      - address: 192.0.2.12
      - address: 192.0.2.11
        port: 8080
`,
			want: "udr.yaml:8: services[0].servers[2]: real server 192.0.2.11:80 already listed as servers[0] (udr.yaml:6)",
		},
		{
			name: "sched flag of another scheduler",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, scheduler: wrr, flags: [sh-port]}\n",
			want: `udr.yaml:3: services[0].flags[0]: "sh-port" needs scheduler sh, not wrr`,
		},
		{
			name: "one packet on tcp",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, one_packet: true}\n",
			want: "udr.yaml:3: services[0].one_packet: only for udp services",
		},
		{
			name: "address family",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, servers: [{address: \"2001:db8::1\"}]}\n",
			want: "udr.yaml:3: services[0].servers[0].address: 2001:db8::1 is IPv6, the service address is not",
		},
		{
			name: "lower threshold above upper",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, servers: [{address: 192.0.2.11, lower_threshold: 5}]}\n",
			want: "udr.yaml:3: services[0].servers[0].lower_threshold: 5 is above upper_threshold 0",
		},
		{
			name: "non-prefix netmask",
			yaml: "interface: eth0\nservices:\n  - {address: 192.0.2.100, port: 80, persistence: {netmask: 255.0.255.0}}\n",
			want: "udr.yaml:3: services[0].persistence.netmask: 255.0.255.0 is not a prefix mask: udr supports prefix masks only",
		},
		{
			name: "multicast vip_mac",
			yaml: "interface: eth0\nvip_mac: 01:00:5e:00:00:01\n",
			want: `udr.yaml:2: vip_mac: 01:00:5e:00:00:01 is a multicast MAC (the first byte is odd): want a unicast MAC address`,
		},
		{
			name: "all-zero vip_mac",
			yaml: "interface: eth0\nvip_mac: 00:00:00:00:00:00\n",
			want: `udr.yaml:2: vip_mac: 00:00:00:00:00:00 is the all-zero MAC, which no neighbour accepts: want a unicast MAC address`,
		},
		{
			name: "broadcast vip_mac",
			yaml: "interface: eth0\nvip_mac: ff:ff:ff:ff:ff:ff\n",
			want: `udr.yaml:2: vip_mac: ff:ff:ff:ff:ff:ff is the broadcast MAC: want a unicast MAC address`,
		},
		{
			name: "vip_mac not a MAC",
			yaml: "interface: eth0\nvip_mac: 02:00:00:00:00\n",
			want: `udr.yaml:2: vip_mac: "02:00:00:00:00" is not an Ethernet MAC address, "" (a virtual MAC) or iface`,
		},
		{
			name: "rules file missing",
			yaml: "interface: eth0\nrules: testdata/config/nonexistent\n",
			want: "udr.yaml:2: rules: open testdata/config/nonexistent: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc, cfg, _, err := parseConfig([]byte(tt.yaml), "udr.yaml", ".")
			if err == nil {
				t.Fatalf("parseConfig succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if fc != nil || cfg != nil {
				t.Errorf("parseConfig returned a config with its error")
			}
		})
	}
}

func TestLoadConfigRulesErrors(t *testing.T) {
	_, _, _, err := Load("testdata/config/bad-rules.yaml")
	want := "testdata/config/bad.rules:2: -a -t 192.0.2.100:80 -r 192.0.2.11:80: illegal weight specified (weight 70000 out of range 0..65535)\n" +
		"testdata/config/bad.rules:3: -m -t 192.0.2.100:80: the first option must be a command, want -A or -a"
	if err == nil {
		t.Fatalf("Load succeeded, want %q", want)
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s", diff)
	}
}

// Every problem is reported, in line order, not only the first one.
func TestLoadConfigAllErrors(t *testing.T) {
	const in = `interface: eth0/1
announce_interval: 0s
services:
  - address: 192.0.2.100
    port: 80
    scheduler: nope
    servers:
      - {address: 192.0.2.11, weight: -1}
      - {address: 224.0.0.1}
    health_check: {interval: 1s, fall: 0}
  - address: 192.0.2.300
    port: 80
    servers:
      - {address: 192.0.2.12, upper_threshold: 1.5}
`
	_, _, _, err := parseConfig([]byte(in), "udr.yaml", ".")
	want := []string{
		`udr.yaml:1: interface: "eth0/1" is not an interface name`,
		`udr.yaml:2: announce_interval: 0s out of range 1s..1h`,
		`udr.yaml:6: services[0].scheduler: unknown scheduler "nope"`,
		`udr.yaml:8: services[0].servers[0].weight: -1 out of range 0..65535`,
		`udr.yaml:9: services[0].servers[1].address: 224.0.0.1 is not a unicast address`,
		`udr.yaml:10: services[0].health_check.interval: timeout 1s must be shorter than interval 1s`,
		`udr.yaml:10: services[0].health_check.fall: 0 out of range 1..1000`,
		`udr.yaml:11: services[1].address: "192.0.2.300" is not an IP address`,
		`udr.yaml:14: services[1].servers[0].upper_threshold: want an integer, got float 1.5`,
	}
	if err == nil {
		t.Fatal("parseConfig succeeded, want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

func TestCheckConfigFile(t *testing.T) {
	tests := []struct {
		path string
		want string
	}{
		{"testdata/config/full.yaml", "testdata/config/full.yaml:34: services[0].servers[1].port: real server port 8080 ignored: direct routing forwards to the service port 80\n" +
			"testdata/config/full.yaml: 4 services, 7 real servers, 6 health checks: ok"},
		{"testdata/config/with-rules.yaml", "testdata/config/rules:4: -a -t 192.0.2.100:80 -r 192.0.2.12:8080: real server port 8080 ignored: direct routing forwards to the service port 80\n" +
			"testdata/config/with-rules.yaml: 1 service, 2 real servers, 0 health checks: ok"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := Check(tt.path)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("summary mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The example shipped in dist/ must stay valid.
func TestDistConfig(t *testing.T) {
	const path = "../dist/udr.yaml"
	got, err := Check(path)
	if err != nil {
		t.Fatalf("Check(%s): %v", path, err)
	}
	if !strings.HasSuffix(got, ": ok") || strings.Contains(got, "\n") {
		t.Errorf("Check(%s) = %q, want one line ending in \": ok\" (no warnings)", path, got)
	}
}

// FuzzLoadConfig checks that no input panics, that every problem names the
// file, and that a table is returned exactly when no problem was found.
func FuzzLoadConfig(f *testing.F) {
	for _, path := range []string{"testdata/config/full.yaml", "../dist/udr.yaml"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("")                                                                                                                                                     // empty file: defaults, no interface
	f.Add("interface: eth0\nservices:\n")                                                                                                                         // a key with no value
	f.Add("interface: eth0\n---\n")                                                                                                                               // a second, empty document
	f.Add("interface: &a eth0\nvip_mac: *a\n")                                                                                                                    // an alias to a scalar
	f.Add("interface: eth0\n<<: {capacity: 5}\n")                                                                                                                 // a merge key
	f.Add("interface: !!binary eth0\n")                                                                                                                           // a tag
	f.Add("interface: eth0\nservices: [{port: [1]}, {}]\n")                                                                                                       // flow style, wrong shapes
	f.Add("interface: eth0\nbgp: {asn: 65001, router_id: 192.0.2.2, med: 1, communities: [\"1:2\"], peers: [{address: 192.0.2.1, asn: 65000, hold_time: 3s}]}\n") // a bgp section
	f.Fuzz(func(t *testing.T, in string) {
		fc, cfg, _, err := parseConfig([]byte(in), "udr.yaml", t.TempDir())
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "udr.yaml") && !strings.Contains(line, "rules") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			if fc != nil || cfg != nil {
				t.Fatal("a config returned with an error")
			}
			return
		}
		for _, s := range fc.Services {
			svc := cfg.Service(s.Key)
			if svc == nil || len(svc.Dests) != len(s.Servers) {
				t.Fatalf("service %s: File has %d servers, Config %v", s.Key, len(s.Servers), svc)
			}
		}
	})
}
