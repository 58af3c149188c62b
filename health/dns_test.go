package health

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildQuery(t *testing.T) {
	got, err := buildQuery(0xbeef, "www.example.com.", 28)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // id, RD, QDCOUNT 1
		3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		0, 28, 0, 1, // AAAA, IN
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("query (-want +got):\n%s", diff)
	}
}

func TestAppendName(t *testing.T) {
	tests := []struct {
		name string
		want []byte
		err  string
	}{
		{name: ".", want: []byte{0}},
		{name: "a.b", want: []byte{1, 'a', 1, 'b', 0}},
		{name: "", err: "empty name"},
		{name: "a..b", err: `label "": want 1..63 bytes`},
		{name: strings.Repeat("x", 64), err: "want 1..63 bytes"},
		{name: strings.Repeat("abcdefg.", 32), err: "257 bytes in wire form, want at most 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendName(nil, tt.name)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("wire form (-want +got):\n%s", diff)
			}
		})
	}
}
