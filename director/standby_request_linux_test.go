//go:build linux

package director

import (
	"strings"
	"testing"
)

// TestDecodeStandbyRequest: only {"standby": true|false} is taken; a body
// without the key, or with anything else, changes nothing.
func TestDecodeStandbyRequest(t *testing.T) {
	for _, tt := range []struct {
		body string
		want bool
		err  string
	}{
		{body: `{"standby": true}`, want: true},
		{body: ` {"standby":false} `, want: false},
		{body: `{}`, err: `no "standby" key`},
		{body: `{"standby": null}`, err: `no "standby" key`},
		{body: ``, err: `want {"standby": true}`},
		{body: `true`, err: `want {"standby": true}`},
		{body: `{"standby": "yes"}`, err: "decode JSON"},
		{body: `{"standby": true, "active": false}`, err: "unknown field"},
		{body: `{"standby": true}{"standby": false}`, err: "trailing data"},
	} {
		got, err := decodeStandbyRequest([]byte(tt.body))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.body, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one containing %q", tt.body, err, tt.err)
		case tt.err == "" && got != tt.want:
			t.Errorf("%q: %v, want %v", tt.body, got, tt.want)
		}
	}
}
