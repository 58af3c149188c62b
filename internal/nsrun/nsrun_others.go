//go:build !linux

package nsrun

// Namespace is a no-op where network namespaces do not exist.
type Namespace struct{}

// Current returns the only namespace there is.
func Current() (Namespace, error) { return Namespace{}, nil }

// Close does nothing.
func (Namespace) Close() error { return nil }

// Do runs fn.
func (Namespace) Do(fn func() error) error { return fn() }
