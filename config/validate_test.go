package config

import (
	"strings"
	"testing"
)

// TestLoadConfigRefusesAddressesAndChecks checks that udr.yaml refuses,
// each at its line and field, what udr cannot serve or send: VIPs that
// are not a unicast address of the link, a real server that is its VIP, a
// CR/LF in an http check's path or host, a DNS label of more than 63
// bytes.
func TestLoadConfigRefusesAddressesAndChecks(t *testing.T) {
	label := strings.Repeat("a", 300)
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"0.0.0.0", "services:\n  - {address: 0.0.0.0, port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP 0.0.0.0: it is the unspecified address, which no client sends to"},
		{"::", "services:\n  - {address: \"::\", port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP ::: it is the unspecified address, which no client sends to"},
		{"broadcast", "services:\n  - {address: 255.255.255.255, port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP 255.255.255.255: it is the broadcast address"},
		{"multicast", "services:\n  - {address: 239.1.2.3, port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP 239.1.2.3: it is a multicast address; a VIP is a unicast address that udr answers ARP/NDP for"},
		{"ff02::1", "services:\n  - {address: \"ff02::1\", port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP ff02::1: it is a multicast address; a VIP is a unicast address that udr answers ARP/NDP for"},
		{"loopback", "services:\n  - {address: 127.0.0.1, port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP 127.0.0.1: it is a loopback address, which never reaches the interface"},
		{"::1", "services:\n  - {address: \"::1\", port: 80}\n",
			"udr.yaml:3: services[0].address: udr cannot serve VIP ::1: it is a loopback address, which never reaches the interface"},
		{"server is VIP", "services:\n  - address: 192.0.2.100\n    port: 80\n    servers:\n      - address: 192.0.2.11\n      - address: 192.0.2.100\n",
			"udr.yaml:7: services[0].servers[1].address: real server 192.0.2.100 is the VIP itself: a real server has an address of its own and holds the VIP on lo"},
		{"CRLF path", "services:\n  - address: 192.0.2.100\n    port: 80\n    health_check: {kind: http, path: \"/healthz\\r\\nX-Evil: 1\"}\n",
			`udr.yaml:5: services[0].health_check.path: path "/healthz\r\nX-Evil: 1" has a carriage return (CR) at byte 8: want a URL path`},
		{"LF host", "services:\n  - address: 192.0.2.100\n    port: 80\n    servers:\n      - address: 192.0.2.11\n        health_check: {kind: http, host: \"a\\nb\"}\n",
			`udr.yaml:7: services[0].servers[0].health_check.host: host "a\nb" has a line feed (LF) at byte 1: want a host name or address`},
		{"300-byte label", "services:\n  - address: 192.0.2.100\n    port: 53\n    protocol: udp\n    health_check: {kind: dns, dns_name: " + label + ".example}\n",
			`udr.yaml:6: services[0].health_check.dns_name: dns name "` + label[:40] + `...": a label of 300 bytes: want 1..63 bytes`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := parseConfig([]byte("interface: eth0\n"+tt.yaml), "udr.yaml", ".")
			if err == nil || err.Error() != tt.want {
				t.Errorf("parseConfig: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
