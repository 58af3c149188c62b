//go:build linux

package nsrun_test

import (
	"net"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/udr-lb/udr/internal/netlab"
	"github.com/udr-lb/udr/internal/nsrun"
)

// TestPrivilegedDo: fn runs in the namespace (it sees the namespace's
// interfaces), and the calling thread's namespace is left as it was.
func TestPrivilegedDo(t *testing.T) {
	lab := netlab.ForTest(t, "nsrun")
	h, err := lab.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	handle, err := netns.GetFromName(h.Namespace())
	if err != nil {
		t.Fatal(err)
	}
	ns := nsrun.FromHandle(handle)
	defer ns.Close()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	var names []string
	if err := ns.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "lo" {
		t.Errorf("interfaces inside the new namespace: %q, want only lo", names)
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Errorf("the caller's namespace changed")
	}
	cur, err := nsrun.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	ran := false
	if err := cur.Do(func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Do in the current namespace: ran %v, err %v", ran, err)
	}
}
