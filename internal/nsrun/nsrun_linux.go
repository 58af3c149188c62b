//go:build linux

package nsrun

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Namespace is a handle to a network namespace.
type Namespace struct {
	h netns.NsHandle
}

// Current returns the network namespace of the calling thread. The caller
// must Close it.
func Current() (Namespace, error) {
	h, err := netns.Get()
	if err != nil {
		return Namespace{}, fmt.Errorf("get network namespace: %w", err)
	}
	return Namespace{h: h}, nil
}

// FromHandle wraps an open namespace handle; Close closes it.
func FromHandle(h netns.NsHandle) Namespace { return Namespace{h: h} }

// Close releases the handle.
func (n Namespace) Close() error { return n.h.Close() }

// Do runs fn on a thread in the namespace, from a goroutine of its own so
// that the caller's thread never changes namespace, and returns fn's error.
// Where the thread is in the namespace already it costs a comparison;
// otherwise the thread enters the namespace for fn and leaves it afterwards,
// or dies with the goroutine if it cannot leave, rather than run other code
// in the wrong namespace. Sockets keep the namespace they were created in,
// so their I/O may then happen on any thread; goroutines that fn starts run
// elsewhere.
func (n Namespace) Do(fn func() error) error {
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
		if cur.Equal(n.h) {
			runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		if err := netns.Set(n.h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(cur); err != nil {
			errc <- fmt.Errorf("leave network namespace: %w", err)
			return // the thread stays locked and ends with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
