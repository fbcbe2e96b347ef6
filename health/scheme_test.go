package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
			reason, _ := probe(ctx, c.clientFor(spec), spec, expect)
			if (reason == "") != tt.ok {
				t.Fatalf("probe reason %q, want success=%v", reason, tt.ok)
			}
		})
	}
}
