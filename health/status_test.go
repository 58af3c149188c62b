package health

import (
	"strings"
	"testing"
)

func TestStatusSet(t *testing.T) {
	var s StatusSet
	for _, r := range []string{"200-299", "304", "599", "100"} {
		lo, hi, err := ParseStatusRange(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(lo, hi); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.String(), "100 200-299 304 599"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for code, want := range map[int]bool{99: false, 100: true, 199: false, 200: true, 263: true, 299: true, 300: false, 304: true, 598: false, 599: true, 600: false} {
		if s.Has(code) != want {
			t.Errorf("Has(%d) = %v, want %v", code, !want, want)
		}
	}
	if (StatusSet{}).Empty() != true || s.Empty() {
		t.Error("Empty wrong")
	}
	for _, bad := range []struct{ text, err string }{
		{"2xx", `status "2xx": want a status or a range such as 200-299`},
		{"299-200", "status 299-200: want statuses within 100..599, low to high"},
		{"99", "status 99: want statuses within 100..599"},
		{"200-600", "status 200-600: want statuses within 100..599"},
	} {
		lo, hi, err := ParseStatusRange(bad.text)
		if err == nil {
			err = s.Add(lo, hi)
		}
		if err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%q: error %v, want %q", bad.text, err, bad.err)
		}
	}
}
