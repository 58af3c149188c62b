package forwarder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/udr-lb/udr/dest"
	"github.com/udr-lb/udr/service"
)

// TestCompileScales compiles tables as large as a restore of many lines
// makes them, each well within a bound that a compile whose cost grows with
// the square of a service's servers (one scheduler per -a replayed, one
// scan of an address's servers per server) exceeds many times over: a wrr
// service of 30,000 real servers on two addresses, and 60,000 services of
// one server each.
func TestCompileScales(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles tables of 60,000 real servers")
	}
	const bound = 30 * time.Second
	for _, tc := range []struct {
		name      string
		svcs, per int
		scheduler string
	}{
		{"one wrr service of 30000 servers", 1, 30000, "wrr"},
		{"60000 wlc services of one server", 60000, 1, "wlc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &service.Config{}
			for i := range tc.svcs {
				s := &service.Service{
					Key:       service.Key{Proto: service.TCP, Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i/3500)}), Port: uint16(10000 + i%3500)},
					Scheduler: tc.scheduler,
					Netmask:   32,
				}
				for j := range tc.per {
					// Two addresses: the ports tell the servers apart.
					s.Dests = append(s.Dests, service.Dest{
						Addr:   netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + j%2)}),
						Port:   uint16(1 + j/2),
						Weight: int32(1 + j%3), LastWeight: int32(1 + j%3),
					})
				}
				cfg.Services = append(cfg.Services, s)
			}
			start := time.Now()
			if _, err := Compile(cfg, dest.NewRegistry(1<<16), NewNeighbors(1<<16), nil, Options{}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("compiled in %v", took.Round(time.Millisecond))
			if took > bound {
				t.Errorf("compile took %v, want well under %v", took.Round(time.Millisecond), bound)
			}
		})
	}
}
