package admin

import (
	"strings"
	"testing"
)

// endless yields line again and again, without end.
type endless struct {
	line string
	off  int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], e.line[e.off:])
		n += c
		e.off = (e.off + c) % len(e.line)
	}
	return n, nil
}

// TestParseRulesBounds checks that ParseRules reads a bounded amount: a
// line longer than MaxRulesLine and input beyond MaxRulesSize are errors
// (an endless input ends), and of many faulty lines the first 100 are
// reported and the others counted.
func TestParseRulesBounds(t *testing.T) {
	long := "-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r 192.0.2.11:80 " + strings.Repeat("-g ", 2000) + "\n"
	if _, _, err := ParseRules(strings.NewReader(long), "rules"); err == nil || err.Error() != "rules:2: line longer than 4096 bytes: udr reads no longer line" {
		t.Errorf("a line of %d bytes: %v, want rules:2: line longer than 4096 bytes", len(long), err)
	}
	if _, _, err := ParseRules(&endless{line: "\x00"}, "rules"); err == nil || !strings.HasPrefix(err.Error(), "rules:1: line longer than 4096 bytes") {
		t.Errorf("an endless line: %v, want rules:1: line longer than 4096 bytes", err)
	}
	comment := "#" + strings.Repeat("x", MaxRulesLine-2) + "\n"
	if _, _, err := ParseRules(&endless{line: comment}, "rules"); err == nil || err.Error() != "rules: larger than 67108864 bytes, the most udr reads of rules" {
		t.Errorf("endless comments: %v, want rules: larger than 67108864 bytes", err)
	}
	exact := strings.Repeat(comment, MaxRulesSize/len(comment)-1) + "-A -t 192.0.2.100:80 -s rr\n"
	exact += strings.Repeat("#", MaxRulesSize-len(exact))
	if cfg, _, err := ParseRules(strings.NewReader(exact), "rules"); err != nil || len(cfg.Services) != 1 {
		t.Errorf("rules of exactly %d bytes: %v", len(exact), err)
	}

	bad := strings.Repeat("-A -t 192.0.2.100:80 -s nosuch\n", 150)
	_, _, err := ParseRules(strings.NewReader(bad), "rules")
	if err == nil {
		t.Fatal("150 faulty lines: no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 101 || !strings.HasPrefix(lines[99], "rules:100: ") || lines[100] != "rules: 50 more faulty lines" {
		t.Errorf("150 faulty lines: %d lines of error, the last two %q", len(lines), lines[max(len(lines)-2, 0):])
	}
}
