//go:build linux

package health

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// namespace is the network namespace New ran in, where every probe socket
// is created.
type namespace struct {
	h netns.NsHandle
}

func currentNamespace() (namespace, error) {
	h, err := netns.Get()
	if err != nil {
		return namespace{}, fmt.Errorf("get network namespace: %w", err)
	}
	return namespace{h: h}, nil
}

func (n namespace) close() { n.h.Close() }

// do runs fn on a thread in the namespace, from a goroutine of its own so
// that the caller's thread never changes namespace. In a process that
// never changes namespace this costs a comparison; otherwise the thread
// enters the namespace for fn and leaves it afterwards (or dies with the
// goroutine if it cannot leave). Sockets keep the namespace they were
// created in, so their I/O may then happen on any thread.
func (n namespace) do(fn func() error) error {
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
			errc <- fmt.Errorf("enter the checker's network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(cur); err != nil {
			// Stay locked: the thread ends with this goroutine rather
			// than run other code in the wrong namespace.
			errc <- fmt.Errorf("leave the checker's network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
