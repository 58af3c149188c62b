//go:build linux

package director

import (
	"strings"
	"testing"
	"time"
)

// A trace request is checked whole before any trace starts: its filter,
// count and duration, and its JSON.
func TestDecodeTraceRequest(t *testing.T) {
	for _, tc := range []struct {
		body  string
		count int
		dur   time.Duration
		err   string
	}{
		{body: `{}`, count: DefaultTraceCount, dur: DefaultTraceDuration},
		{body: `{"filter": ["client", "198.51.100.0/24", "new"], "count": 5, "duration": "2s", "frames": true}`, count: 5, dur: 2 * time.Second},
		{body: `{"filter": ["client"]}`, err: `"client" needs a value`},
		{body: `{"filter": ["verdict", "sent"]}`, err: `verdict "sent"`},
		{body: `{"count": -1}`, err: "count -1: want 1 to 1000000 frames"},
		{body: `{"count": 1000001}`, err: "count 1000001"},
		{body: `{"duration": "11m"}`, err: `duration "11m": want more than 0 and at most 10m0s`},
		{body: `{"duration": "0s"}`, err: `duration "0s"`},
		{body: `{"duration": "soon"}`, err: `duration "soon"`},
		{body: `{"filters": []}`, err: `unknown field "filters"`},
		{body: `{} {}`, err: "trailing data"},
		{body: `[]`, err: "want a JSON object"},
	} {
		req, _, dur, err := decodeTraceRequest([]byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one with %q", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || req.Count != tc.count || dur != tc.dur {
			t.Errorf("%s: count %d, duration %v, %v; want %d, %v", tc.body, req.Count, dur, err, tc.count, tc.dur)
		}
	}
}
