package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/internal/backendtls"
	"github.com/veloflux/veloflux/internal/testutil"
)

// tlsBackend is an https backend whose certificate, from ca, names only api.internal (not the
// 127.0.0.1 it listens on); with mtls it requires a client certificate from ca and answers
// with the client's common name.
func tlsBackend(t *testing.T, ca *testutil.CA, mtls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := "anonymous"
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		_, _ = w.Write([]byte("hello " + client))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some cases test
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "api.internal", false, "api.internal")}}
	if mtls {
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool()
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestBackendTLS: pools[].tls reaches backends with certificates from a private CA under
// another name, and presents a client certificate to backends that require one; without the
// setting that makes it work, the same request fails.
func TestBackendTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := ca.WriteFiles(t, dir, "client", ca.Issue(t, "veloflux-edge", true))
	plain, mutual := tlsBackend(t, ca, false), tlsBackend(t, ca, true)

	tests := []struct {
		name     string
		backend  *httptest.Server
		settings backendtls.Settings
		skip     bool
		status   int
		body     string
	}{
		{"private CA and server name", plain, backendtls.Settings{CAFile: caFile, ServerName: "api.internal"}, false, 200, "hello anonymous"},
		{"system roots do not know the CA", plain, backendtls.Settings{ServerName: "api.internal"}, false, 502, ""},
		{"the address is not the certificate's name", plain, backendtls.Settings{CAFile: caFile}, false, 502, ""},
		{"mutual TLS with a client certificate", mutual, backendtls.Settings{CAFile: caFile, ServerName: "api.internal", CertFile: certFile, KeyFile: keyFile}, false, 200, "hello veloflux-edge"},
		{"mutual TLS without one", mutual, backendtls.Settings{CAFile: caFile, ServerName: "api.internal"}, false, 502, ""},
		{"client certificate, verification skipped", mutual, backendtls.Settings{CertFile: certFile, KeyFile: keyFile, InsecureSkipVerify: true}, true, 200, "hello veloflux-edge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := member("api", strings.TrimPrefix(tt.backend.URL, "https://"), 1)
			b.Scheme, b.TLS, b.TLSSkipVerify = "https", tt.settings, tt.skip
			p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, b))
			defer p.Close()
			_, addr, _ := runServer(t, testServerConfig(), p)
			r := send(t, newClient(t), http.MethodGet, "http://"+addr+"/", "www.example.com", nil, "")
			if r.status != tt.status || (tt.body != "" && r.body != tt.body) {
				t.Fatalf("answer %d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

// TestBackendTLSFilesMissing: a snapshot whose pool TLS files do not load is refused whole,
// naming the pool and backend, and the table in use keeps serving.
func TestBackendTLSFilesMissing(t *testing.T) {
	ca := testutil.NewCA(t)
	good := member("api", strings.TrimPrefix(tlsBackend(t, ca, false).URL, "https://"), 1)
	caFile, _, _ := ca.WriteFiles(t, t.TempDir(), "unused", ca.Issue(t, "x", true))
	good.Scheme, good.TLS = "https", backendtls.Settings{CAFile: caFile, ServerName: "api.internal"}
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, good))
	defer p.Close()
	bad := good
	bad.TLS.CertFile, bad.TLS.KeyFile = filepath.Join(t.TempDir(), "missing.pem"), filepath.Join(t.TempDir(), "missing.key")
	err := p.Apply(onePoolSnapshot("round_robin", false, bad))
	if !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), `pool "web": backend "api": tls: cert_file and key_file`) {
		t.Fatalf("Apply with missing client certificate files = %v, want ErrInvalidSnapshot naming the pool and backend", err)
	}
	_, addr, _ := runServer(t, testServerConfig(), p)
	if r := send(t, newClient(t), http.MethodGet, "http://"+addr+"/", "", nil, ""); r.status != 200 {
		t.Fatalf("after the refused snapshot: %d, want the previous table's 200", r.status)
	}
}
