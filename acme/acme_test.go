package acme

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ocsp"

	"github.com/veloflux/veloflux/internal/pebbletest"
	"github.com/veloflux/veloflux/internal/testutil"
)

// node is one Manager behind real listeners: plain HTTP answering HTTP-01 (everything else
// 404) and TLS with the Manager's TLS config.
type node struct {
	mgr     *Manager
	reg     *prometheus.Registry
	log     *testutil.LogBuffer
	httpLn  net.Listener
	tlsLn   net.Listener
	tlsAddr string
}

// listen binds the two listeners of a node on loopback, before Pebble needs their ports.
func listen(t *testing.T) (httpLn, tlsLn net.Listener) {
	t.Helper()
	var err error
	if httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return httpLn, tlsLn
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// startNode runs a Manager on the listeners until the test ends.
func startNode(t *testing.T, p *pebbletest.Server, httpLn, tlsLn net.Listener, storage certmagic.Storage, mutate func(*Config)) *node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Directory, cfg.CARootFile = p.Directory, p.CARootFile
	cfg.Storage = storage
	// certmagic remembers, process-wide, the address of the first account it registers without
	// one ("default"), which Pebble refuses for the next; every test node has its own.
	cfg.Email = "ops@example.com"
	cfg.RenewCheckInterval = time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	n := &node{reg: prometheus.NewRegistry(), log: &testutil.LogBuffer{}, httpLn: httpLn, tlsLn: tlsLn, tlsAddr: tlsLn.Addr().String()}
	mgr, err := New(cfg, n.log.Logger(), n.reg)
	if err != nil {
		t.Fatal(err)
	}
	n.mgr = mgr
	if err := mgr.SetListeners(httpLn.Addr().String(), tlsLn.Addr().String()); err != nil {
		t.Fatal(err)
	}
	quiet := log.New(io.Discard, "", 0) // handshakes for names without a certificate fail by design
	plain := &http.Server{ErrorLog: quiet, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !mgr.HandleHTTPChallenge(w, r) {
			http.NotFound(w, r)
		}
	})}
	secure := &http.Server{ErrorLog: quiet, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = plain.Serve(httpLn) }()
	go func() { defer wg.Done(); _ = secure.Serve(tls.NewListener(tlsLn, mgr.TLSConfig())) }()
	go func() { defer wg.Done(); _ = mgr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = plain.Close()
		_ = secure.Close()
		wg.Wait()
	})
	return n
}

// handshake connects to the node asking for name and verifies the certificate against roots
// as a browser would; it returns the leaf's serial.
func (n *node) handshake(name string, roots *x509.CertPool) (string, error) {
	d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", n.tlsAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	return leaf.SerialNumber.String(), nil
}

// versionHandshake connects to addr asking for name with a client limited to TLS versions
// minV..maxV (Go's client needs an explicit minimum below 1.2).
func versionHandshake(addr, name string, roots *x509.CertPool, alpn []string, minV, maxV uint16) error {
	d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: roots, NextProtos: alpn, MinVersion: minV, MaxVersion: maxV}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// waitServed waits until the node serves name with a certificate that verifies, and returns
// its serial.
func (n *node) waitServed(t *testing.T, name string, roots *x509.CertPool) string {
	t.Helper()
	var serial string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node log:\n%s", n.log)
		}
	})
	testutil.Eventually(t, "a verified certificate for "+name, func() bool {
		s, err := n.handshake(name, roots)
		serial = s
		return err == nil
	})
	return serial
}

