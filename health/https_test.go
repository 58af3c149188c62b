package health

import (
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestProbeHTTPS: an https check speaks TLS to a server whose certificate
// no one trusts (httptest's), sends Host's name as the TLS server name, and
// checks the status and, with a digest, the MD5 of the body.
func TestProbeHTTPS(t *testing.T) {
	body := "all good\n"
	sum := md5.Sum([]byte(body))
	digest := hex.EncodeToString(sum[:])
	snis := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(body))
		case "/big":
			w.Write([]byte(strings.Repeat("x", MaxDigestBody+1)))
		default:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		}
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		snis <- h.ServerName
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	server := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "https://"))
	tests := []struct {
		name  string
		check CheckConfig
		sni   string
		err   string
	}{
		{name: "200, no SNI for an address", check: CheckConfig{Kind: KindHTTPS, Path: "/ok"}},
		{name: "SNI from host", check: CheckConfig{Kind: KindHTTPS, Path: "/ok", Host: "www.example.com:8443"}, sni: "www.example.com"},
		{name: "status", check: CheckConfig{Kind: KindHTTPS, Path: "/down"}, err: "status 503, want 200"},
		{name: "digest", check: CheckConfig{Kind: KindHTTPS, Path: "/ok", Digest: digest}},
		{name: "wrong digest", check: CheckConfig{Kind: KindHTTPS, Path: "/ok", Digest: strings.Repeat("0", 32)},
			err: "body digest " + digest + ", want " + strings.Repeat("0", 32)},
		{name: "digest with the wrong status", check: CheckConfig{Kind: KindHTTPS, Path: "/down", Digest: digest}, err: "status 503, want 200"},
		{name: "body too long to digest", check: CheckConfig{Kind: KindHTTPS, Path: "/big", Digest: digest},
			err: "body longer than 1048576 bytes, too long to digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, probeOnce(t, server, tt.check), tt.err)
			if got := <-snis; got != tt.sni {
				t.Fatalf("server saw SNI %q, want %q", got, tt.sni)
			}
		})
	}
	t.Run("http to a TLS server", func(t *testing.T) {
		wantErr(t, probeOnce(t, server, CheckConfig{Kind: KindHTTP, Path: "/ok"}), "status 400, want 200")
	})
}

// TestProbeHTTPDigest: an http check with a digest passes on the body it
// names and fails on any other.
func TestProbeHTTPDigest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("version " + r.URL.Path))
	}))
	defer srv.Close()
	server := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	sum := md5.Sum([]byte("version /a"))
	check := CheckConfig{Kind: KindHTTP, Path: "/a", Digest: hex.EncodeToString(sum[:])}
	wantErr(t, probeOnce(t, server, check), "")
	check.Path = "/b"
	wantErr(t, probeOnce(t, server, check), "body digest")
}

// TestProbeSource: a check with a source comes from that address, and
// one whose source the director does not have fails (a result, not the
// checker's own failure).
func TestProbeSource(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan netip.Addr, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			from <- conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
			conn.Close()
		}
	}()
	server := ln.Addr().(*net.TCPAddr).AddrPort()
	wantErr(t, probeOnce(t, server, CheckConfig{Source: netip.MustParseAddr("127.0.0.2")}), "")
	if got := <-from; got != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("check came from %v, want 127.0.0.2", got)
	}
	err = probeOnce(t, server, CheckConfig{Source: netip.MustParseAddr("192.0.2.250")})
	wantErr(t, err, "from source 192.0.2.250: bind: cannot assign requested address")
	if LocalError(err) {
		t.Fatalf("LocalError(%v) = true, want a failure of the check", err)
	}
	err = probeOnce(t, udpServer(t, func(b []byte) []byte { return b }), CheckConfig{Kind: KindUDP, Source: netip.MustParseAddr("192.0.2.250")})
	wantErr(t, err, "from source 192.0.2.250: bind: cannot assign requested address")
}
