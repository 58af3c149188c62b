package keepalived

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// yaml writes the services as udr.yaml.
func (t *translator) yaml() string {
	var b strings.Builder
	iface := t.opt.Interface
	fmt.Fprintf(&b, "# udr.yaml translated from %s by `udr config import`.\n", printable(t.source))
	if iface == "" {
		iface = PlaceholderInterface
		b.WriteString("# keepalived.conf does not say which interface udr listens on: set it.\n")
	}
	fmt.Fprintf(&b, "interface: %s\n", quote(iface))
	if len(t.out) == 0 {
		b.WriteString("services: []\n")
		return b.String()
	}
	b.WriteString("services:\n")
	for _, s := range t.out {
		fmt.Fprintf(&b, "  # %s: %s\n", printable(s.st.At()), printable(strings.Join(s.st.Words, " ")))
		fmt.Fprintf(&b, "  - protocol: %s\n", s.proto)
		fmt.Fprintf(&b, "    address: %s\n", quote(s.addr.String()))
		fmt.Fprintf(&b, "    port: %d\n", s.port)
		fmt.Fprintf(&b, "    scheduler: %s\n", s.scheduler)
		if len(s.flags) > 0 {
			fmt.Fprintf(&b, "    flags: [%s]\n", strings.Join(s.flags, ", "))
		}
		if s.persistence {
			fmt.Fprintf(&b, "    persistence: {timeout: %ds", s.timeout)
			if s.netmask >= 0 {
				fmt.Fprintf(&b, ", netmask: %d", s.netmask)
			}
			b.WriteString("}\n")
		}
		if s.onePacket {
			b.WriteString("    one_packet: true\n")
		}
		if ss := s.sorry; ss != nil {
			fmt.Fprintf(&b, "    # %s: %s\n", printable(ss.st.At()), printable(strings.Join(ss.st.Words, " ")))
			fmt.Fprintf(&b, "    sorry_server: {address: %s", quote(ss.addr.String()))
			if ss.inhibit {
				b.WriteString(", inhibit: true")
			}
			b.WriteString("}\n")
		}
		if s.quorum != 0 {
			fmt.Fprintf(&b, "    quorum: %d\n", s.quorum)
		}
		if s.hysteresis != 0 {
			fmt.Fprintf(&b, "    hysteresis: %d\n", s.hysteresis)
		}
		if len(s.servers) == 0 {
			b.WriteString("    servers: []\n")
			continue
		}
		b.WriteString("    servers:\n")
		for _, r := range s.servers {
			fmt.Fprintf(&b, "      # %s: %s\n", printable(r.st.At()), printable(strings.Join(r.st.Words, " ")))
			fmt.Fprintf(&b, "      - address: %s\n", quote(r.addr.String()))
			fmt.Fprintf(&b, "        weight: %d\n", r.weight)
			if r.upper != 0 {
				fmt.Fprintf(&b, "        upper_threshold: %d\n", r.upper)
			}
			if r.lower != 0 {
				fmt.Fprintf(&b, "        lower_threshold: %d\n", r.lower)
			}
			c := r.check
			if c == nil {
				b.WriteString("        health_check: {kind: none}\n")
				continue
			}
			b.WriteString("        health_check:\n")
			fmt.Fprintf(&b, "          kind: %s\n", c.kind)
			if c.port != 0 && c.kind != "misc" {
				fmt.Fprintf(&b, "          port: %d\n", c.port)
			}
			if c.source != "" {
				fmt.Fprintf(&b, "          source: %s\n", quote(c.source))
			}
			if c.kind == "http" || c.kind == "https" {
				fmt.Fprintf(&b, "          path: %s\n", quote(c.path))
				if c.host != "" {
					fmt.Fprintf(&b, "          host: %s\n", quote(c.host))
				}
				if s := c.statuses.String(); strings.ContainsAny(s, " -") {
					fmt.Fprintf(&b, "          status: %s\n", quote(s))
				} else {
					fmt.Fprintf(&b, "          status: %s\n", s)
				}
				if c.digest != "" {
					fmt.Fprintf(&b, "          digest: %s\n", quote(c.digest))
				}
			}
			if c.kind == "misc" {
				fmt.Fprintf(&b, "          script: %s\n", quote(c.script))
				if c.miscDynamic {
					b.WriteString("          misc_dynamic: true\n")
				}
			}
			if c.kind == "dns" {
				fmt.Fprintf(&b, "          dns_name: %s\n", quote(c.dnsName))
				fmt.Fprintf(&b, "          dns_type: %s\n", c.dnsType)
			}
			fmt.Fprintf(&b, "          interval: %v\n", c.interval)
			fmt.Fprintf(&b, "          timeout: %v\n", c.timeout)
			b.WriteString("          rise: 1\n")
			fmt.Fprintf(&b, "          fall: %d\n", c.fall)
			if c.retryEvery > 0 {
				fmt.Fprintf(&b, "          retry_interval: %v\n", c.retryEvery)
			}
			if c.initialDown {
				b.WriteString("          initial_down: true\n")
			}
			fmt.Fprintf(&b, "          on_failure: %s\n", c.onFailure)
		}
	}
	return b.String()
}

// quote writes s as a YAML double-quoted string (JSON's is one).
func quote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// printable replaces what a YAML comment may not hold.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
