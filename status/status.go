// Package status is `udr status`: what a running director knows of its
// interface, its VIPs and their announcements, its real servers' MACs and
// health, its connection table and its drops, as the JSON of the control
// API's GET /v1/status, and the one screen of text udr status prints.
package status

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/udr-lb/udr/bgp"
)

// MaxRows bounds each list of a Status (neighbours, health checks): the
// answer stays bounded however many real servers the table holds. What is
// left out is counted (Status.LeftOut).
const MaxRows = 4096

// Status is the director's state at Time.
type Status struct {
	Time    time.Time `json:"time"`    // when the director answered
	Started time.Time `json:"started"` // when it started
	Iface   Iface     `json:"iface"`
	VIPMAC  string    `json:"vip_mac"`
	Standby bool      `json:"standby"`
	Workers int       `json:"workers"`
	IO      string    `json:"io"` // the receive backend: ring, ring-v2, socket

	VIPs     []VIP       `json:"vips"`
	Announce Announce    `json:"announce"`
	BGP      *bgp.Status `json:"bgp,omitempty"` // nil without a bgp section

	Neighbors []Neighbor `json:"neighbors"` // one per real server address
	Health    []Health   `json:"health"`    // one per real server that has a check
	// LeftOut counts the neighbours and health checks beyond MaxRows.
	LeftOut int `json:"left_out,omitempty"`

	Table Table `json:"table"`
	Sync  Sync  `json:"sync"`
	// Frames are the verdict counters since start: Forwarded and Replied
	// sent a frame, Drops are every other verdict with a count, by reason
	// (the names of udr_frames_dropped_total), and KernelDrops the frames
	// the kernel dropped at udr's socket (its receive buffer full).
	Forwarded   uint64 `json:"forwarded"`
	Replied     uint64 `json:"replied"`
	Drops       []Drop `json:"drops"`
	KernelDrops uint64 `json:"kernel_drops"`
}

// Iface is the director's interface.
type Iface struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	MAC   string `json:"mac"`
	MTU   int    `json:"mtu"`
}

// VIP is one virtual address and its services, as "TCP 192.0.2.100:80".
type VIP struct {
	Addr     netip.Addr `json:"addr"`
	Services []string   `json:"services"`
}

// Announce is how the VIPs are announced on the segment.
type Announce struct {
	// Mode is "garp" (gratuitous ARP and unsolicited NA), "bgp" (routes
	// to the routers, nothing on the segment) or "standby" (nothing).
	Mode            string    `json:"mode"`
	IntervalSeconds float64   `json:"interval_seconds"`
	Last            time.Time `json:"last"` // zero before the first
	Sent            uint64    `json:"sent"` // announcement rounds, each one frame per VIP
}

// Neighbor is a real server address and its MAC: how it was learnt
// (arp, ndp, kernel, state-file, static), when, and when it was last
// seen again. MAC is "" while it is not known.
type Neighbor struct {
	Addr   netip.Addr `json:"addr"`
	MAC    string     `json:"mac"`
	Source string     `json:"source,omitempty"`
	Learnt time.Time  `json:"learnt"`
	Seen   time.Time  `json:"seen"`
}

// Health is one real server's check.
type Health struct {
	Service string         `json:"service"` // "TCP 192.0.2.100:80"
	Server  netip.AddrPort `json:"server"`
	Check   string         `json:"check"` // tcp, http, udp, dns
	Up      bool           `json:"up"`
	// Action is what a server that is down gets: quiesce or remove.
	Action      string    `json:"action"`
	Last        time.Time `json:"last"`   // when the last check ended
	Reason      string    `json:"reason"` // the last failure, "" when it passed
	Checks      uint64    `json:"checks"`
	Transitions uint64    `json:"transitions"`
}

// Table is the connection table's fill.
type Table struct {
	Entries  int           `json:"entries"`
	Capacity int           `json:"capacity"`
	Workers  []WorkerTable `json:"workers,omitempty"` // with several workers
	Expired  uint64        `json:"expired"`
	Evicted  uint64        `json:"evicted"`
	Full     uint64        `json:"full"`    // new connections refused, the table full
	Dropped  uint64        `json:"dropped"` // by the defences (drop_entry, secure_tcp)
}

// WorkerTable is one worker's share of the table.
type WorkerTable struct {
	Entries  int `json:"entries"`
	Capacity int `json:"capacity"`
}

// Sync is the connection sync daemons.
type Sync struct {
	Daemons       []SyncDaemon      `json:"daemons"`
	SentConns     uint64            `json:"sent_conns"`
	ReceivedConns uint64            `json:"received_conns"`
	Dropped       map[string]uint64 `json:"dropped,omitempty"` // the reasons with a count
}

// SyncDaemon is one running daemon.
type SyncDaemon struct {
	State  string `json:"state"` // master, backup
	Iface  string `json:"iface"`
	SyncID int    `json:"syncid"`
}

// Drop is the frames dropped for one reason.
type Drop struct {
	Reason string `json:"reason"`
	Frames uint64 `json:"frames"`
}

