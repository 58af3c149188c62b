package admin

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udr-lb/udr/service"
)

var update = flag.Bool("update", false, "rewrite testdata/rules/invalid/*.err from the current output")

// TestRulesRoundTrip reads every valid rules file, which is written exactly
// as `ipvsadm -S -n` prints it, and writes it back byte for byte.
func TestRulesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/rules/valid/*.rules")
	if err != nil || len(files) < 20 {
		t.Fatalf("valid rules files: %d, %v; want 20 or more", len(files), err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, warnings, err := ParseRules(bytes.NewReader(in), "rules")
			if err != nil {
				t.Fatalf("ParseRules: %v", err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			var out bytes.Buffer
			if err := WriteRules(&out, c); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(in), out.String()); diff != "" {
				t.Fatalf("WriteRules(ParseRules(%s)) (-in +out):\n%s", file, diff)
			}
		})
	}
}

// TestRulesInvalid checks the whole error text of each invalid rules file
// against its .err golden file.
func TestRulesInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/rules/invalid/*.rules")
	if err != nil || len(files) < 20 {
		t.Fatalf("invalid rules files: %d, %v; want 20 or more", len(files), err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := ParseRules(bytes.NewReader(in), "rules")
			if err == nil {
				t.Fatalf("ParseRules(%s) = %d services, want an error", file, len(c.Services))
			}
			if c != nil {
				t.Errorf("ParseRules(%s) returned a config with its error", file)
			}
			golden := strings.TrimSuffix(file, ".rules") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if diff := cmp.Diff(strings.TrimSuffix(string(want), "\n"), err.Error()); diff != "" {
				t.Fatalf("ParseRules(%s) error (-want +got):\n%s", file, diff)
			}
		})
	}
}

func TestParseRulesFriendly(t *testing.T) {
	in := "# web farm\n" +
		"\n" +
		"ipvsadm -A -t 192.0.2.100:80 -s wrr\r\n" +
		"  # indented comment\n" +
		"ipvsadm\n" +
		"-a\t-t 192.0.2.100:80  -r 192.0.2.12 -w 2\n" +
		"--add-server --tcp-service 192.0.2.100:80 --real-server=192.0.2.11:8080 --weight 1 -x 10 -y 5\n" +
		"-A -u 192.0.2.100:53 -s sh -b sh-port,sh-fallback -p -M 255.255.255.0" // no final newline
	want := "-A -t 192.0.2.100:80 -s wrr\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 1\n" +
		"-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 2\n" +
		"-A -u 192.0.2.100:53 -s sh -p 360 -M 255.255.255.0 -b sh-fallback,sh-port\n"
	c, warnings, err := ParseRules(strings.NewReader(in), "farm.rules")
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	wantWarnings := []string{"farm.rules:7: --add-server --tcp-service 192.0.2.100:80: " +
		"real server port 8080 ignored: direct routing forwards to the service port 80"}
	if diff := cmp.Diff(wantWarnings, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	var out strings.Builder
	if err := WriteRules(&out, c); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Fatalf("WriteRules (-want +got):\n%s", diff)
	}
	// The kernel list order: the last -a first. Thresholds are kept in the
	// config although -S does not write them.
	d := c.Services[0].Dests
	if d[0].Addr != netip.MustParseAddr("192.0.2.11") || d[0].UThreshold != 10 || d[0].LThreshold != 5 {
		t.Errorf("dests[0] = %+v, want 192.0.2.11 with thresholds 10/5", d[0])
	}
}

func TestParseRulesWarning(t *testing.T) {
	in := "-A -t 192.0.2.100:8099 -s rr\n-a -t 192.0.2.100:8099 -r 192.0.2.12:8099 -g -w 1\n-a -t 192.0.2.100:8099 -r 192.0.2.11:80 -g -w 1\n"
	_, warnings, err := ParseRules(strings.NewReader(in), "rules")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rules:3: -a -t 192.0.2.100:8099 -r 192.0.2.11:80: real server port 80 ignored: direct routing forwards to the service port 8099"}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Fatalf("warnings (-want +got):\n%s", diff)
	}
}

func TestWriteRulesQuirks(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{
			// print_sched_flags names only sh's flags for sh: flag-3 prints
			// as nothing after " -b ", and the line does not restore.
			name:  "flag-3 of sh prints empty",
			lines: []string{"-A -t 192.0.2.100:80 -s sh -b flag-3"},
			want:  "-A -t 192.0.2.100:80 -s sh -b \n",
		},
		{
			name:  "flag-1 of mh prints as mh-fallback",
			lines: []string{"-A -t 192.0.2.100:80 -s mh -b flag-1"},
			want:  "-A -t 192.0.2.100:80 -s mh -b mh-fallback\n",
		},
		{
			// 10.0.0.1, 100.0.0.1 and 192.168.0.1 compare in a cycle
			// (unsigned subtraction read as int); the kernel list is
			// [192.168.0.1, 100.0.0.1, 10.0.0.1] and glibc's merge sort
			// turns it into this.
			name: "address comparison wraps",
			lines: []string{"-A -t 192.0.2.100:80", "-a -t 192.0.2.100:80 -r 10.0.0.1",
				"-a -t 192.0.2.100:80 -r 100.0.0.1", "-a -t 192.0.2.100:80 -r 192.168.0.1"},
			want: "-A -t 192.0.2.100:80 -s wlc\n" +
				"-a -t 192.0.2.100:80 -r 192.168.0.1:80 -g -w 1\n" +
				"-a -t 192.0.2.100:80 -r 10.0.0.1:80 -g -w 1\n" +
				"-a -t 192.0.2.100:80 -r 100.0.0.1:80 -g -w 1\n",
		},
		{
			name:  "ipv4-compatible ipv6 prints as inet_ntop does",
			lines: []string{"-A -t [::192.0.2.100]:80", "-a -t [::192.0.2.100]:80 -r [2001:db8::c000:20b]:80"},
			want: "-A -t [::192.0.2.100]:80 -s wlc\n" +
				"-a -t [::192.0.2.100]:80 -r [2001:db8::c000:20b]:80 -g -w 1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &service.Config{}
			apply(t, c, tt.lines...)
			var out strings.Builder
			if err := WriteRules(&out, c); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Fatalf("WriteRules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFields(t *testing.T) {
	got := Fields("ipvsadm  -A\t-t 192.0.2.1:80\r\n")
	if diff := cmp.Diff([]string{"-A", "-t", "192.0.2.1:80"}, got); diff != "" {
		t.Fatalf("Fields (-want +got):\n%s", diff)
	}
}

func FuzzParseRules(f *testing.F) {
	files, _ := filepath.Glob("testdata/rules/*/*.rules")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("-A -t [::ffff:192.0.2.1]:80 -p -M 7\n") // IPv4-mapped VIP, IPv6 mask
	f.Add("-A -t 0300.0x0.02.0144:080 -p 0x10\n")  // inet_aton forms; strtol rejects hex
	f.Add("-A -t 192.0.2.1:80 -s sh -b flag-3\n")  // flag ipvsadm -S cannot write back
	f.Add("-A -u 192.0.2.1:53 -M 1.2 -o -p\n")     // non-prefix mask
	f.Fuzz(func(t *testing.T, in string) {
		c, _, err := ParseRules(strings.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteRules(&out, c); err != nil {
			t.Fatal(err)
		}
		if lossyFlags(c) {
			return
		}
		c2, _, err := ParseRules(bytes.NewReader(out.Bytes()), "fuzz")
		if err != nil {
			t.Fatalf("ParseRules(WriteRules(%q)) = %v\nrules:\n%s", in, err, out.String())
		}
		if diff := cmp.Diff(restored(c), restored(c2), addrCmp); diff != "" {
			t.Fatalf("config after save and restore of %q (-saved +restored):\n%s", in, diff)
		}
	})
}

