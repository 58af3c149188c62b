package keepalived

import (
	"math"
	"strconv"
	"strings"
	"time"
)

func (t *translator) port(st *Stmt, s string) (uint16, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.errorf(st, "%s: port %q is not a number 0..65535", st.Keyword(), s)
		return 0, false
	}
	return uint16(n), true
}

// one returns the single argument of st, or reports it.
func (t *translator) one(st *Stmt) (string, bool) {
	if len(st.Args()) != 1 {
		t.errorf(st, "%s: want one value, got %d", st.Keyword(), len(st.Args()))
		return "", false
	}
	if st.HasBlock {
		t.errorf(st, "%s: takes no block", st.Keyword())
		return "", false
	}
	return st.Args()[0], true
}

// flag checks a keyword that takes no value, or an optional boolean
// (keepalived's check_true_false).
func (t *translator) flag(st *Stmt) bool {
	switch len(st.Args()) {
	case 0:
		return true
	case 1:
		switch strings.ToLower(st.Args()[0]) {
		case "true", "on", "yes":
			return true
		case "false", "off", "no":
			return false
		}
	}
	t.errorf(st, "%s: want no value, or true or false", st.Keyword())
	return false
}

// timer reads keepalived's timer: seconds, with decimals.
func (t *translator) timer(st *Stmt, min time.Duration) (time.Duration, bool) {
	s, ok := t.one(st)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxTimer.Seconds() {
		t.errorf(st, "%s: %q is not a number of seconds 0..%d", st.Keyword(), s, int(maxTimer.Seconds()))
		return 0, false
	}
	d := time.Duration(math.Round(f*1000)) * time.Millisecond
	if d < min {
		t.errorf(st, "%s %s: udr needs at least %v", st.Keyword(), s, min)
		return 0, false
	}
	return d, true
}

func (t *translator) uint(st *Stmt, max uint64) (uint64, bool) {
	s, ok := t.one(st)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		t.errorf(st, "%s: %q is not a number 0..%d", st.Keyword(), s, max)
		return 0, false
	}
	return n, true
}

// commonParam handles the checker settings that a virtual_server, a
// real_server or a checker may give; false when st is none of them.
func (t *translator) commonParam(st *Stmt, p *params) bool {
	switch st.Keyword() {
	case "delay_loop":
		if d, ok := t.timer(st, 100*time.Millisecond); ok {
			p.delayLoop = d
		}
	case "delay_before_retry":
		if d, ok := t.timer(st, 0); ok {
			p.delayBeforeRetry, p.delayBeforeRetrySt = d, st
		}
	case "retry", "nb_get_retry":
		if n, ok := t.uint(st, 999); ok {
			if n == 0 {
				// keepalived: "retry value invalid", ignored.
				t.warnf(st, "%s 0: ignored, as keepalived does", st.Keyword())
			} else {
				p.retry = int(n)
			}
		}
	case "warmup":
		if _, ok := t.timer(st, 0); ok {
			t.warnf(st, "warmup: ignored, udr starts checking at once")
		}
	case "connect_timeout":
		if d, ok := t.timer(st, time.Millisecond); ok {
			p.connectTimeout, p.connectTimeoutSt = d, st
		}
	case "inhibit_on_failure":
		p.inhibit = t.flag(st)
	case "alpha":
		p.alpha = t.flag(st)
	case "virtualhost":
		if v, ok := t.one(st); ok {
			p.virtualhost = v
		}
	case "smtp_alert":
		t.warnf(st, "smtp_alert: ignored, udr sends no mail")
	default:
		return false
	}
	return true
}
