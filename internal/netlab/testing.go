//go:build linux

package netlab

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// namePrefix starts the name of every namespace netlab creates; the process
// id follows it.
const namePrefix = "udr-"

// netnsDir is where `ip netns` and netns.NewNamed bind namespaces.
const netnsDir = "/run/netns"

// docPrefixes are the only address ranges a lab may use: RFC 5737 and
// RFC 3849.
var docPrefixes = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// ValidPrefix reports an error unless p lies entirely inside one of the
// documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24
// (RFC 5737) or 2001:db8::/32 (RFC 3849): a lab never uses an address that
// could belong to someone.
func ValidPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("address %q: not a valid prefix", p)
	}
	for _, d := range docPrefixes {
		if d.Contains(p.Addr()) && p.Bits() >= d.Bits() {
			return nil
		}
	}
	return fmt.Errorf("address %q: outside the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32", p)
}

func validPrefixes(ps []netip.Prefix) error {
	for _, p := range ps {
		if err := ValidPrefix(p); err != nil {
			return err
		}
	}
	return nil
}

// capNetAdmin and capSysAdmin are the capability bits a lab needs: netlink
// configuration, and setns(2) plus the bind mount of a named namespace.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

var (
	probeOnce   sync.Once
	probeReason string
)

// Privileged skips t, saying why, unless the process can build a lab: it
// needs CAP_NET_ADMIN and CAP_SYS_ADMIN and must manage to create and delete
// a named network namespace. When the environment has CI=true it fails t
// instead, so that CI never passes by skipping.
func Privileged(t testing.TB) {
	t.Helper()
	probeOnce.Do(func() { probeReason = probe() })
	if probeReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("privileged test cannot run, and CI=true forbids skipping: %s", probeReason)
	}
	t.Skipf("skipping privileged test: %s", probeReason)
}

// probe returns why a lab cannot be built here, or "".
func probe() string {
	caps, err := effectiveCaps()
	if err != nil {
		return err.Error()
	}
	if caps&(1<<capNetAdmin) == 0 || caps&(1<<capSysAdmin) == 0 {
		return fmt.Sprintf("need CAP_NET_ADMIN and CAP_SYS_ADMIN (run as root); effective capabilities are %#x", caps)
	}
	name := fmt.Sprintf("%s%d-probe", namePrefix, os.Getpid())
	h, err := newNamedNS(name)
	if err != nil {
		return fmt.Sprintf("cannot create a network namespace: %v", err)
	}
	h.Close()
	if err := deleteNamed(name); err != nil {
		return fmt.Sprintf("cannot delete network namespace %s: %v", name, err)
	}
	return ""
}

// effectiveCaps reads CapEff from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// Cleanup registers lab.Close with t.Cleanup, and checks afterwards that no
// namespace of the lab is left.
func Cleanup(t testing.TB, lab *Lab) {
	t.Helper()
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		if left := Leftovers(lab.Prefix()); len(left) > 0 {
			t.Errorf("namespaces left after closing the lab: %q", left)
		}
	})
}

// ForTest is Privileged, New and Cleanup in one call; it fails t if New
// fails.
func ForTest(t testing.TB, name string) *Lab {
	t.Helper()
	Privileged(t)
	lab, err := New(name)
	if err != nil {
		t.Fatalf("new lab: %v", err)
	}
	Cleanup(t, lab)
	return lab
}

// Leftovers returns the names of the network namespaces in /run/netns that
// start with prefix, in directory order.
func Leftovers(prefix string) []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

var stalePID = regexp.MustCompile(`^` + namePrefix + `([0-9]+)-`)

// RemoveStale deletes the namespaces named "udr-<pid>-..." whose process no
// longer exists (a test binary killed by its timeout never runs its
// cleanups), and returns their names.
func RemoveStale() ([]string, error) {
	var removed []string
	var errs []error
	for _, name := range Leftovers(namePrefix) {
		m := stalePID.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || processExists(pid) {
			continue
		}
		h, err := netns.GetFromPath(filepath.Join(netnsDir, name))
		if err == nil {
			errs = append(errs, killProcessesIn(h))
			h.Close()
		}
		if err := deleteNamed(name); err != nil {
			errs = append(errs, fmt.Errorf("delete stale namespace %s: %w", name, err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

func processExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// deleteNamed removes the bind mount /run/netns/name and its file; a name
// that is not (or no longer) mounted is only removed.
func deleteNamed(name string) error {
	p := filepath.Join(netnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