// lossyFlags reports a service whose flags ipvsadm -S cannot write: flag-3
// of an sh or mh service.
func lossyFlags(c *service.Config) bool {
	for _, s := range c.Services {
		if (s.Scheduler == "sh" || s.Scheduler == "mh") && s.Flags&service.SchedFlag3 != 0 {
			return true
		}
	}
	return false
}

// restored returns c as a save and restore leaves it: thresholds dropped,
// and services and real servers in a canonical order, because a restore
// adds them in the saved order and so changes the lists' order.
func restored(c *service.Config) *service.Config {
	c = c.Clone()
	slices.SortFunc(c.Services, func(a, b *service.Service) int {
		if r := a.Addr.Compare(b.Addr); r != 0 {
			return r
		}
		if r := int(a.Proto) - int(b.Proto); r != 0 {
			return r
		}
		return int(a.Port) - int(b.Port)
	})
	for _, s := range c.Services {
		for i := range s.Dests {
			s.Dests[i].UThreshold, s.Dests[i].LThreshold = 0, 0
		}
		slices.SortFunc(s.Dests, func(a, b service.Dest) int {
			if r := a.Addr.Compare(b.Addr); r != 0 {
				return r
			}
			return int(a.Port) - int(b.Port)
		})
	}
	return c
}
