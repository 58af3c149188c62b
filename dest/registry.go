package dest

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Registry hands out IDs and owns the State behind each. Its capacity is
// fixed at creation, so that the packet path can index it without a lock
// while the control plane adds servers.
type Registry struct {
	mu     sync.Mutex
	ids    map[Key]ID
	keys   []Key   // index = ID: what each ID names
	states []State // index = ID; entry 0 unused
	next   atomic.Uint32
}

// NewRegistry returns a registry for at most max real servers over the
// lifetime of the daemon.
func NewRegistry(max int) *Registry {
	r := &Registry{ids: make(map[Key]ID), keys: make([]Key, max+1), states: make([]State, max+1)}
	r.next.Store(1)
	return r
}

// ID returns the ID of real server k, allocating one the first time k is
// seen. It fails only when the registry is full.
func (r *Registry) ID(k Key) (ID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[k]; ok {
		return id, nil
	}
	id := r.next.Load()
	if int(id) >= len(r.states) {
		return 0, fmt.Errorf("real server registry full (%d servers)", len(r.states)-1)
	}
	r.next.Store(id + 1)
	r.ids[k] = ID(id)
	r.keys[id] = k
	return ID(id), nil
}

// Key returns the real server that id names.
func (r *Registry) Key(id ID) Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[id]
}

// State returns the live state of id. It does not lock or allocate.
func (r *Registry) State(id ID) *State { return &r.states[id] }
