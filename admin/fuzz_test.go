package admin

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseArgs runs ipvsadm command lines (arguments separated by
// newlines) through ParseCommand and Run against a fake director with a
// service and two real servers. Neither may panic; a refusal is a
// *UsageError with ipvsadm's exit status (2 or 255); a command parsed
// holds what udr can apply (a VIP udr serves, a real server that is not
// its VIP, the service port), and Run exits with one of ipvsadm's
// statuses; the table afterwards saves and restores to itself.
func FuzzParseArgs(f *testing.F) {
	paths, _ := filepath.Glob("testdata/cases/*.txt")
	for _, path := range paths {
		tc, err := readCase(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range lines(tc.sections["args"]) {
			if args := strings.Fields(line); len(args) > 1 {
				f.Add(strings.Join(args[1:], "\n"))
			}
		}
	}
	f.Add("-A\n-t\n0.0.0.0:80")
	f.Add("-a\n-t\n192.0.2.100:80\n-r\n192.0.2.100")
	f.Add("-A\n-t\n[::ffff:192.0.2.1]:80\n-p\n-M\n7")
	f.Add("-Ln\n--stats\n--exact")
	f.Add("-e\n-t\n192.0.2.100:80\n-r\n192.0.2.11:80\n-w\n0\n-x\n2147483647\n-y\n-1")
	f.Fuzz(func(t *testing.T, in string) {
		var args []string
		if in != "" {
			args = strings.Split(in, "\n")
		}
		cmd, err := ParseCommand(args)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || (ue.Code != ExitUsage && ue.Code != ExitKernel) {
				t.Fatalf("ParseCommand(%q): %T %v, want a *UsageError with exit status 2 or 255", args, err, err)
			}
		} else {
			svc := &cmd.Service
			switch cmd.Op {
			case OpAddService, OpEditService:
				if err := CheckVIP(svc.Addr); err != nil {
					t.Fatalf("ParseCommand(%q) took it: %v", args, err)
				}
				if svc.Netmask < 0 || svc.Netmask > svc.Addr.BitLen() {
					t.Fatalf("ParseCommand(%q): netmask /%d for %s", args, svc.Netmask, svc.Addr)
				}
			case OpAddServer, OpEditServer:
				if err := CheckRealServer(svc.Addr, cmd.Dest.Addr); err != nil {
					t.Fatalf("ParseCommand(%q) took it: %v", args, err)
				}
				if cmd.Dest.Port != svc.Port {
					t.Fatalf("ParseCommand(%q): real server port %d, service port %d", args, cmd.Dest.Port, svc.Port)
				}
			}
		}

		b := newFakeBackend()
		for _, line := range []string{
			"-A -t 192.0.2.100:80 -s wrr -p 60",
			"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -w 2",
			"-a -t 192.0.2.100:80 -r 192.0.2.12:80",
		} {
			c, err := ParseCommand(Fields(line))
			if err == nil {
				err = b.Apply(c)
			}
			if err != nil {
				t.Fatalf("setup %q: %v", line, err)
			}
		}
		var stdout, stderr bytes.Buffer
		switch code := Run(args, b, strings.NewReader("-A -t 192.0.2.101:80 -s rr\n"), &stdout, &stderr, Options{Resolver: fakeResolver{}}); code {
		case ExitOK, ExitListFail, ExitUsage, ExitKernel:
		default:
			t.Fatalf("Run(%q) exit status %d", args, code)
		}
		var saved bytes.Buffer
		if err := WriteRules(&saved, b.cfg); err != nil {
			t.Fatal(err)
		}
		if lossyFlags(b.cfg) {
			return
		}
		c2, _, err := ParseRules(bytes.NewReader(saved.Bytes()), "saved")
		if err != nil {
			t.Fatalf("after Run(%q), the saved table does not restore: %v\n%s", args, err, saved.String())
		}
		var again bytes.Buffer
		if err := WriteRules(&again, c2); err != nil {
			t.Fatal(err)
		}
		if again.String() != saved.String() {
			t.Fatalf("after Run(%q), save, restore and save differ:\n%s\nthen\n%s", args, saved.String(), again.String())
		}
	})
}
