package keepalived

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzKeepalived: no input makes Parse or Translate panic or run unbounded;
// an include reads only the seed files (no file system access).
func FuzzKeepalived(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("include a\n"))
	f.Add([]byte("virtual_server_group g { 192.0.2.1-255 80\n 2001:db8::1-ffff 80 }\nvirtual_server group g { lb_kind DR }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxFileSize {
			return
		}
		// Every include reads the input itself again, up to the bounds.
		read := func(string) ([]byte, error) { return data, nil }
		stmts, _, err := ParseData(data, "keepalived.conf", read)
		if err != nil {
			return
		}
		r, err := Translate(stmts, "keepalived.conf", Options{Interface: "eth0"})
		if err == nil && r.YAML == "" {
			t.Fatal("no error and no udr.yaml")
		}
	})
}
