package service

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestFormatAddrPort(t *testing.T) {
	tests := []struct {
		addr string
		port uint16
		want string
	}{
		{"192.0.2.1", 80, "192.0.2.1:80"},
		{"2001:db8::1", 443, "[2001:db8::1]:443"},
		{"2001:db8:0:0:1:0:0:1", 0, "[2001:db8::1:0:0:1]:0"},      // first of two equal zero runs
		{"2001:db8:0:1:1:1:1:1", 53, "[2001:db8:0:1:1:1:1:1]:53"}, // one zero word is not shortened
		{"::", 80, "[::]:80"},
		{"::1", 80, "[::1]:80"},
		{"::c000:201", 80, "[::192.0.2.1]:80"},           // IPv4-compatible: inet_ntop's dotted tail
		{"::ffff:c000:201", 80, "[::ffff:192.0.2.1]:80"}, // IPv4-mapped
		{"2001:db8::", 65535, "[2001:db8::]:65535"},
		{"1::ffff:c000:201", 1, "[1::ffff:c000:201]:1"},
	}
	for _, tt := range tests {
		if got := FormatAddrPort(netip.MustParseAddr(tt.addr), tt.port); got != tt.want {
			t.Errorf("FormatAddrPort(%s, %d) = %q, want %q", tt.addr, tt.port, got, tt.want)
		}
	}
}

func TestSchedFlagsString(t *testing.T) {
	tests := []struct {
		sched string
		flags SchedFlags
		want  string
	}{
		{"sh", SchedFlag1 | SchedFlag2, "sh-fallback,sh-port"},
		{"mh", SchedFlag2, "mh-port"},
		{"sh", SchedFlag3, ""},
		{"wlc", SchedFlag1 | SchedFlag3, "flag-1,flag-3"},
	}
	for _, tt := range tests {
		if got := SchedFlagsString(tt.sched, tt.flags); got != tt.want {
			t.Errorf("SchedFlagsString(%s, %#x) = %q, want %q", tt.sched, tt.flags, got, tt.want)
		}
	}
}

func TestSortedServices(t *testing.T) {
	c := &Config{}
	for _, k := range []string{"-u [2001:db8::1]:53", "-t [2001:db8::1]:80", "-u 192.0.2.1:53",
		"-t 198.51.100.1:80", "-t 192.0.2.1:443", "-t 192.0.2.1:80"} {
		proto := TCP
		if k[1] == 'u' {
			proto = UDP
		}
		ap := netip.MustParseAddrPort(k[3:])
		c.Services = append(c.Services, &Service{Key: Key{Proto: proto, Addr: ap.Addr(), Port: ap.Port()}})
	}
	var got []string
	for _, s := range SortedServices(c) {
		got = append(got, s.Key.String())
	}
	want := []string{"-t 192.0.2.1:80", "-t 192.0.2.1:443", "-t 198.51.100.1:80", "-u 192.0.2.1:53",
		"-t [2001:db8::1]:80", "-u [2001:db8::1]:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("SortedServices = %q, want %q", got, want)
	}
	if c.Services[0].Proto != UDP || c.Services[0].Addr.Is4() {
		t.Fatalf("SortedServices reordered the config")
	}
}

// TestMergeSortIsStable checks the merge sort against the standard library
// on a consistent order, where any stable sort gives the same result.
func TestMergeSortIsStable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type item struct{ key, seq int }
	for n := range 40 {
		s := make([]item, n)
		for i := range s {
			s[i] = item{r.IntN(5), i}
		}
		want := slices.Clone(s)
		slices.SortStableFunc(want, func(a, b item) int { return a.key - b.key })
		mergeSort(s, func(a, b item) int { return a.key - b.key })
		if !slices.Equal(s, want) {
			t.Fatalf("mergeSort(n=%d) = %v, want %v", n, s, want)
		}
	}
}
