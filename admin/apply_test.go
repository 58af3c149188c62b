package admin

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/service"
)

// apply parses and applies each line to c, failing the test on any error.
func apply(t *testing.T, c *service.Config, lines ...string) {
	t.Helper()
	for _, l := range lines {
		cmd, err := ParseCommand(words(l))
		if err != nil {
			t.Fatalf("ParseCommand(%q): %v", l, err)
		}
		if err := Apply(c, cmd); err != nil {
			t.Fatalf("Apply(%q): %v", l, err)
		}
	}
}

func TestApplyKernelErrors(t *testing.T) {
	base := []string{
		"-A -t 192.0.2.100:80 -s wrr",
		"-a -t 192.0.2.100:80 -r 192.0.2.11 -w 2",
	}
	tests := []struct {
		name  string
		line  string
		errno syscall.Errno
		msg   string
	}{
		{"add existing service", "-A -t 192.0.2.100:80 -s rr", syscall.EEXIST, "Service already exists"},
		{"existence checked before scheduler", "-A -t 192.0.2.100:80 -s nosuch", syscall.EEXIST, "Service already exists"},
		{"unknown scheduler", "-A -t 192.0.2.100:81 -s wrrr", syscall.ENOENT, "Scheduler or persistence engine not found"},
		{"persistence engine", "-A -t 192.0.2.100:81 -p --pe sip", syscall.ENOENT, "Scheduler or persistence engine not found"},
		{"edit missing service", "-E -t 192.0.2.100:81", syscall.ESRCH, "No such service"},
		{"edit other protocol", "-E -u 192.0.2.100:80", syscall.ESRCH, "No such service"},
		{"edit unknown scheduler", "-E -t 192.0.2.100:80 -s nosuch", syscall.ENOENT, "Scheduler or persistence engine not found"},
		{"delete missing service", "-D -t 192.0.2.100:81", syscall.ESRCH, "No such service"},
		{"zero missing service", "-Z -t 192.0.2.100:81", syscall.ESRCH, "No such service"},
		{"add server to missing service", "-a -t 192.0.2.100:81 -r 192.0.2.11", syscall.ESRCH, "Service not defined"},
		{"add existing server", "-a -t 192.0.2.100:80 -r 192.0.2.11:8080", syscall.EEXIST, "Destination already exists"},
		{"lower threshold alone", "-a -t 192.0.2.100:80 -r 192.0.2.12 -y 5", syscall.ERANGE, "Numerical result out of range"},
		{"lower above upper", "-a -t 192.0.2.100:80 -r 192.0.2.12 -x 10 -y 20", syscall.ERANGE, "Numerical result out of range"},
		{"thresholds checked before existence", "-a -t 192.0.2.100:80 -r 192.0.2.11 -y 1", syscall.ERANGE, "Numerical result out of range"},
		{"multicast server", "-a -t 192.0.2.100:80 -r 224.0.0.1", syscall.EINVAL, "Invalid operation.  Possibly wrong module version, address not unicast, ..."},
		{"zero network server", "-a -t 192.0.2.100:80 -r 0.0.0.0", syscall.EINVAL, "Invalid operation.  Possibly wrong module version, address not unicast, ..."},
		{"broadcast server", "-a -t 192.0.2.100:80 -r 255.255.255.255", syscall.EINVAL, "Invalid operation.  Possibly wrong module version, address not unicast, ..."},
		{"edit server of missing service", "-e -t 192.0.2.100:81 -r 192.0.2.11", syscall.ESRCH, "Service not defined"},
		{"edit missing server", "-e -t 192.0.2.100:80 -r 192.0.2.12", syscall.ENOENT, "No such destination"},
		{"edit thresholds before existence", "-e -t 192.0.2.100:80 -r 192.0.2.12 -y 3", syscall.ERANGE, "Numerical result out of range"},
		{"delete server with its real port", "-d -t 192.0.2.100:80 -r 192.0.2.11:8080", syscall.ENOENT, "No such destination"},
		{"delete server of missing service", "-d -t 192.0.2.100:81 -r 192.0.2.11", syscall.ESRCH, "Service not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &service.Config{}
			apply(t, c, base...)
			before := c.Clone()
			cmd, err := ParseCommand(words(tt.line))
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.line, err)
			}
			err = Apply(c, cmd)
			var ke *KernelError
			if !errors.As(err, &ke) {
				t.Fatalf("Apply(%q) = %v, want *KernelError", tt.line, err)
			}
			if ke.Msg != tt.msg || ke.Errno != tt.errno || ke.ExitCode() != 255 || !errors.Is(err, tt.errno) {
				t.Fatalf("Apply(%q) = %q (%v, exit %d), want %q (%v, exit 255)",
					tt.line, ke.Msg, ke.Errno, ke.ExitCode(), tt.msg, tt.errno)
			}
			if diff := cmp.Diff(before, c, addrCmp); diff != "" {
				t.Fatalf("Apply(%q) changed the config on error (-before +after):\n%s", tt.line, diff)
			}
		})
	}
}

