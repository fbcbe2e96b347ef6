package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
)

// rawGet writes a GET on c and reads its response through br.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response to %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestMaxRequestsPerConnHTTP1(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg := testServerConfig()
	cfg.MaxRequestsPerConn = 3
	_, addr, _ := runServer(t, cfg, p)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang only
	br := bufio.NewReader(c)
	for i := 1; i <= 3; i++ {
		resp := rawGet(t, c, br, "/")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if resp.Close != (i == 3) {
			t.Fatalf("request %d: Connection: close is %v, want it on the third only", i, resp.Close)
		}
	}
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("connection still open after its third request (read: %v)", err)
	}
}

// Over HTTP/2 the cap sends GOAWAY: a client making sequential requests needs a new
// connection after every second one.
func TestMaxRequestsPerConnHTTP2(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	cfg.MaxRequestsPerConn = 2
	s, _, _ := runServer(t, cfg, p)

	var dials atomic.Int32
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}}}
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://" + s.Addrs()[1].String() + "/"
	for i := range 6 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("request %d: %s %d, want HTTP/2 200", i+1, resp.Proto, resp.StatusCode)
		}
	}
	if n := dials.Load(); n < 3 {
		t.Fatalf("6 requests used %d connections, want at least 3 with 2 requests per connection", n)
	}
}

// A WebSocket upgrade the backend refuses leaves the connection closed: the HTTP/1 guard
// passed the bytes after the upgrade request through unframed.
func TestRefusedUpgradeClosesConnection(t *testing.T) {
	be := newBackend(t, "app", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	_, addr, _ := runServer(t, testServerConfig(), p)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	smuggled := "GET /SMUGGLED HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	if _, err := io.WriteString(c, req+smuggled); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !resp.Close {
		t.Fatalf("refused upgrade answered %d with close %v, want 404 and Connection: close", resp.StatusCode, resp.Close)
	}
	if _, err := io.Copy(io.Discard, br); err != nil && !isTimeout(err) {
		t.Logf("read after the response: %v", err)
	}
	if n, last := be.hits(), be.last(t); n != 1 || last.URI != "/ws" {
		t.Fatalf("backend saw %d requests, the last %s; want only the upgrade request", n, last.URI)
	}
}

// At the client connection cap the proxy stops accepting: a further client is served only
// once a held connection closes.
func TestMaxClientConns(t *testing.T) {
	be := newBackend(t, "app", nil)
	reg := prometheus.NewRegistry()
	p := newProxy(t, DefaultConfig(), Options{Registerer: reg}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg := testServerConfig()
	cfg.MaxClientConns = 2
	_, addr, _ := runServer(t, cfg, p)

	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if resp := rawGet(t, c, bufio.NewReader(c), "/"); resp.StatusCode != 200 {
			t.Fatalf("held connection: %d", resp.StatusCode)
		}
		held = append(held, c)
	}
	waiting, err := net.Dial("tcp", addr) // completes in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	_ = waiting.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(waiting, "GET /third HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(waiting), nil)
		if err == nil {
			resp.Body.Close()
		}
		answered <- resp
	}()
	// A negative can only be watched for a while; a slow machine makes this pass, not fail.
	select {
	case <-answered:
		t.Fatal("a third client was served while two connections held the cap of two")
	case <-time.After(300 * time.Millisecond):
	}
	if v, _ := metricValue(t, reg, "veloflux_client_connections", map[string]string{"listener": "http"}); v != 2 {
		t.Fatalf("veloflux_client_connections = %v at the cap, want 2", v)
	}
	held[0].Close()
	select {
	case resp := <-answered:
		if resp == nil || resp.StatusCode != 200 {
			t.Fatalf("the waiting client got %v after a slot freed", resp)
		}
	case <-time.After(testutil.Timeout()):
		t.Fatal("the waiting client was not served after a held connection closed")
	}
}

// A server that bound its listeners but never serves gives its ports back on Close.
func TestServerCloseWithoutServe(t *testing.T) {
	p := newProxy(t, DefaultConfig(), Options{}, nil)
	cert, _ := serverCert(t)
	cfg := testServerConfig()
	cfg.Addr, cfg.TLSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s, err := NewServer(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := s.Addrs()
	s.Close()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Fatalf("port %s still held after Close: %v", a, err)
		}
		ln.Close()
	}
}
