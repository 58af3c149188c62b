package keepalived

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/config"
)

var update = flag.Bool("update", false, "rewrite the golden udr.yaml files of testdata/valid")

// TestValid translates every testdata/valid/*.conf and compares the result
// with its golden .yaml, which must load as a udr.yaml: the translation
// runs.
func TestValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.conf")
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 valid files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := Import(f, Options{Interface: "eth0"})
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			got := r.YAML
			if r.Notice != "" {
				got += "# notice: " + r.Notice + "\n"
			}
			for _, w := range r.Warnings {
				got += "# warning: " + w + "\n"
			}
			golden := strings.TrimSuffix(f, ".conf") + ".yaml"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("translation differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
			fc, cfg, _, err := config.Load(golden)
			if err != nil {
				t.Fatalf("the golden udr.yaml does not load: %v", err)
			}
			if fc.Interface != "eth0" || len(cfg.Services) != strings.Count(got, "\n  - protocol:") {
				t.Errorf("loaded %d services, interface %q", len(cfg.Services), fc.Interface)
			}
		})
	}
}

// TestInvalid reads every testdata/invalid/*.conf: each "# want: TEXT"
// line of the file must be in the error, which names file and line.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.conf")
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 invalid files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for _, l := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(l, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("no # want: line")
			}
			r, err := Import(f, Options{Interface: "eth0"})
			if err == nil {
				t.Fatalf("no error; translation:\n%s", r.YAML)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), "testdata/invalid/"+w) && !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if !strings.Contains(err.Error(), "testdata/invalid/") {
				t.Errorf("error names no file: %v", err)
			}
			if len(wants) > 1 {
				var joined interface{ Unwrap() []error }
				if !errors.As(err, &joined) || len(joined.Unwrap()) < len(wants) {
					t.Errorf("want %d errors joined, got %v", len(wants), err)
				}
			}
		})
	}
}

// TestSkippedNotice: the VRRP and global blocks are skipped with one
// notice that names each.
func TestSkippedNotice(t *testing.T) {
	r, err := Import("testdata/valid/10_vrrp_pair.conf", Options{Interface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"global_defs (testdata/valid/10_vrrp_pair.conf:2)", "vrrp_script", "vrrp_sync_group", "vrrp_instance (testdata/valid/10_vrrp_pair.conf:15)", "static_ipaddress", "static_routes"} {
		if !strings.Contains(r.Notice, want) {
			t.Errorf("notice %q does not name %q", r.Notice, want)
		}
	}
	if strings.Count(r.Notice, "\n") != 0 {
		t.Errorf("notice is not one line: %q", r.Notice)
	}
}

// TestPlaceholderInterface: without an interface, the translation says
// so, and the placeholder is a name udr.yaml takes (udr run refuses it).
func TestPlaceholderInterface(t *testing.T) {
	r, err := Import("testdata/valid/01_dr_tcp.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.YAML, "interface: \""+PlaceholderInterface+"\"") {
		t.Errorf("no placeholder interface:\n%s", r.YAML)
	}
}

// TestBounds: files, include depth, nesting and size are bounded, each
// with an error naming the bound.
func TestBounds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deep := write("deep.conf", strings.Repeat("a {\n", MaxNesting+1)+strings.Repeat("}\n", MaxNesting+1))
	if _, _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("deep nesting: %v", err)
	}
	big := write("big.conf", strings.Repeat("# comment\n", MaxFileSize/10+1))
	if _, _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	for i := range MaxFiles + 1 {
		write("many"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))+".inc", "\n")
	}
	many := write("many.conf", "include *.inc\n")
	if _, _, err := Parse(many); err == nil || !strings.Contains(err.Error(), "files: udr reads no more") {
		t.Errorf("many files: %v", err)
	}
	words := write("words.conf", "a"+strings.Repeat(" b", MaxWords+1)+"\n")
	if _, _, err := Parse(words); err == nil || !strings.Contains(err.Error(), "words on a line") {
		t.Errorf("many words: %v", err)
	}
	loop := write("loop.conf", "include loop.conf\n")
	if _, _, err := Parse(loop); err == nil || !strings.Contains(err.Error(), "deep") {
		t.Errorf("include loop: %v", err)
	}
}

// TestManyServices: group ranges and real servers expand within bounds.
func TestManyServices(t *testing.T) {
	var b strings.Builder
	b.WriteString("virtual_server_group g {\n")
	for i := range 20 {
		fmt.Fprintf(&b, "2001:db8::%x:1-ffff 80\n", i)
	}
	b.WriteString("}\n")
	for range 50 {
		b.WriteString("virtual_server group g {\n lb_kind DR\n real_server 2001:db8::1 80 { weight 1 }\n}\n")
	}
	stmts, _, err := ParseData([]byte(b.String()), "k.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Translate(stmts, "k.conf", Options{Interface: "eth0"}); err == nil || !strings.Contains(err.Error(), "more than 4096 services") {
		t.Errorf("want the bound on services, got %v", err)
	}
}

