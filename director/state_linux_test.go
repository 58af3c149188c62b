//go:build linux

package director

import "testing"

func TestStatePath(t *testing.T) {
	for _, tc := range []struct {
		state, control, want string
	}{
		{"", "/run/udr/udr.sock", "/run/udr/udr.state"},
		{"", "/tmp/x/ctl.sock", "/tmp/x/udr.state"},
		{"", "off", ""},
		{"off", "/run/udr/udr.sock", ""},
		{"/var/lib/udr/conns", "off", "/var/lib/udr/conns"},
	} {
		s := Settings{StateFile: tc.state, ControlSocket: tc.control}
		if got := s.StatePath(); got != tc.want {
			t.Errorf("StateFile %q, ControlSocket %q: StatePath %q, want %q", tc.state, tc.control, got, tc.want)
		}
	}
}