// WriteText writes s as the one screen of udr status; ages are counted
// from s.Time.
func WriteText(w io.Writer, s *Status) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	now := s.Time
	state := "active"
	if s.Standby {
		state = "standby: answers no ARP/NDP for the VIPs and forwards nothing (udr admin --active)"
	}
	p("udr status at %s, up %s\n", now.UTC().Format("2006-01-02 15:04:05 UTC"), age(now, s.Started))
	p("State      %s\n", state)
	workers := "1 worker"
	if s.Workers != 1 {
		workers = fmt.Sprintf("%d workers", s.Workers)
	}
	p("Interface  %s (index %d) MAC %s MTU %d, %s, io %s\n", s.Iface.Name, s.Iface.Index, s.Iface.MAC, s.Iface.MTU, workers, s.IO)
	p("VIP MAC    %s\n", s.VIPMAC)
	if len(s.VIPs) == 0 {
		p("VIPs       none\n")
	}
	for i, v := range s.VIPs {
		label := "VIPs"
		if i > 0 {
			label = ""
		}
		p("%-10s %s: %s\n", label, v.Addr, strings.Join(v.Services, ", "))
	}
	a := s.Announce
	interval := time.Duration(a.IntervalSeconds * float64(time.Second))
	switch a.Mode {
	case "garp":
		p("Announced  gratuitous ARP / unsolicited NA every %v, last %s (%d sent)\n", interval, ago(now, a.Last), a.Sent)
	case "bgp":
		p("Announced  by BGP to the routers, not on the segment\n")
	default:
		p("Announced  no: standby\n")
	}
	if s.BGP != nil {
		var bb strings.Builder
		s.BGP.WriteTable(&bb, now)
		for _, l := range strings.SplitAfter(strings.TrimSuffix(bb.String(), "\n"), "\n") {
			p("  %s", l)
		}
		p("\n")
	}

	p("\nNeighbours (real servers' MACs)\n")
	if len(s.Neighbors) == 0 {
		p("  none: no real servers\n")
	} else {
		p("  %-26s %-17s %-10s %-10s %s\n", "ADDRESS", "MAC", "FROM", "LEARNT", "SEEN")
		for _, n := range s.Neighbors {
			if n.MAC == "" {
				p("  %-26s %-17s %s\n", n.Addr, "unknown", "(no connections go to it until it answers ARP/NDP)")
				continue
			}
			p("  %-26s %-17s %-10s %-10s %s\n", n.Addr, n.MAC, n.Source, ago(now, n.Learnt), ago(now, n.Seen))
		}
	}

	p("\nHealth\n")
	if len(s.Health) == 0 {
		p("  no health checks (udr.yaml health_check)\n")
	} else {
		p("  %-30s %-30s %-5s %-5s %-10s %s\n", "SERVICE", "REAL SERVER", "CHECK", "STATE", "LAST", "REASON")
		for _, h := range s.Health {
			st, reason := "up", h.Reason
			if !h.Up {
				st = "down"
				reason = strings.TrimSpace(reason + " (" + h.Action + "d)")
			}
			p("  %-30s %-30s %-5s %-5s %-10s %s\n", h.Service, h.Server, h.Check, st, ago(now, h.Last), reason)
		}
	}
	if s.LeftOut > 0 {
		p("  (%d more neighbours and checks left out: udr status lists %d of each)\n", s.LeftOut, MaxRows)
	}

	t := s.Table
	p("\nConnections %d of %d entries (%s), %d expired, %d evicted, %d refused table full, %d dropped by the defences\n",
		t.Entries, t.Capacity, percent(t.Entries, t.Capacity), t.Expired, t.Evicted, t.Full, t.Dropped)
	for i, wt := range t.Workers {
		p("  worker %d  %d of %d (%s)\n", i, wt.Entries, wt.Capacity, percent(wt.Entries, wt.Capacity))
	}

	if len(s.Sync.Daemons) == 0 {
		p("Sync       no daemon running\n")
	} else {
		var ds []string
		for _, d := range s.Sync.Daemons {
			ds = append(ds, fmt.Sprintf("%s on %s syncid %d", d.State, d.Iface, d.SyncID))
		}
		p("Sync       %s; %d connections sent, %d received", strings.Join(ds, ", "), s.Sync.SentConns, s.Sync.ReceivedConns)
		var dropped []string
		for _, r := range sortedKeys(s.Sync.Dropped) {
			dropped = append(dropped, fmt.Sprintf("%s %d", r, s.Sync.Dropped[r]))
		}
		if len(dropped) > 0 {
			p("; dropped: %s", strings.Join(dropped, ", "))
		}
		p("\n")
	}

	p("\nFrames since start: %d forwarded, %d replied\n", s.Forwarded, s.Replied)
	if len(s.Drops) == 0 && s.KernelDrops == 0 {
		p("Drops      none\n")
	} else {
		p("Drops by reason\n")
		for _, d := range s.Drops {
			p("  %-14s %d\n", d.Reason, d.Frames)
		}
		if s.KernelDrops > 0 {
			p("  %-14s %d (the kernel, udr's receive buffer full)\n", "socket", s.KernelDrops)
		}
	}
	lines := strings.SplitAfter(b.String(), "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, " \n") {
			lines[i] = strings.TrimRight(l, " \n") + "\n"
		}
	}
	_, err := io.WriteString(w, strings.Join(lines, ""))
	return err
}

// ago writes how long before now t was, to the second: "3s ago",
// "1h2m3s ago", or "never" for a zero t.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return age(now, t) + " ago"
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return max(now.Sub(t), 0).Round(time.Second).String()
}

// percent writes n of total as a percentage with one decimal.
func percent(n, total int) string {
	if total <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}

func sortedKeys(m map[string]uint64) []string {
	var ks []string
	for k, v := range m {
		if v > 0 {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}