// TestStatusCode: status_code takes keepalived's statuses and ranges, its
// lines add up, no status_code is any 2xx, and a word keepalived reports
// as invalid is an error naming it.
func TestStatusCode(t *testing.T) {
	const head = "virtual_server 192.0.2.100 80 {\n lb_kind DR\n real_server 192.0.2.11 80 {\n  HTTP_GET {\n   url {\n    path /\n"
	const tail = "   }\n  }\n }\n}\n"
	for _, tc := range []struct{ lines, want, err string }{
		{"", `status: "200-299"`, ""},
		{"status_code 200\n", "status: 200\n", ""},
		{"status_code 200-204 301\nstatus_code 302 418\n", `status: "200-204 301-302 418"`, ""},
		{"status_code 100-599\n", `status: "100-599"`, ""},
		{"status_code 200 99\n", "", "k.conf:7: status_code 99: want a status 100..599"},
		{"status_code 300-200\n", "", "k.conf:7: status_code 300-200: want"},
		{"status_code 200-\n", "", "k.conf:7: status_code 200-: want"},
		{"status_code 2xx\n", "", "k.conf:7: status_code 2xx: want"},
	} {
		stmts, _, err := ParseData([]byte(head+tc.lines+tail), "k.conf", nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Translate(stmts, "k.conf", Options{Interface: "eth0"})
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: got %v, want an error %q", tc.lines, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.lines, err)
		case tc.err == "" && !strings.Contains(r.YAML, tc.want):
			t.Errorf("%q: no %q in\n%s", tc.lines, tc.want, r.YAML)
		case tc.err == "" && len(r.Warnings) != 0:
			t.Errorf("%q: warnings %q", tc.lines, r.Warnings)
		}
	}
}

// TestMiscTimeout: a misc check's timeout is misc_timeout, longer than
// delay_loop or not, and delay_loop without it or with misc_timeout 0, as
// keepalived runs it; a TCP check's connect_timeout still must be
// shorter than delay_loop, as udr's config needs.
func TestMiscTimeout(t *testing.T) {
	for _, tc := range []struct{ check, want, err string }{
		{"MISC_CHECK {\n misc_path /bin/true\n misc_timeout 30\n}", "timeout: 30s\n", ""},
		{"MISC_CHECK {\n misc_path /bin/true\n misc_timeout 10\n}", "timeout: 10s\n", ""},
		{"MISC_CHECK {\n misc_path /bin/true\n}", "timeout: 10s\n", ""},
		{"MISC_CHECK {\n misc_path /bin/true\n misc_timeout 0\n}", "timeout: 10s\n", ""},
		{"TCP_CHECK {\n connect_timeout 10\n}", "", "connect_timeout 10s: udr needs it shorter than delay_loop 10s"},
	} {
		conf := "virtual_server 192.0.2.100 80 {\n delay_loop 10\n lb_kind DR\n real_server 192.0.2.11 80 {\n" + tc.check + "\n }\n}\n"
		stmts, _, err := ParseData([]byte(conf), "k.conf", nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Translate(stmts, "k.conf", Options{Interface: "eth0"})
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: got %v, want an error %q", tc.check, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.check, err)
		case tc.err == "" && !strings.Contains(r.YAML, tc.want):
			t.Errorf("%q: no %q in\n%s", tc.check, tc.want, r.YAML)
		}
	}
}

// TestQuorumLowered: keepalived lowers a quorum above the real servers'
// weights summed to that sum, and a hysteresis not below the quorum to
// the quorum less 1, each with a warning; what it keeps is kept.
func TestQuorumLowered(t *testing.T) {
	for _, tc := range []struct {
		vs, want string
		warnings int
	}{
		{"quorum 3\n hysteresis 1", "quorum: 3\n    hysteresis: 1\n", 0},
		{"quorum 9\n hysteresis 1", "quorum: 5\n    hysteresis: 1\n", 1},
		{"quorum 4\n hysteresis 4", "quorum: 4\n    hysteresis: 3\n", 1},
		{"quorum 9\n hysteresis 7", "quorum: 5\n    hysteresis: 4\n", 2},
		{"hysteresis 2", "servers:", 1}, // quorum 1: hysteresis 0, none written
	} {
		conf := "virtual_server 192.0.2.100 80 {\n lb_kind DR\n " + tc.vs +
			"\n real_server 192.0.2.11 80 {\n  weight 2\n }\n real_server 192.0.2.12 80 {\n  weight 3\n }\n}\n"
		stmts, _, err := ParseData([]byte(conf), "k.conf", nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Translate(stmts, "k.conf", Options{Interface: "eth0"})
		if err != nil {
			t.Errorf("%q: %v", tc.vs, err)
			continue
		}
		if !strings.Contains(r.YAML, "scheduler: wlc\n    "+tc.want) || len(r.Warnings) != tc.warnings {
			t.Errorf("%q: want %q and %d warnings, got\n%s%q", tc.vs, tc.want, tc.warnings, r.YAML, r.Warnings)
		}
	}
}
