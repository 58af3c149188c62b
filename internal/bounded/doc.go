// Package bounded serves HTTP on udr's own listeners, the control socket
// and the metrics endpoint, within fixed bounds, so that no client (a local
// user holding thousands of connections open, a request whose headers or
// body never end) can take the descriptors, memory and goroutines that the
// data path, the control socket and the health checks need.
//
// A Server holds at most Limits.MaxConns connections at once. When one
// more arrives, the connection that has waited longest without a request
// in progress (a keep-alive connection between requests, or a new one that
// has sent nothing) is closed to make room; when every connection is busy
// with a request, the newcomer waits, and those after it wait in the
// kernel's accept queue, holding no descriptor of udr's. (A request that
// reaches an idle connection at the moment it is closed is lost with it,
// as with any server's idle timeout: HTTP clients retry such requests.)
// Every read and write has a deadline (Limits' timeouts) and headers a
// size bound.
//
// Descriptors returns the process's descriptor limit, raised to the hard
// limit, and ConnCap cuts each listener's cap from it: the listeners
// together never take more than an eighth of the limit, whatever clients
// do, and the rest stays for the packet sockets, the control socket's own
// clients, reloads and health checks.
package bounded