func TestObtainServesRoutedNamesOnly(t *testing.T) {
	for _, tt := range []struct {
		name      string
		challenge func(*Config)
	}{
		{"http-01", func(c *Config) { c.DisableTLSALPNChallenge = true }},
		{"tls-alpn-01", func(c *Config) { c.DisableHTTPChallenge = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			httpLn, tlsLn := listen(t)
			p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(httpLn), TLSPort: port(tlsLn)})
			n := startNode(t, p, httpLn, tlsLn, &certmagic.FileStorage{Path: t.TempDir()}, tt.challenge)
			n.mgr.SetNames([]string{"shop.example.com", "Blog.Example.com:8443", "*.example.com", "10.0.0.1", ""})
			roots := p.Roots()

			n.waitServed(t, "shop.example.com", roots)
			n.waitServed(t, "blog.example.com", roots)
			if got := p.Orders(); got != 2 {
				t.Errorf("Pebble saw %d orders, want 2 (one per routed name)", got)
			}
			// Pebble logs its HTTP-01 requests only.
			if got := p.Log.Count("Attempting to validate w/ HTTP"); (got > 0) != (tt.name == "http-01") {
				t.Errorf("Pebble made %d HTTP-01 validation requests, solving %s", got, tt.name)
			}

			// TLS 1.0 and 1.1 are refused, on the listener's ALPN protocols and on the
			// TLS-ALPN-01 challenge's alike; TLS 1.2 is served.
			for _, alpn := range [][]string{{"h2", "http/1.1"}, {"acme-tls/1"}} {
				if err := versionHandshake(n.tlsAddr, "shop.example.com", roots, alpn, tls.VersionTLS10, tls.VersionTLS11); err == nil || !strings.Contains(err.Error(), "protocol version") {
					t.Errorf("a TLS 1.0/1.1 client with ALPN %q: %v, want the handshake refused for its version", alpn, err)
				}
			}
			if err := versionHandshake(n.tlsAddr, "shop.example.com", roots, []string{"h2", "http/1.1"}, tls.VersionTLS12, tls.VersionTLS12); err != nil {
				t.Errorf("a TLS 1.2 client: %v", err)
			}

			// A name the routes do not list gets no certificate and starts no order.
			if _, err := n.handshake("evil.example.com", roots); err == nil {
				t.Error("handshake for a name that is not routed succeeded")
			}
			st := n.mgr.Status()
			if len(st.Names) != 2 || st.Names[0].Name != "blog.example.com" || st.Names[1].Name != "shop.example.com" {
				t.Fatalf("Status names = %+v, want blog.example.com and shop.example.com", st.Names)
			}
			for _, ns := range st.Names {
				if ns.State != "valid" || ns.Serial == "" || ns.LastSuccess.IsZero() || ns.FailuresInARow != 0 {
					t.Errorf("Status of %s = %+v, want a valid certificate obtained by this node", ns.Name, ns)
				}
			}
			if got := p.Orders(); got != 2 {
				t.Errorf("after a handshake for an unrouted name Pebble saw %d orders, want still 2", got)
			}
			if got := promtest.ToFloat64(n.mgr.m.results.WithLabelValues("obtain", "success")); got != 2 {
				t.Errorf("veloflux_acme_order_results_total{kind=obtain,result=success} = %v, want 2", got)
			}
			if got := promtest.ToFloat64(n.mgr.m.orders); got != 2 {
				t.Errorf("veloflux_acme_orders_total = %v, want 2", got)
			}
			if n, err := promtest.GatherAndCount(n.reg, "veloflux_acme_certificate_expiry_timestamp_seconds"); err != nil || n != 2 {
				t.Errorf("expiry series = %d, %v; want 2", n, err)
			}

			// Dropping a name stops serving it.
			n.mgr.SetNames([]string{"shop.example.com"})
			testutil.Eventually(t, "blog.example.com no longer served", func() bool {
				_, err := n.handshake("blog.example.com", roots)
				return err != nil
			})
		})
	}
}

// renewals counts the names renewalName handed out.
var renewals atomic.Int64

// renewalName returns a name no other renewal in this test process used. certmagic keeps its
// renewal backoff process-wide, keyed by name: a renewal that failed on purpose in one test
// (or in an earlier run under -count) would hold back another test's renewal of that name
// until its certificate expired.
func renewalName(label string) string {
	return fmt.Sprintf("%s-%d.example.com", label, renewals.Add(1))
}

