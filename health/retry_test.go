package health

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCheckerRetryInterval: with keepalived's retry 2 (fall 3) and
// delay_before_retry 1 s, a failed check of a server that is up is retried
// 1 s after it, until the third failure takes the server down; from then,
// and after a success, checks come every interval again.
func TestCheckerRetryInterval(t *testing.T) {
	c, f := newFake(t)
	now := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return now }
	check := CheckConfig{Interval: 10 * time.Second, Timeout: time.Second, RetryInterval: time.Second, Rise: 1, Fall: 3}
	if err := c.Set([]Target{{Service: web, Server: rs1, Check: check}}); err != nil {
		t.Fatal(err)
	}
	var ran []int // seconds at which a check ran
	for s := range 60 {
		switch s {
		case 10:
			f.fail[rs1] = true // the check at 10 fails, retried at 11, 12: down
		case 25:
			f.fail[rs1] = false // up at 32 (rise 1)
		case 41:
			f.fail[rs1] = true // fails at 42, retried at 43
		case 43:
			f.fail[rs1] = false // the retry at 43 passes: back to the interval
		}
		if step(c, now) > 0 {
			ran = append(ran, s)
		}
		now = now.Add(time.Second)
	}
	want := []int{0, 10, 11, 12, 22, 32, 42, 43, 53}
	if diff := cmp.Diff(want, ran); diff != "" {
		t.Fatalf("checks ran at (-want +got):\n%s", diff)
	}
	wantReports := []string{
		"192.0.2.11:80 up=false: 3 consecutive checks failed, last: connect 192.0.2.11:80: connection refused",
		"192.0.2.11:80 up=true: 1 consecutive checks passed",
	}
	if diff := cmp.Diff(wantReports, f.reports); diff != "" {
		t.Fatalf("reports (-want +got):\n%s", diff)
	}
}
