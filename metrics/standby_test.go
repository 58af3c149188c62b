package metrics

import "testing"

// TestCollectorStandby: udr_standby is 1 in standby, 0 when active.
func TestCollectorStandby(t *testing.T) {
	for _, standby := range []bool{false, true} {
		want := `# HELP udr_standby Whether the director is in standby (1: no ARP/NDP answers and no forwarding for the VIPs, udr admin --standby) or active (0).
# TYPE udr_standby gauge
udr_standby 0
`
		if standby {
			want = want[:len(want)-2] + "1\n"
		}
		got := gather(t, NewCollector(func() Snapshot {
			s := fakeSnapshot()
			s.Standby = standby
			return s
		}, nil), "udr_standby")
		if got != want {
			t.Errorf("standby %v:\n%s\nwant:\n%s", standby, got, want)
		}
	}
}