// TestRenewalWithoutFailedHandshakes: certificates that live 40 s are renewed in the
// background while a client keeps connecting; every handshake succeeds.
func TestRenewalWithoutFailedHandshakes(t *testing.T) {
	httpLn, tlsLn := listen(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(httpLn), TLSPort: port(tlsLn), Validity: 40 * time.Second})
	n := startNode(t, p, httpLn, tlsLn, &certmagic.FileStorage{Path: t.TempDir()}, nil)
	name := renewalName("renew")
	n.mgr.SetNames([]string{name})
	roots := p.Roots()
	first := n.waitServed(t, name, roots)

	var handshakes, failures atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			handshakes.Add(1)
			if _, err := n.handshake(name, roots); err != nil {
				failures.Add(1)
				lastErr.Store(err.Error())
			}
		}
	}()
	took := testutil.Eventually(t, "a renewed certificate", func() bool {
		s, err := n.handshake(name, roots)
		return err == nil && s != first
	})
	close(stop)
	<-done
	t.Logf("renewed %v after the first certificate; %d handshakes meanwhile", took.Round(time.Second), handshakes.Load())
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d handshakes failed during renewal, last: %v", f, handshakes.Load(), lastErr.Load())
	}
	if got := promtest.ToFloat64(n.mgr.m.results.WithLabelValues("renew", "success")); got < 1 {
		t.Errorf("veloflux_acme_order_results_total{kind=renew,result=success} = %v, want >= 1", got)
	}
}

// TestFailedRenewalKeepsCertificate: when the CA can no longer validate the name, the renewal
// fails, the certificate in use keeps being served, and the failure shows in the metrics and
// the status.
func TestFailedRenewalKeepsCertificate(t *testing.T) {
	httpLn, tlsLn := listen(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(httpLn), TLSPort: port(tlsLn), Validity: 60 * time.Second})
	n := startNode(t, p, httpLn, tlsLn, &certmagic.FileStorage{Path: t.TempDir()}, func(c *Config) { c.DisableTLSALPNChallenge = true })
	name := renewalName("renew")
	n.mgr.SetNames([]string{name})
	roots := p.Roots()
	first := n.waitServed(t, name, roots)
	p.SetA(name, "127.0.0.9") // nothing answers the CA there

	testutil.Eventually(t, "a failed renewal", func() bool {
		return promtest.ToFloat64(n.mgr.m.results.WithLabelValues("renew", "failure")) >= 1
	})
	if s, err := n.handshake(name, roots); err != nil || s != first {
		t.Fatalf("after the failed renewal the node serves %q (%v), want the first certificate %s", s, err, first)
	}
	st := n.mgr.Status().Names
	if len(st) != 1 || st[0].State != "valid" || st[0].LastError == "" || st[0].FailuresInARow < 1 {
		t.Errorf("status = %+v, want the valid certificate with the renewal's error", st)
	}
}

func TestEligible(t *testing.T) {
	for in, want := range map[string]string{
		"Shop.Example.com":      "shop.example.com",
		"shop.example.com:8443": "shop.example.com",
		"shop.example.com.":     "shop.example.com",
		"*.example.com":         "",
		"10.0.0.1":              "",
		"[2001:db8::1]:443":     "",
		"localhost":             "",
		"":                      "",
	} {
		if got := Eligible(in); got != want {
			t.Errorf("Eligible(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Storage = &certmagic.FileStorage{Path: "/tmp/x"}
		return c
	}
	for _, tt := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"http directory", func(c *Config) { c.Directory = "http://acme.test/dir" }, "want an https URL"},
		{"no storage", func(c *Config) { c.Storage = nil }, "storage: required"},
		{"no challenge", func(c *Config) { c.DisableHTTPChallenge, c.DisableTLSALPNChallenge = true, true }, "both challenge types are off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// certmagic keeps, by design, a process-wide rate limiter per ACME account that never stops,
// and a goroutine per file lock that notices the lock is gone only after its next 5 s sleep.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"))
}

func TestSetListeners(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Storage = &certmagic.FileStorage{Path: t.TempDir()}
	mgr, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	if err := mgr.Run(t.Context()); err == nil {
		t.Error("Run before SetListeners succeeded")
	}
	for _, tt := range []struct{ name, http, tls, want string }{
		{"hosts differ", "127.0.0.1:80", "127.0.0.2:443", "must bind the same host"},
		{"unbound port", "127.0.0.1:0", "127.0.0.1:443", "want a bound port"},
		{"no port", "127.0.0.1", "127.0.0.1:443", "HTTP challenge address"},
		{"bound", "0.0.0.0:80", "0.0.0.0:443", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := mgr.SetListeners(tt.http, tt.tls)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("SetListeners(%s, %s) = %v, want %q", tt.http, tt.tls, err, tt.want)
			}
		})
	}
	if mgr.issuer.ListenHost != "0.0.0.0" || mgr.issuer.AltHTTPPort != 80 || mgr.issuer.AltTLSALPNPort != 443 {
		t.Errorf("issuer listens at %s:%d/%d, want 0.0.0.0:80/443", mgr.issuer.ListenHost, mgr.issuer.AltHTTPPort, mgr.issuer.AltTLSALPNPort)
	}
}

