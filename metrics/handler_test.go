package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestServe scrapes a served handler over a real loopback connection, then
// stops the server.
func TestServe(t *testing.T) {
	h, err := Handler(NewCollector(fakeSnapshot, nil))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, Limits(4, nil)) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	for _, line := range []string{
		`udr_socket_kernel_drops_total{direction="rx"} 9`,
		`udr_service_connections_total{service="TCP 192.0.2.100:80"} 30`,
		"go_goroutines ", // the Go runtime's metrics are served too
	} {
		if !strings.Contains(string(body), "\n"+line) {
			t.Errorf("scrape lacks the line %q", line)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("listener still accepts after Serve returned")
	}
}
