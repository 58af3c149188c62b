//go:build linux

package director

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNamespace runs fn on a thread in the director's network namespace (the
// one New was called in), where its netlink queries and interface lookups
// must happen. Control requests arrive on goroutines that may run on any
// thread; in a process that never changes namespace this costs a
// comparison.
func (d *Director) inNamespace(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get network namespace: %w", err)
			return
		}
		defer cur.Close()
		if cur.Equal(d.ns) {
			runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		if err := netns.Set(d.ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter the director's network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(cur); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// rather than run other code in the wrong namespace.
			errc <- fmt.Errorf("leave the director's network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