// TestOCSPStapled: Pebble names a responder in the certificates it issues, and a real one on
// 127.0.0.1 answers as Pebble's intermediate: the node serves its ACME certificate with the
// responder's Good answer for the certificate's serial stapled. A certificate the responder
// calls revoked is replaced by a new order, whose certificate gets its Good staple.
func TestOCSPStapled(t *testing.T) {
	for _, tt := range []struct {
		name        string
		revokeFirst bool
	}{{"good", false}, {"first certificate revoked", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var issuer atomic.Pointer[struct {
				cert *x509.Certificate
				key  crypto.Signer
			}]
			var mu sync.Mutex
			revoked := "" // the serial answered Revoked
			responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				q, err := ocsp.ParseRequest(body)
				iss := issuer.Load()
				if err != nil || iss == nil {
					http.Error(w, "no request, or no issuer yet", http.StatusBadRequest)
					return
				}
				now := time.Now()
				tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: q.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
				mu.Lock()
				if tt.revokeFirst && revoked == "" {
					revoked = q.SerialNumber.String()
				}
				if q.SerialNumber.String() == revoked {
					tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-time.Minute), ocsp.KeyCompromise
				}
				mu.Unlock()
				resp, err := ocsp.CreateResponse(iss.cert, iss.cert, tmpl, iss.key)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				_, _ = w.Write(resp)
			}))
			defer responder.Close()

			httpLn, tlsLn := listen(t)
			p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(httpLn), TLSPort: port(tlsLn), OCSPResponderURL: responder.URL, KeyAlgorithm: "rsa"})
			cert, key := p.Intermediate()
			issuer.Store(&struct {
				cert *x509.Certificate
				key  crypto.Signer
			}{cert, key})
			n := startNode(t, p, httpLn, tlsLn, &certmagic.FileStorage{Path: t.TempDir()}, func(c *Config) {
				c.DisableTLSALPNChallenge = true
				c.OCSPCheckInterval = time.Second
			})
			n.mgr.SetNames([]string{"shop.example.com"})
			roots := p.Roots()
			n.waitServed(t, "shop.example.com", roots)

			var cs tls.ConnectionState
			testutil.Eventually(t, "an OCSP staple on the ACME certificate", func() bool {
				c, err := tls.Dial("tcp", n.tlsAddr, &tls.Config{ServerName: "shop.example.com", RootCAs: roots})
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				defer c.Close()
				cs = c.ConnectionState()
				return cs.OCSPResponse != nil
			})
			leaf := cs.PeerCertificates[0]
			if len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != responder.URL {
				t.Fatalf("Pebble's certificate names responders %q, want %s", leaf.OCSPServer, responder.URL)
			}
			resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, leaf, cert)
			if err != nil {
				t.Fatalf("the staple is not the responder's answer about the certificate: %v", err)
			}
			if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("staple: status %d about serial %v, want Good about %v", resp.Status, resp.SerialNumber, leaf.SerialNumber)
			}
			mu.Lock()
			defer mu.Unlock()
			wantOrders := 1
			if tt.revokeFirst {
				wantOrders = 2
				if revoked == "" || revoked == leaf.SerialNumber.String() {
					t.Errorf("served serial %v with a staple; the revoked one was %q", leaf.SerialNumber, revoked)
				}
			}
			if got := p.Orders(); got != wantOrders {
				t.Errorf("Pebble saw %d orders, want %d", got, wantOrders)
			}
		})
	}
}
