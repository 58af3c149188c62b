package config

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/health"
)

// The keys that keepalived's checkers map to: kind https and misc, digest,
// script, misc_dynamic, retry_interval and source; their values, defaults
// and inheritance.
func TestLoadConfigKeepalivedHealthKeys(t *testing.T) {
	check := func(kind health.Kind, f func(*health.CheckConfig)) *health.CheckConfig {
		c := &health.CheckConfig{Kind: kind, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, OnFailure: "quiesce"}
		if kind.IsHTTP() {
			c.Path, c.Status = "/", 200
		}
		f(c)
		return c
	}
	const digest = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name     string
		svc, srv string
		want     *health.CheckConfig
	}{
		{
			name: "https with host and digest",
			svc:  "{kind: https, host: www.example, digest: 0123456789ABCDEF0123456789abcdef}",
			want: check("https", func(c *health.CheckConfig) { c.Host, c.Digest = "www.example", digest }),
		},
		{
			name: "http digest inherited, status from the server",
			svc:  "{kind: http, path: /ok, digest: " + digest + "}",
			srv:  "{status: 204}",
			want: check("http", func(c *health.CheckConfig) { c.Path, c.Digest, c.Status = "/ok", digest, 204 }),
		},
		{
			name: "status ranges as keepalived writes them",
			svc:  `{kind: http, status: "200-299 304"}`,
			want: check("http", func(c *health.CheckConfig) { c.Status = 0; c.Statuses = statusSet(200, 299, 304, 304) }),
		},
		{
			name: "status list",
			svc:  `{kind: https, status: [200, "301-302"]}`,
			want: check("https", func(c *health.CheckConfig) { c.Status = 0; c.Statuses = statusSet(200, 200, 301, 302) }),
		},
		{
			name: "one status",
			svc:  `{kind: http, status: 204}`,
			want: check("http", func(c *health.CheckConfig) { c.Status = 204 }),
		},
		{
			name: "misc",
			svc:  `{kind: misc, script: "/usr/local/bin/check 'a b' c", timeout: 3s, interval: 5s}`,
			want: check("misc", func(c *health.CheckConfig) {
				c.Script, c.Timeout, c.Interval = "/usr/local/bin/check 'a b' c", 3*time.Second, 5*time.Second
			}),
		},
		{
			name: "misc_dynamic from the server, timeout the interval",
			svc:  "{kind: misc, script: /bin/true}",
			srv:  "{misc_dynamic: true}",
			want: check("misc", func(c *health.CheckConfig) { c.Script, c.MiscDynamic, c.Timeout = "/bin/true", true, 2*time.Second }),
		},
		{
			name: "misc timeout longer than the interval",
			svc:  "{kind: misc, script: /bin/true, interval: 3s, timeout: 10s}",
			want: check("misc", func(c *health.CheckConfig) {
				c.Script, c.Interval, c.Timeout = "/bin/true", 3*time.Second, 10*time.Second
			}),
		},
		{
			name: "retry_interval and source",
			svc:  "{retry_interval: 500ms, fall: 4, rise: 1, source: 192.0.2.1}",
			want: check("tcp", func(c *health.CheckConfig) {
				c.RetryInterval, c.Fall, c.Rise, c.Source = 500*time.Millisecond, 4, 1, netip.MustParseAddr("192.0.2.1")
			}),
		},
		{
			name: "retry_interval 0s",
			svc:  "{retry_interval: 0s}",
			want: check("tcp", func(*health.CheckConfig) {}),
		},
		{
			name: "retry_interval default 0",
			svc:  "{kind: http}",
			want: check("http", func(*health.CheckConfig) {}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 443\n" +
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

func TestLoadConfigKeepalivedHealthInvalid(t *testing.T) {
	const head = "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"digest too short", head + "    health_check: {kind: http, digest: abc}\n",
			`udr.yaml:5: services[0].health_check.digest: digest "abc": want an MD5 of 32 lower-case hex digits`},
		{"digest not hex", head + "    health_check: {kind: https, digest: 0123456789abcdef0123456789abcdeg}\n",
			`udr.yaml:5: services[0].health_check.digest: digest "0123456789abcdef0123456789abcdeg": want an MD5 of 32 lower-case hex digits`},
		{"digest of a tcp check", head + "    health_check: {digest: 0123456789abcdef0123456789abcdef}\n",
			"udr.yaml:5: services[0].health_check.digest: not used by kind tcp"},
		{"misc without script", head + "    health_check: {kind: misc}\n",
			"udr.yaml:5: services[0].health_check.script: required for kind misc"},
		{"misc empty script", head + "    health_check: {kind: misc, script: \"  \"}\n",
			"udr.yaml:5: services[0].health_check.script: script: empty, want a program and its arguments"},
		{"misc unterminated quote", head + "    health_check: {kind: misc, script: \"/bin/check 'a\"}\n",
			`udr.yaml:5: services[0].health_check.script: script "/bin/check 'a": unterminated ' quote`},
		{"misc with a port", head + "    health_check: {kind: misc, script: /bin/true, port: 80}\n",
			"udr.yaml:5: services[0].health_check.port: not used by kind misc"},
		{"misc with a source", head + "    health_check: {kind: misc, script: /bin/true, source: 192.0.2.1}\n",
			"udr.yaml:5: services[0].health_check.source: not used by kind misc"},
		{"misc_dynamic of an http check", head + "    health_check: {kind: http, misc_dynamic: true}\n",
			"udr.yaml:5: services[0].health_check.misc_dynamic: not used by kind http"},
		{"script of a tcp check", head + "    health_check: {script: /bin/true}\n",
			"udr.yaml:5: services[0].health_check.script: not used by kind tcp"},
		{"status range upside down", head + "    health_check: {kind: http, status: \"299-200\"}\n",
			"udr.yaml:5: services[0].health_check.status: status 299-200: want statuses within 100..599, low to high"},
		{"status list item bad", head + "    health_check: {kind: http, status: [200, 2xx]}\n",
			`udr.yaml:5: services[0].health_check.status[1]: status "2xx": want a status or a range such as 200-299`},
		{"status list empty", head + "    health_check: {kind: http, status: []}\n",
			"udr.yaml:5: services[0].health_check.status: empty list: want statuses such as 200 or 200-299"},
		{"status out of range", head + "    health_check: {kind: http, status: 600}\n",
			"udr.yaml:5: services[0].health_check.status: 600 out of range 100..599"},
		{"retry_interval too short", head + "    health_check: {retry_interval: 10ms}\n",
			"udr.yaml:5: services[0].health_check.retry_interval: 10ms: want 0s (the interval) or 100ms..1h"},
		{"source of the other family", head + "    health_check: {source: \"2001:db8::1\"}\n",
			"udr.yaml:5: services[0].health_check.source: 2001:db8::1 is IPv6, 192.0.2.100 is not"},
		{"source not an address", head + "    health_check: {source: director}\n",
			`udr.yaml:5: services[0].health_check.source: "director" is not an IP address`},
		{"source multicast", head + "    servers:\n      - address: 192.0.2.11\n        health_check: {source: 224.0.0.1}\n",
			"udr.yaml:7: services[0].servers[0].health_check.source: 224.0.0.1 is not a unicast address"},
		{"source with mode dr", head + "    health_check: {mode: dr, source: 192.0.2.1}\n",
			"udr.yaml:5: services[0].health_check.source: not with mode dr, whose probes come from the director's interface address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc, _, _, err := parseConfig([]byte(tt.yaml), "udr.yaml", ".")
			if err == nil {
				t.Fatalf("parseConfig succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if fc != nil {
				t.Error("parseConfig returned a config with its error")
			}
		})
	}
}

// sorry_server, quorum and hysteresis: values, defaults, warnings.
func TestLoadConfigSorryServerQuorum(t *testing.T) {
	const head = "interface: eth0\nservices:\n  - address: 192.0.2.100\n    port: 80\n"
	fc, _, warnings, err := parseConfig([]byte(head+
		"    sorry_server: {address: 192.0.2.20, port: 8080, inhibit: true}\n    quorum: 3\n    hysteresis: 1\n"), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	s := fc.Services[0]
	want := &SorryServer{Addr: netip.MustParseAddr("192.0.2.20"), Port: 80, Inhibit: true, asked: 8080}
	if diff := cmp.Diff(want, s.SorryServer, addrCmp, cmp.AllowUnexported(SorryServer{})); diff != "" || s.Quorum != 3 || s.Hysteresis != 1 {
		t.Errorf("sorry server (-want +got):\n%s\nquorum %d, hysteresis %d, want 3, 1", diff, s.Quorum, s.Hysteresis)
	}
	if diff := cmp.Diff([]string{"udr.yaml:5: services[0].sorry_server.port: port 8080 ignored: direct routing forwards to the service port 80"}, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}

	fc, _, warnings, err = parseConfig([]byte(head), "udr.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	if s := fc.Services[0]; s.SorryServer != nil || s.Quorum != 1 || s.Hysteresis != 0 || len(warnings) != 0 {
		t.Errorf("defaults: sorry server %v, quorum %d, hysteresis %d, warnings %q; want none, 1, 0, none", s.SorryServer, s.Quorum, s.Hysteresis, warnings)
	}

	for _, tt := range []struct{ yaml, want string }{
		{"    sorry_server: {port: 80}\n", "udr.yaml:5: services[0].sorry_server.address: required"},
		{"    sorry_server: {address: \"2001:db8::20\"}\n", "udr.yaml:5: services[0].sorry_server.address: 2001:db8::20 is IPv6, the service address is not"},
		{"    sorry_server: {address: 192.0.2.100}\n", "udr.yaml:5: services[0].sorry_server.address: real server 192.0.2.100 is the VIP itself: a real server has an address of its own and holds the VIP on lo"},
		{"    sorry_server: {address: 192.0.2.20, inhibit: yes please}\n", "udr.yaml:5: services[0].sorry_server.inhibit: want true or false, got string \"yes please\""},
		{"    sorry_server: {address: 192.0.2.20, weight: 2}\n", "udr.yaml:5: services[0].sorry_server.weight: unknown field"},
		{"    quorum: 0\n", "udr.yaml:5: services[0].quorum: 0 out of range 1..2147483647"},
		{"    hysteresis: -1\n", "udr.yaml:5: services[0].hysteresis: -1 out of range 0..2147483647"},
	} {
		_, _, _, err := parseConfig([]byte(head+tt.yaml), "udr.yaml", ".")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

// statusSet returns the set of the ranges lo1..hi1, lo2..hi2, ...
func statusSet(bounds ...int) health.StatusSet {
	var s health.StatusSet
	for i := 0; i+1 < len(bounds); i += 2 {
		if err := s.Add(bounds[i], bounds[i+1]); err != nil {
			panic(err)
		}
	}
	return s
}
