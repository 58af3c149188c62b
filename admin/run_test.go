package admin

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/service"
)

// richConfig has every kind of service udr can hold.
var richConfig = []string{
	"-A -u 192.0.2.100:53 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port",
	"-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 1",
	"-A -t 192.0.2.100:80 -s wrr",
	"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -w 0",
	"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -w 3",
	"-A -t 192.0.2.100:0 -p 7200 -s lc",
	"-a -t 192.0.2.100:0 -r 192.0.2.13 -w 2",
	"-A -u [2001:db8::100]:53 -s mh -p 60 -M 64 -b mh-port -o",
	"-a -u [2001:db8::100]:53 -r 2001:db8::12 -w 4",
	"-a -u [2001:db8::100]:53 -r 2001:db8::11 -w 4",
	"-A -t [2001:db8::100]:80 -s rr -b flag-2",
}

func newBackendWith(t *testing.T, lines []string) *fakeBackend {
	t.Helper()
	b := newFakeBackend()
	for _, line := range lines {
		cmd, err := ParseCommand(strings.Fields(line))
		if err == nil {
			err = b.Apply(cmd)
		}
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	return b
}

func run(t *testing.T, b Backend, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(args, b, strings.NewReader(stdin), &o, &e, Options{Resolver: fakeResolver{}})
	return o.String(), e.String(), code
}

func TestSaveRestoreRoundTrip(t *testing.T) {
	a := newBackendWith(t, richConfig)
	saved, stderr, code := run(t, a, "", "-S", "-n")
	if code != 0 || stderr != "" {
		t.Fatalf("-S -n: status %d, stderr %q", code, stderr)
	}
	b := newFakeBackend()
	if _, stderr, code := run(t, b, saved, "-R"); code != 0 || stderr != "" {
		t.Fatalf("-R: status %d, stderr %q", code, stderr)
	}
	// The real servers come back in sorted order, so compare sorted.
	sorted := func(c *service.Config) []service.Service {
		var s []service.Service
		for _, svc := range service.SortedServices(c) {
			cp := *svc
			cp.Dests = service.SortedDests(svc)
			s = append(s, cp)
		}
		return s
	}
	if diff := cmp.Diff(sorted(a.cfg), sorted(b.cfg), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("table after -S -n | -R (-want +got):\n%s", diff)
	}
}

func TestWriteRulesMatchesService(t *testing.T) {
	b := newBackendWith(t, richConfig)
	var want, got bytes.Buffer
	if err := WriteRules(&want, b.cfg); err != nil {
		t.Fatal(err)
	}
	writeRules(&got, b.cfg, newNamer(true, nil))
	if diff := cmp.Diff(want.String(), got.String()); diff != "" {
		t.Errorf("-S -n against WriteRules (-want +got):\n%s", diff)
	}
}

func TestLargeNum(t *testing.T) {
	for _, tt := range []struct {
		v     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99999999, false, " 99999999"},
		{100000000, false, "  100000K"},
		{999999999, false, "  999999K"},
		{1000000000, false, "    1000M"},
		{99999999999, false, "   99999M"},
		{100000000000, false, "     100G"},
		{99999999999999, false, "   99999G"},
		{100000000000000, false, "     100T"},
		{18446744073709551615, false, "18446744T"},
		{0, true, "        0"},
		{12345678, true, " 12345678"},
		{123456789, true, " 123456789"},
		{18446744073709551615, true, " 18446744073709551615"},
	} {
		if got := string(appendLargeNum(nil, tt.v, tt.exact)); got != tt.want {
			t.Errorf("print_largenum(%d, exact %v) = %q, want %q", tt.v, tt.exact, got, tt.want)
		}
	}
}

// brokenBackend fails every call with an error of its own.
type brokenBackend struct{ err error }

func (b brokenBackend) Apply(*Command) error           { return b.err }
func (b brokenBackend) Edit(func(*Editor) error) error { return b.err }
func (b brokenBackend) State(bool) (*State, error)     { return nil, b.err }

func TestBackendErrors(t *testing.T) {
	b := brokenBackend{errors.New("control socket closed")}
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"list", []string{"-L", "-n"}, ExitListFail},
		{"list service", []string{"-L", "-t", "192.0.2.100:80"}, ExitListFail},
		{"json", []string{"-L", "-j"}, ExitListFail},
		{"save", []string{"-S"}, ExitListFail},
		{"add", []string{"-A", "-t", "192.0.2.100:80"}, ExitKernel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, b, "", tt.args...)
			if code != tt.wantCode || stdout != "" || stderr != "udr: control socket closed\n" {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, nothing, \"udr: control socket closed\\n\"",
					code, stdout, stderr, tt.wantCode)
			}
		})
	}
}

func TestRestoreWithoutStdin(t *testing.T) {
	b := newFakeBackend()
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"-R"}, b, nil, &stdout, &stderr, Options{}); code != 0 || stdout.Len()+stderr.Len() != 0 {
		t.Errorf("-R with no stdin: status %d, stdout %q, stderr %q; want 0 and nothing", code, stdout.String(), stderr.String())
	}
}

// countingResolver counts the questions it is asked.
type countingResolver struct{ hosts, ports int }

func (r *countingResolver) HostName(netip.Addr) (string, bool) { r.hosts++; return "", false }
func (r *countingResolver) ServiceName(uint16, service.Proto) (string, bool) {
	r.ports++
	return "", false
}

func TestNamesAskedOnce(t *testing.T) {
	b := newBackendWith(t, richConfig[:5])
	r := &countingResolver{}
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"-L"}, b, nil, &stdout, &stderr, Options{Resolver: r}); code != 0 {
		t.Fatalf("-L: status %d, stderr %q", code, stderr.String())
	}
	// Addresses 192.0.2.100, .11, .12; ports 53/udp and 80/tcp.
	if r.hosts != 3 || r.ports != 2 {
		t.Errorf("resolver asked %d host and %d port names, want 3 and 2", r.hosts, r.ports)
	}
	if !strings.Contains(stdout.String(), "TCP  192.0.2.100:80 wrr\n") {
		t.Errorf("unresolved names are not numeric:\n%s", stdout.String())
	}
}

func TestParseServices(t *testing.T) {
	f, err := os.Open("testdata/services")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[portKey]string{
		{21, service.TCP}:  "ftp",
		{53, service.TCP}:  "domain",
		{53, service.UDP}:  "domain",
		{80, service.TCP}:  "http",
		{443, service.TCP}: "https",
		{443, service.UDP}: "https",
	}
	if diff := cmp.Diff(want, parseServices(f)); diff != "" {
		t.Errorf("parseServices (-want +got):\n%s", diff)
	}

	r := &SystemResolver{ServicesFile: "testdata/services"}
	if name, ok := r.ServiceName(80, service.TCP); name != "http" || !ok {
		t.Errorf("ServiceName(80, TCP) = %q, %v; want http, true", name, ok)
	}
	if name, ok := r.ServiceName(80, service.UDP); ok {
		t.Errorf("ServiceName(80, UDP) = %q, true; want false", name)
	}
	missing := &SystemResolver{ServicesFile: "testdata/no-such-file"}
	if name, ok := missing.ServiceName(80, service.TCP); ok {
		t.Errorf("ServiceName without a services file = %q, true; want false", name)
	}
}
