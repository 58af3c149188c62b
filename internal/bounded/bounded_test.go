package bounded

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testWait bounds every wait of these tests for an event that takes
// milliseconds when the code works.
const testWait = 20 * time.Second

func testLimits(n int) Limits {
	return Limits{
		MaxConns:          n,
		ReadHeaderTimeout: time.Minute,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    4 << 10,
	}
}

// serve runs a Server of h within lim on a loopback listener until t ends.
func serve(t *testing.T, h http.Handler, lim Limits) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(h, lim)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// request sends GET path on c and reads the response.
func request(t *testing.T, c net.Conn, br *bufio.Reader, path string) (*http.Response, error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testWait))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: udr\r\n\r\n", path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// TestIdleConnectionsMakeRoom opens ten times the cap of keep-alive
// connections, each idle after one request: the server never holds more
// than the cap, each newcomer is served, and the oldest idle connections
// are the ones closed.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	const limit = 4
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), testLimits(limit))
	var conns []net.Conn
	var readers []*bufio.Reader
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 10 * limit {
		c, err := net.DialTimeout("tcp", addr, testWait)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		br := bufio.NewReader(c)
		readers = append(readers, br)
		if resp, err := request(t, c, br, "/"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request on connection %d: %v", i, err)
		}
		if held := s.Stats().Held; held > limit {
			t.Fatalf("after connection %d the server holds %d connections, cap %d", i, held, limit)
		}
	}
	if st := s.Stats(); st.IdleClosed != 9*limit || st.Waited != 0 {
		t.Errorf("stats %+v, want %d idle connections closed and none waited", st, 9*limit)
	}
	// The first connections were closed by the server; the last are
	// still served.
	conns[0].SetDeadline(time.Now().Add(testWait))
	if _, err := readers[0].ReadByte(); err != io.EOF {
		t.Errorf("read on the first connection: %v, want EOF (closed to make room)", err)
	}
	last := len(conns) - 1
	if resp, err := request(t, conns[last], readers[last], "/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("second request on the newest connection: %v", err)
	}
}

// TestBusyConnectionsWait fills the cap with requests in progress: a new
// connection waits, none in progress is cut, and it is served when one
// ends.
func TestBusyConnectionsWait(t *testing.T) {
	const limit = 2
	var mu sync.Mutex
	inside, most := 0, 0
	entered := make(chan struct{}, 3)
	release := make(chan struct{})
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inside++
		most = max(most, inside)
		mu.Unlock()
		entered <- struct{}{}
		<-release
		mu.Lock()
		inside--
		mu.Unlock()
		io.WriteString(w, "ok")
	}), testLimits(limit))
	client := &http.Client{Timeout: testWait, Transport: &http.Transport{DisableKeepAlives: true}}
	errs := make(chan error, 3)
	get := func() {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		errs <- err
	}
	for range limit {
		go get()
		<-entered
	}
	go get()
	deadline := time.Now().Add(testWait)
	for !s.ln.waiting.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the third connection never waited for a slot")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("GET: %v", err)
		}
	}
	if st := s.Stats(); most != limit || st.Waited != 1 || st.IdleClosed != 0 {
		t.Errorf("%d requests at once, stats %+v; want %d, one waited, none closed", most, st, limit)
	}
}

// TestTimeouts checks that a connection that sends nothing, one that never
// ends its headers and one that never ends its body are closed by the
// server, and that headers beyond the bound are refused.
func TestTimeouts(t *testing.T) {
	lim := testLimits(8)
	lim.ReadHeaderTimeout = 200 * time.Millisecond
	lim.ReadTimeout = 400 * time.Millisecond
	lim.IdleTimeout = 200 * time.Millisecond
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		io.WriteString(w, "ok")
	}), lim)
	tests := []struct {
		name, send string
		want       string // the start of what the server answers before closing, "" for nothing
	}{
		{name: "nothing sent"},
		{name: "headers never end", send: "GET / HTTP/1.1\r\nHost: udr\r\n"},
		{name: "body never ends", send: "POST / HTTP/1.1\r\nHost: udr\r\nContent-Length: 100\r\n\r\n{", want: "HTTP/1.1 408 "},
		{name: "idle after a request", send: "GET / HTTP/1.1\r\nHost: udr\r\n\r\n", want: "HTTP/1.1 200 "},
		{name: "headers too large", send: "GET / HTTP/1.1\r\nHost: udr\r\nX: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", want: "HTTP/1.1 431 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, testWait)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testWait))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c) // until the server closes
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read: %v after %q (the server did not close the connection)", err, got)
			}
			if !strings.HasPrefix(string(got), tt.want) {
				t.Errorf("server answered %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConnCap(t *testing.T) {
	tests := []struct {
		limit uint64
		want  int
		cap   int
	}{
		{limit: 1 << 20, want: 64, cap: 64},
		{limit: 1024, want: 64, cap: 64},
		{limit: 512, want: 64, cap: 32},
		{limit: 256, want: 64, cap: 16},
		{limit: 8, want: 64, cap: 1},
	}
	for _, tt := range tests {
		if got := ConnCap(tt.limit, tt.want); got != tt.cap {
			t.Errorf("ConnCap(%d, %d) = %d, want %d", tt.limit, tt.want, got, tt.cap)
		}
	}
}

func TestDescriptors(t *testing.T) {
	n, err := Descriptors()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if n != lim.Cur || lim.Cur != lim.Max {
		t.Errorf("Descriptors() = %d, limit now %d (hard %d): want the hard limit in force", n, lim.Cur, lim.Max)
	}
}

func TestNewRefusesUnset(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with an unset ReadTimeout did not panic")
		}
	}()
	lim := testLimits(1)
	lim.ReadTimeout = 0
	New(http.NotFoundHandler(), lim)
}
