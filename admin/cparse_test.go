package admin

import "testing"

func TestCParse(t *testing.T) {
	aton := []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"192.0.2.1", 0xc0000201, true},
		{"192.0.513", 0xc0000201, true}, // a.b.c: c fills 16 bits
		{"0300.0.02.1", 0xc0000201, true},
		{"0xc0.0.2.1", 0xc0000201, true},
		{"3221225985", 0xc0000201, true},
		{"192.0.2.1 trailing", 0xc0000201, true}, // glibc stops at a blank
		{"192.0.2.256", 0, false},
		{"192.0.2", 0xc0000002, true},
		{"192.0.2.1.", 0, false},
		{"08.0.0.1", 0, false},
		{"0x", 0, false},
		{"", 0, false},
		{"1.2.3.4.5", 0, false},
		{"4294967296", 0, false},
	}
	for _, tt := range aton {
		got, ok := inetAton(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("inetAton(%q) = %#x, %v; want %#x, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	num := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"80", 80, true},
		{"+80", 80, true},
		{" 80", 80, true},
		{"080", 80, true},
		{"80 ", 0, false},
		{"0x50", 0, false},
		{"", 0, false},
		{"-0", 0, true},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range num {
		got, ok := stringToNumber(tt.in, 0, 65535)
		if got != tt.want || ok != tt.ok {
			t.Errorf("stringToNumber(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	if got := atoi("4294967360"); got != 64 {
		t.Errorf("atoi(4294967360) = %d, want 64 (C's truncation to int)", got)
	}
}
