package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/veloflux/veloflux/internal/testutil"
)

// h3Client is an HTTP/3-only client trusting the test certificate.
func h3Client(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: cfg}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestHTTP3(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cert, roots := serverCert(t)
	for _, retry := range []int{0, -1} { // the default, and a Retry asked of every client
		cfg := testServerConfig()
		cfg.TLSAddr = "127.0.0.1:0"
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		cfg.HTTP3 = true
		cfg.HSTS = 600
		cfg.H3RetryAbove = retry
		s, _, _ := runServer(t, cfg, p)
		addr := s.Addrs()[1].String()

		// The TCP listener announces HTTP/3 on the same port.
		tcp := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
		r := send(t, tcp, http.MethodGet, "https://"+addr+"/", "", nil, "")
		if want := `h3=":` + addr[strings.LastIndexByte(addr, ':')+1:] + `"; ma=86400`; r.header.Get("Alt-Svc") != want {
			t.Fatalf("Alt-Svc %q, want %q", r.header.Get("Alt-Svc"), want)
		}

		c := h3Client(t, &tls.Config{RootCAs: roots})
		resp, err := c.Post("https://"+addr+"/upload?x=1", "text/plain", strings.NewReader("hello over quic"))
		if err != nil {
			t.Fatalf("retry %d: HTTP/3 POST: %v", retry, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 3 || resp.StatusCode != 200 || string(body) != "app" {
			t.Fatalf("retry %d: %s %d %q, want HTTP/3 200 app", retry, resp.Proto, resp.StatusCode, body)
		}
		if resp.Header.Get("Strict-Transport-Security") != "max-age=600" || resp.Header.Get("Alt-Svc") != "" {
			t.Fatalf("HTTP/3 response headers: HSTS %q, Alt-Svc %q", resp.Header.Get("Strict-Transport-Security"), resp.Header.Get("Alt-Svc"))
		}
		seen := be.last(t)
		if seen.Method != http.MethodPost || seen.URI != "/upload?x=1" || seen.Body != "hello over quic" {
			t.Fatalf("backend saw %s %s %q", seen.Method, seen.URI, seen.Body)
		}
		if seen.Header.Get("X-Forwarded-Proto") != "https" || seen.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Fatalf("backend saw X-Forwarded-Proto %q, X-Forwarded-For %q", seen.Header.Get("X-Forwarded-Proto"), seen.Header.Get("X-Forwarded-For"))
		}
	}
}

// A drain lets an HTTP/3 request in flight finish, like the TCP side.
func TestHTTP3Drain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	be := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("slow", be.addr(), 1)))
	cert, roots := serverCert(t)
	cfg := testServerConfig()
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	cfg.HTTP3 = true
	s, _, stop := runServer(t, cfg, p)
	c := h3Client(t, &tls.Config{RootCAs: roots})
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Get("https://" + s.Addrs()[1].String() + "/")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{string(b), err}
	}()
	testutil.Receive(t, started, "the request to reach the backend")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	testutil.Eventually(t, "the proxy to drain", p.Draining)
	close(release)
	if r := testutil.Receive(t, done, "the request in flight to finish"); r.err != nil || r.body != "finished" {
		t.Fatalf("request in flight during the drain: %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// With H2C, the plain listener serves HTTP/2 with prior knowledge beside HTTP/1, which stays
// behind its guard.
func TestH2CPlainListener(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg := testServerConfig()
	cfg.H2C = true
	_, addr, _ := runServer(t, cfg, p)

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/h2c")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "app" {
		t.Fatalf("h2c: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if r := send(t, newClient(t), http.MethodGet, "http://"+addr+"/h1", "", nil, ""); r.status != 200 {
		t.Fatalf("HTTP/1 beside h2c: %d", r.status)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(raw, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("HTTP/1 smuggling attempt with h2c on: %v %v, want 400", r, err)
	}
	if be.hits() != 2 {
		t.Fatalf("backend hits %d, want 2", be.hits())
	}
}
