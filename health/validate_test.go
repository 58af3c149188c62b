package health

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestCheckerRefusesBadChecks checks that the checker refuses, with the
// checks udr.yaml's decoder uses too, an http check whose path or Host
// carries a CR or LF and a dns check with a label over 63 bytes.
func TestCheckerRefusesBadChecks(t *testing.T) {
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := netip.MustParseAddrPort("192.0.2.11:80")
	for _, tt := range []struct {
		check CheckConfig
		want  string
	}{
		{CheckConfig{Kind: KindHTTP, Path: "/healthz\r\nX: 1"}, `path "/healthz\r\nX: 1" has a carriage return (CR) at byte 8`},
		{CheckConfig{Kind: KindHTTP, Host: "a\nb"}, `host "a\nb" has a line feed (LF) at byte 1`},
		{CheckConfig{Kind: KindHTTP, Path: "healthz"}, `path "healthz" does not start with /`},
		{CheckConfig{Kind: KindDNS, DNSName: strings.Repeat("a", 300) + ".example"}, "a label of 300 bytes: want 1..63 bytes"},
		{CheckConfig{Kind: KindHTTPS, Digest: "ABC"}, `digest "ABC": want an MD5 of 32 lower-case hex digits`},
		{CheckConfig{Kind: KindTCP, Digest: "0123456789abcdef0123456789abcdef"}, "digest: only http and https checks take one, not tcp"},
		{CheckConfig{Kind: KindMisc}, "script: empty, want a program and its arguments"},
		{CheckConfig{Kind: KindMisc, Script: `/bin/x "a`}, `unterminated " quote`},
		{CheckConfig{Kind: KindMisc, Script: "/bin/true", Source: netip.MustParseAddr("192.0.2.1")}, "source 192.0.2.1: not for kind misc nor mode dr"},
		{CheckConfig{Source: netip.MustParseAddr("2001:db8::1")}, "source 2001:db8::1: not of the real server's address family"},
		{CheckConfig{RetryInterval: -time.Second}, "retry_interval -1s: want 0 (none) or more"},
	} {
		err := c.Set([]Target{{Service: web, Server: server, Check: tt.check}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Set with %+v: %v, want an error containing %q", tt.check, err, tt.want)
		}
	}
}
