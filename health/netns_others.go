//go:build !linux

package health

// namespace is a no-op where network namespaces do not exist.
type namespace struct{}

func currentNamespace() (namespace, error) { return namespace{}, nil }

func (namespace) close() {}

func (namespace) do(fn func() error) error { return fn() }
