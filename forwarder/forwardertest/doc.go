// Package forwardertest provides a forwarder.Conn backed by channels, so
// that the forwarder's Worker runs in tests without a socket or root, as
// wireguard-go's tuntest and bindtest do for its devices. Tests feed
// batches in, read what the worker wrote, make writes fail, and stop the
// worker with a deadline or Close, as on a live socket.
package forwardertest