func TestApply(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	rip2 := a("192.0.2.12")
	tests := []struct {
		name  string
		lines []string
		want  *service.Config
	}{
		{
			name:  "new real server goes to the head",
			lines: []string{"-A -t 192.0.2.100:80 -s wrr", "-a -t 192.0.2.100:80 -r 192.0.2.11", "-a -t 192.0.2.100:80 -r 192.0.2.12:8080 -w 3"},
			want: &service.Config{Services: []*service.Service{{Key: tcp(vip, 80), Scheduler: "wrr", Netmask: 32, Dests: []service.Dest{
				{Addr: rip2, Port: 80, Weight: 3, LastWeight: 3},
				{Addr: rip1, Port: 80, Weight: 1, LastWeight: 1},
			}}}},
		},
		{
			name: "edit server is a full replace",
			lines: []string{"-A -t 192.0.2.100:80", "-a -t 192.0.2.100:80 -r 192.0.2.11 -w 5 -x 100 -y 10",
				"-e -t 192.0.2.100:80 -r 192.0.2.11 -x 50"},
			want: &service.Config{Services: []*service.Service{{Key: tcp(vip, 80), Scheduler: "wlc", Netmask: 32, Dests: []service.Dest{
				{Addr: rip1, Port: 80, Weight: 1, UThreshold: 50, LastWeight: 1},
			}}}},
		},
		{
			name: "quiescing keeps the last weight",
			lines: []string{"-A -t 192.0.2.100:80 -s mh", "-a -t 192.0.2.100:80 -r 192.0.2.11 -w 5",
				"-e -t 192.0.2.100:80 -r 192.0.2.11 -w 0", "-a -t 192.0.2.100:80 -r 192.0.2.12 -w 0"},
			want: &service.Config{Services: []*service.Service{{Key: tcp(vip, 80), Scheduler: "mh", Netmask: 32, Dests: []service.Dest{
				{Addr: rip2, Port: 80, Weight: 0, LastWeight: 0},
				{Addr: rip1, Port: 80, Weight: 0, LastWeight: 5},
			}}}},
		},
		{
			name: "edit service replaces scheduler flags and persistence, keeps servers",
			lines: []string{"-A -t 192.0.2.100:80 -s sh -b sh-port -p 600 -M 255.255.255.0", "-a -t 192.0.2.100:80 -r 192.0.2.11",
				"-E -t 192.0.2.100:80"},
			want: &service.Config{Services: []*service.Service{{Key: tcp(vip, 80), Scheduler: "wlc", Netmask: 32, Dests: []service.Dest{
				{Addr: rip1, Port: 80, Weight: 1, LastWeight: 1},
			}}}},
		},
		{
			name:  "mask of a service that is not persistent is the default",
			lines: []string{"-A -t 192.0.2.100:80 -M 255.255.255.0"},
			want:  &service.Config{Services: []*service.Service{{Key: tcp(vip, 80), Scheduler: "wlc", Netmask: 32}}},
		},
		{
			name: "delete server and service",
			lines: []string{"-A -t 192.0.2.100:80", "-A -u 192.0.2.100:53 -s rr", "-a -t 192.0.2.100:80 -r 192.0.2.11",
				"-a -t 192.0.2.100:80 -r 192.0.2.12", "-d -t 192.0.2.100:80 -r 192.0.2.12", "-D -u 192.0.2.100:53", "-Z"},
			want: &service.Config{Services: []*service.Service{{Key: tcp(vip, 80), Scheduler: "wlc", Netmask: 32, Dests: []service.Dest{
				{Addr: rip1, Port: 80, Weight: 1, LastWeight: 1},
			}}}},
		},
		{
			name:  "clear keeps timeouts, set leaves zero values alone",
			lines: []string{"--set 100 20 30", "-A -t 192.0.2.100:80", "-C", "--set 0 60 0"},
			want:  &service.Config{Timeouts: service.Timeouts{TCP: 100, TCPFin: 60, UDP: 30}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &service.Config{}
			apply(t, c, tt.lines...)
			if diff := cmp.Diff(tt.want, c, addrCmp); diff != "" {
				t.Fatalf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyNotAChange(t *testing.T) {
	for _, line := range []string{"-L -n", "-S", "-R", "-h", "--start-daemon master"} {
		cmd, err := ParseCommand(words(line))
		if err != nil {
			t.Fatalf("ParseCommand(%q): %v", line, err)
		}
		var ke *KernelError
		if err := Apply(&service.Config{}, cmd); err == nil || errors.As(err, &ke) {
			t.Errorf("Apply(%q) = %v, want a plain error", line, err)
		}
	}
}

func TestApplyDeleteDoesNotTouchSharedArrays(t *testing.T) {
	c := &service.Config{}
	apply(t, c, "-A -t 192.0.2.100:80", "-A -t 192.0.2.100:81",
		"-a -t 192.0.2.100:80 -r 192.0.2.11", "-a -t 192.0.2.100:80 -r 192.0.2.12")
	services, dests := c.Services, c.Services[0].Dests
	apply(t, c, "-d -t 192.0.2.100:80 -r 192.0.2.12", "-D -t 192.0.2.100:80")
	if services[0].Port != 80 || dests[0].Addr != netip.MustParseAddr("192.0.2.12") {
		t.Fatalf("delete rewrote the previous backing arrays: services[0] port %d, dests[0] %v", services[0].Port, dests[0].Addr)
	}
}
