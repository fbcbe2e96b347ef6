package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// serverCert returns a certificate for 127.0.0.1 and a pool that trusts it.
func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testutil.NewCA(t)
	return ca.Issue(t, "veloflux test", false, "127.0.0.1"), ca.Pool()
}

// tlsServerConfig is testServerConfig with a TLS listener on a free loopback port, serving a
// certificate for 127.0.0.1 from a fresh CA; roots trusts that CA.
func tlsServerConfig(t *testing.T) (ServerConfig, *x509.CertPool) {
	t.Helper()
	cert, roots := serverCert(t)
	cfg := testServerConfig()
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	return cfg, roots
}

// TestTLSListenerSpeaksHTTP2 serves the proxy on a TLS listener: a client negotiates HTTP/2,
// and the backend and the request's span are told the original scheme was https.
func TestTLSListenerSpeaksHTTP2(t *testing.T) {
	be := newBackend(t, "app", nil)
	opts, rec := traced(t, Options{})
	p := newProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cert, roots := serverCert(t)
	cfg := DefaultServerConfig()
	cfg.Addr = ""
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s, err := NewServer(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp := send(t, c, http.MethodGet, "https://"+s.Addrs()[0].String()+"/", "", nil, "")
	if resp.status != http.StatusOK || resp.body != "app" {
		t.Fatalf("answer %d %q, want 200 app", resp.status, resp.body)
	}
	if got := be.last(t).Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", got)
	}
	server, _ := spansOf(t, rec)
	if got, v := attrString(server, "url.scheme"), attrString(server, "network.protocol.version"); got != "https" || v != "2" {
		t.Errorf("server span url.scheme %q, network.protocol.version %q; want https over 2", got, v)
	}
	r, err := c.Get("https://" + s.Addrs()[0].String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.ProtoMajor != 2 {
		t.Errorf("negotiated %s, want HTTP/2", r.Proto)
	}
}

// TestHTTPChallenge: the hook answers HTTP-01 requests on the plain listener before the
// redirect and the routes; the requests it leaves, and every other path, go on as before.
func TestHTTPChallenge(t *testing.T) {
	for _, redirect := range []bool{false, true} {
		t.Run(fmt.Sprintf("redirect_http=%v", redirect), func(t *testing.T) {
			be := newBackend(t, "app", nil)
			p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
			cert, _ := serverCert(t)
			cfg := testServerConfig()
			cfg.TLSAddr = "127.0.0.1:0"
			cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			cfg.RedirectHTTPS = redirect
			cfg.HTTPChallenge = func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/.well-known/acme-challenge/known" {
					return false
				}
				_, _ = io.WriteString(w, "key-authorization")
				return true
			}
			_, plain, _ := runServer(t, cfg, p)
			c := newClient(t)
			if r := send(t, c, http.MethodGet, "http://"+plain+"/.well-known/acme-challenge/known", "www.example.com", nil, ""); r.status != http.StatusOK || r.body != "key-authorization" || be.hits() != 0 {
				t.Fatalf("known challenge: %d %q, backend hits %d; want the hook's answer", r.status, r.body, be.hits())
			}
			if r := send(t, c, http.MethodGet, "http://"+plain+"/.well-known/acme-challenge/other", "www.example.com", nil, ""); r.status != http.StatusOK || be.hits() != 1 {
				t.Fatalf("unknown challenge: %d, backend hits %d; want it proxied", r.status, be.hits())
			}
			want := http.StatusOK
			if redirect {
				want = http.StatusPermanentRedirect
			}
			if r := send(t, c, http.MethodGet, "http://"+plain+"/", "www.example.com", nil, ""); r.status != want {
				t.Fatalf("other path: %d, want %d", r.status, want)
			}
		})
	}
}

func TestRedirectHTTPSAndHSTS(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	cfg.RedirectHTTPS = true
	cfg.HSTS = 31536000
	s, plain, _ := runServer(t, cfg, p)
	_, tlsPort, _ := net.SplitHostPort(s.Addrs()[1].String())

	c := newClient(t)
	r := send(t, c, http.MethodPost, "http://"+plain+"/shop/cart?x=1", "www.example.com:8080", nil, "body")
	if r.status != http.StatusPermanentRedirect {
		t.Fatalf("plain request: %d, want 308", r.status)
	}
	if got, want := r.header.Get("Location"), "https://www.example.com:"+tlsPort+"/shop/cart?x=1"; got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	if be.hits() != 0 {
		t.Fatal("a redirected request reached the backend")
	}
	// ACME HTTP-01 challenges stay on plain HTTP.
	if r := send(t, c, http.MethodGet, "http://"+plain+"/.well-known/acme-challenge/token", "www.example.com", nil, ""); r.status != http.StatusOK || be.hits() != 1 {
		t.Fatalf("challenge: %d, backend hits %d; want it proxied", r.status, be.hits())
	}
	// A head the guard refuses still gets its rejection, not a redirect.
	raw, err := net.Dial("tcp", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := raw.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("refused head: %v %v, want 400", resp, err)
	}
	resp.Body.Close()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		tr.TLSClientConfig.NextProtos = nil
		if proto == "HTTP/1.1" {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		hc := &http.Client{Transport: tr.Clone(), Timeout: 10 * time.Second}
		r := send(t, hc, http.MethodGet, "https://"+s.Addrs()[1].String()+"/", "", nil, "")
		if r.status != http.StatusOK || r.header.Get("Strict-Transport-Security") != "max-age=31536000" {
			t.Fatalf("%s: %d with Strict-Transport-Security %q", proto, r.status, r.header.Get("Strict-Transport-Security"))
		}
	}
}
