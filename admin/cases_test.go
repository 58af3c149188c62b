package admin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A case file under testdata/cases is the specification of one or more
// ipvsadm invocations, written from ipvsadm's format strings and messages
// (never generated from Run's output). Lines before the first section
// describe the case. Sections, each "-- name --" on a line of its own:
//
//	setup     ipvsadm command lines applied to the backend before the test,
//	          each of which must succeed
//	counters  statistics and connection counts (fakeBackend.setCounters)
//	conns     the connection list (fakeBackend.addConn)
//	args      one invocation per line, "ipvsadm ARGS..."
//	stdin     the standard input of every invocation
//	stdout    what the invocations write, concatenated; kept byte for byte,
//	stderr    trailing blanks included
//	status    the exit status of each invocation, one per line
//	saved     optional: the table afterwards, as WriteRules prints it
type testCase struct {
	sections map[string]string
}

func readCase(path string) (*testCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tc := &testCase{sections: make(map[string]string)}
	name := ""
	for _, line := range strings.SplitAfter(string(data), "\n") {
		t := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			name = t[3 : len(t)-3]
			if _, dup := tc.sections[name]; dup {
				return nil, fmt.Errorf("%s: section %q twice", path, name)
			}
			tc.sections[name] = ""
			continue
		}
		if name != "" {
			tc.sections[name] += line
		}
	}
	for _, want := range []string{"args", "stdout", "stderr", "status"} {
		if _, ok := tc.sections[want]; !ok {
			return nil, fmt.Errorf("%s: no %q section", path, want)
		}
	}
	for s := range tc.sections {
		switch s {
		case "setup", "counters", "conns", "args", "stdin", "stdout", "stderr", "status", "saved":
		default:
			return nil, fmt.Errorf("%s: unknown section %q", path, s)
		}
	}
	return tc, nil
}

func lines(s string) []string {
	var l []string
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) != "" {
			l = append(l, line)
		}
	}
	return l
}

func TestCases(t *testing.T) {
	paths, err := filepath.Glob("testdata/cases/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 40 {
		t.Fatalf("found %d cases in testdata/cases, want at least 40", len(paths))
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		t.Run(name, func(t *testing.T) {
			tc, err := readCase(path)
			if err != nil {
				t.Fatal(err)
			}
			b := newFakeBackend()
			for _, line := range lines(tc.sections["setup"]) {
				cmd, err := ParseCommand(Fields(line))
				if err == nil {
					err = b.Apply(cmd)
				}
				if err != nil {
					t.Fatalf("setup %q: %v", line, err)
				}
			}
			for _, line := range lines(tc.sections["counters"]) {
				if err := b.setCounters(line); err != nil {
					t.Fatal(err)
				}
			}
			for _, line := range lines(tc.sections["conns"]) {
				if err := b.addConn(line); err != nil {
					t.Fatal(err)
				}
			}

			var stdout, stderr bytes.Buffer
			var status []string
			for _, line := range lines(tc.sections["args"]) {
				args := strings.Fields(line)
				if len(args) == 0 || args[0] != "ipvsadm" {
					t.Fatalf("args line %q: want ipvsadm ARGS...", line)
				}
				stdin := strings.NewReader(tc.sections["stdin"])
				code := Run(args[1:], b, stdin, &stdout, &stderr, Options{Resolver: fakeResolver{}})
				status = append(status, strconv.Itoa(code))
			}
			if diff := cmp.Diff(tc.sections["stdout"], stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.sections["stderr"], stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(lines(tc.sections["status"]), status); diff != "" {
				t.Errorf("exit status (-want +got):\n%s", diff)
			}
			if want, ok := tc.sections["saved"]; ok {
				var got bytes.Buffer
				if err := WriteRules(&got, b.cfg); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got.String()); diff != "" {
					t.Errorf("table afterwards, as ipvsadm -S -n (-want +got):\n%s", diff)
				}
			}
		})
	}
}
