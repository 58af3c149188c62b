package health

import (
	"fmt"
	"strconv"
	"strings"
)

// StatusSet is a set of HTTP statuses 100..599, as keepalived's
// status_code takes them ("200 301-302"); its zero value is empty. It is
// comparable, as CheckConfig must be.
type StatusSet [8]uint64

// Add adds the statuses lo..hi, each within 100..599.
func (s *StatusSet) Add(lo, hi int) error {
	if lo < 100 || hi > 599 || lo > hi {
		return fmt.Errorf("status %s: want statuses within 100..599, low to high", statusRange(lo, hi))
	}
	for c := lo; c <= hi; c++ {
		i := c - 100
		s[i/64] |= 1 << (i % 64)
	}
	return nil
}

// Has reports whether code is in the set.
func (s StatusSet) Has(code int) bool {
	if code < 100 || code > 599 {
		return false
	}
	i := code - 100
	return s[i/64]&(1<<(i%64)) != 0
}

// Empty reports whether the set has no status.
func (s StatusSet) Empty() bool { return s == StatusSet{} }

// String lists the set as keepalived writes status_code: "200-299 304".
func (s StatusSet) String() string {
	var parts []string
	for c := 100; c <= 599; c++ {
		if !s.Has(c) {
			continue
		}
		hi := c
		for hi+1 <= 599 && s.Has(hi+1) {
			hi++
		}
		parts = append(parts, statusRange(c, hi))
		c = hi
	}
	return strings.Join(parts, " ")
}

// ParseStatusRange parses "301" or "200-299".
func ParseStatusRange(text string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(text, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := lo, error(nil)
	if isRange {
		hi, err2 = strconv.Atoi(b)
	}
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("status %q: want a status or a range such as 200-299", text)
	}
	return lo, hi, nil
}

func statusRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}
