package health

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/backendtls"
	"github.com/veloflux/veloflux/internal/testutil"
)

// TestProbeSchemes probes https and h2c backends the way the proxy reaches them.
func TestProbeSchemes(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	h2cSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
		}
	}))
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	h2cSrv.Config.Protocols = &protos
	h2cSrv.Start()
	defer h2cSrv.Close()
	addr := func(s *httptest.Server) string {
		return strings.TrimPrefix(strings.TrimPrefix(s.URL, "https://"), "http://")
	}
	// A backend with a certificate from a private CA for another name than its address, that
	// requires a client certificate from the same CA: pools[].tls.
	ca := testutil.NewCA(t)
	caFile, certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "client", ca.Issue(t, "veloflux-edge", true))
	mtlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	mtlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	mtlsSrv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, "api.internal", false, "api.internal")},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(),
	}
	mtlsSrv.StartTLS()
	defer mtlsSrv.Close()
	mtls := backendtls.Settings{CAFile: caFile, ServerName: "api.internal", CertFile: certFile, KeyFile: keyFile}
	noClientCert := backendtls.Settings{CAFile: caFile, ServerName: "api.internal"}

	tests := []struct {
		name   string
		target Target
		ok     bool
	}{
		{"https with a self-signed cert and skip-verify", Target{ID: "a", Address: addr(tlsSrv), Path: "/", Scheme: "https", TLSSkipVerify: true}, true},
		{"https with a self-signed cert, verified", Target{ID: "b", Address: addr(tlsSrv), Path: "/", Scheme: "https"}, false},
		{"plain http to a TLS port", Target{ID: "c", Address: addr(tlsSrv), Path: "/"}, false},
		{"h2c speaks HTTP/2", Target{ID: "d", Address: addr(h2cSrv), Path: "/", Scheme: "h2c"}, true},
		{"http/1.1 to the h2c backend is refused by it", Target{ID: "e", Address: addr(h2cSrv), Path: "/"}, false},
		{"https with the pool's CA, server name and client certificate", Target{ID: "f", Address: addr(mtlsSrv), Path: "/", Scheme: "https", TLS: mtls}, true},
		{"https to a backend that requires a client certificate, without one", Target{ID: "g", Address: addr(mtlsSrv), Path: "/", Scheme: "https", TLS: noClientCert}, false},
	}
	c, err := NewChecker(Config{Interval: time.Hour, Timeout: 2 * time.Second, Fall: 1, Rise: 1}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.h2c.CloseIdleConnections()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			spec, expect, _ := tt.target.normalized()
			client, err := c.clientFor(spec)
			if err != nil {
				t.Fatal(err)
			}
			reason, _ := probe(ctx, client, spec, expect)
			if (reason == "") != tt.ok {
				t.Fatalf("probe reason %q, want success=%v", reason, tt.ok)
			}
		})
	}
	missing := mtls
	missing.CertFile = filepath.Join(t.TempDir(), "gone.pem")
	if _, err := c.clientFor(Target{Scheme: "https", TLS: missing}); err == nil {
		t.Error("a client certificate that does not load gave a probe client")
	}
}
