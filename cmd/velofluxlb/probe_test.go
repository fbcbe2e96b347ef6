package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// TestHealthCommand runs `veloflux health` against a real node, then against a metrics
// listener that answers 503 and one that is gone: only the first exits 0.
func TestHealthCommand(t *testing.T) {
	metrics := testutil.FreeAddr(t)
	yaml := testconfig.Config{Global: testconfig.Global{BindAddress: "127.0.0.1:0", MetricsAddress: &metrics,
		AdminAddress: testconfig.Ptr(""), DrainTimeout: testconfig.Duration(time.Second)}}.YAML(t)
	path := writeYAML(t, yaml)
	startNode(t, yaml)
	testutil.Eventually(t, "veloflux health exits 0 against a ready node", func() bool {
		var stderr bytes.Buffer
		return runCLI([]string{"health", "-config", path}, nil, &bytes.Buffer{}, &stderr) == 0
	})

	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			t.Errorf("health asked for %s, want /readyz", r.URL.Path)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	unreadyAddr := strings.TrimPrefix(unready.URL, "http://")
	gone := testutil.FreeAddr(t)
	defer unready.Close()

	for _, tt := range []struct {
		name, metrics, wantErr string
	}{
		{"draining node answers 503", unreadyAddr, "503"},
		{"nothing listens", gone, "connection refused"},
		{"no metrics listener", "", "global.metrics_address is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeYAML(t, testconfig.Config{Global: testconfig.Global{BindAddress: "127.0.0.1:0", MetricsAddress: &tt.metrics}}.YAML(t))
			var stderr bytes.Buffer
			if code := runCLI([]string{"health", "-config", path}, nil, &bytes.Buffer{}, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("stderr %q does not say %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestReadyURL(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080/readyz"},
		{":8080", "http://127.0.0.1:8080/readyz"},
		{"[::]:8080", "http://[::1]:8080/readyz"},
		{"10.0.0.5:9100", "http://10.0.0.5:9100/readyz"},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := readyURL(tt.addr)
			if err != nil || got != tt.want {
				t.Fatalf("readyURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
			}
		})
	}
}

func writeYAML(t *testing.T, yaml string) string {
	t.Helper()
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
