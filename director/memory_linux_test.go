//go:build linux

package director

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udr-lb/udr/config"
	"github.com/udr-lb/udr/conntrack"
	"github.com/udr-lb/udr/internal/host"
)

// TestNewChecksCapacity checks that New refuses, before it opens or
// allocates anything, a capacity out of range and one whose connection
// tables do not fit in the memory the process can take.
func TestNewChecksCapacity(t *testing.T) {
	const limit = 1 << 30
	saved := availableMemory
	availableMemory = func() (host.Memory, error) { return host.Memory{Bytes: limit, By: "cgroup memory.max"}, nil }
	t.Cleanup(func() { availableMemory = saved })

	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 192.0.2.100:80 -s rr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		capacity, workers int
		want              []string
	}{
		{-1, 1, []string{"--capacity -1 out of range 1..268435456"}},
		{1 << 40, 1, []string{"--capacity 1099511627776 out of range"}},
		{config.MaxCapacity, 1, []string{"capacity 268435456: the connection table needs", "only 1024 MiB more (cgroup memory.max)"}},
		{config.MaxCapacity, 4, []string{"capacity 268435456: the connection table needs"}},
	} {
		_, err := New(Config{
			Settings: Settings{Iface: "udrnosuch0", Capacity: tt.capacity, Workers: tt.workers},
			Given:    SetCapacity,
			Rules:    rules,
			Logger:   slog.New(slog.DiscardHandler),
		})
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("New with capacity %d, %d workers, %d bytes available: %v; want an error containing %q", tt.capacity, tt.workers, limit, err, w)
			}
		}
	}

	// The largest capacity that fits, and one entry more.
	fits := 1
	for conntrack.Memory(fits*2)+tableReserve <= limit {
		fits *= 2
	}
	for conntrack.Memory(fits+1)+tableReserve <= limit {
		step := 1
		for conntrack.Memory(fits+step*2)+tableReserve <= limit {
			step *= 2
		}
		fits += step
	}
	if err := checkTableMemory(fits, 1); err != nil {
		t.Errorf("capacity %d (%d bytes) with %d available: %v", fits, conntrack.Memory(fits), limit, err)
	}
	if err := checkTableMemory(fits+1, 1); err == nil {
		t.Errorf("capacity %d (%d bytes) with %d available: no error", fits+1, conntrack.Memory(fits+1), limit)
	}
}
