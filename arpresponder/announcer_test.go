package arpresponder

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns t0 + d, d in milliseconds, to keep the tables short.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// TestAnnouncer drives an Announcer with a fake clock that ticks every
// 100 ms and records the instants at which announcements are due.
func TestAnnouncer(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		resets   []int // ms after t0 at which the VIPs change
		until    int   // ms after t0
		want     []int // ms after t0 at which Due reports true
	}{
		{
			name:  "start: burst of 3 a second apart, then every 10 s",
			until: 35_000,
			want:  []int{0, 1_000, 2_000, 12_000, 22_000, 32_000},
		},
		{
			name: "interval 0 means the default", interval: 0,
			until: 12_000,
			want:  []int{0, 1_000, 2_000, 12_000},
		},
		{
			name: "custom interval", interval: 3 * time.Second,
			until: 9_000,
			want:  []int{0, 1_000, 2_000, 5_000, 8_000},
		},
		{
			name:   "VIP change between periodic announcements starts a new burst",
			resets: []int{15_500}, until: 30_000,
			want: []int{0, 1_000, 2_000, 12_000, 15_500, 16_500, 17_500, 27_500},
		},
		{
			name:   "VIP change during the burst restarts it",
			resets: []int{1_500}, until: 14_000,
			want: []int{0, 1_000, 1_500, 2_500, 3_500, 13_500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAnnouncer(tt.interval)
			var got []int
			resets := tt.resets
			for ms := 0; ms <= tt.until; ms += 100 {
				if len(resets) > 0 && resets[0] == ms {
					a.Reset(at(ms))
					resets = resets[1:]
				}
				if a.Due(at(ms)) {
					got = append(got, ms)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("announcements at ms (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAnnouncerLate checks that a caller that polls late gets one
// announcement and a schedule counted from then, not a catch-up burst.
func TestAnnouncerLate(t *testing.T) {
	a := NewAnnouncer(0)
	if !a.Next().IsZero() {
		t.Fatalf("new Announcer Next = %v, want zero (due now)", a.Next())
	}
	steps := []struct {
		ms       int
		due      bool
		wantNext int
	}{
		{ms: 0, due: true, wantNext: 1_000},
		{ms: 999, due: false, wantNext: 1_000},
		{ms: 5_000, due: true, wantNext: 6_000}, // second of the burst, late
		{ms: 5_001, due: false, wantNext: 6_000},
		{ms: 60_000, due: true, wantNext: 70_000}, // third, very late
		{ms: 69_999, due: false, wantNext: 70_000},
		{ms: 70_000, due: true, wantNext: 80_000},
	}
	for _, s := range steps {
		if got := a.Due(at(s.ms)); got != s.due {
			t.Fatalf("Due(t0+%dms) = %v, want %v", s.ms, got, s.due)
		}
		if got := a.Next(); !got.Equal(at(s.wantNext)) {
			t.Fatalf("after t0+%dms Next = %v, want t0+%dms", s.ms, got.Sub(t0), s.wantNext)
		}
	}
}

// TestAnnouncerDefend checks RFC 5227 2.4 (c): at most one defence per
// DefendInterval.
func TestAnnouncerDefend(t *testing.T) {
	a := NewAnnouncer(0)
	steps := []struct {
		ms   int
		want bool
	}{
		{0, true},
		{1, false},
		{9_999, false},
		{10_000, true},
		{15_000, false},
		{25_000, true},
	}
	for _, s := range steps {
		if got := a.Defend(at(s.ms)); got != s.want {
			t.Fatalf("Defend(t0+%dms) = %v, want %v", s.ms, got, s.want)
		}
	}
}
