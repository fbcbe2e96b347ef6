package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/admin-*.golden.json from the current admin answers")

// TestAdminJSON pins the documents of the admin API (docs/operations.md, read by operators'
// scripts and the integration tests) to golden files: a node built from a fixed configuration
// answers every GET endpoint through the real handler, and the answers, with times, ports and
// paths masked, must equal the files byte for byte.
func TestAdminJSON(t *testing.T) {
	standalone := testconfig.Config{
		Global: testconfig.Global{
			BindAddress: "127.0.0.1:0", MetricsAddress: testconfig.Ptr(""), AdminAddress: testconfig.Ptr("127.0.0.1:0"),
			HealthCheck: &testconfig.HealthCheck{Interval: testconfig.Duration(time.Hour), MaxInterval: testconfig.Duration(time.Hour)},
		},
		Pools: []testconfig.Pool{
			{Name: "web", Algorithm: "least_conn", HealthCheck: &testconfig.HealthCheck{Path: "/health"},
				Backends: []testconfig.Backend{{Address: "127.0.0.1:1", Weight: 3}, {Address: "127.0.0.1:2"}}},
			{Name: "api", Backends: []testconfig.Backend{{Address: "127.0.0.1:3"}}},
		},
		Routes: []testconfig.Route{{Host: "api.example", Pool: "api"}, {Pool: "web"}},
	}
	cluster := standalone
	cluster.Cluster = &testconfig.Cluster{Enabled: true, Name: "golden-node", BindAddress: "127.0.0.1:0"}
	tests := []struct {
		name string
		cfg  testconfig.Config
	}{
		{"standalone", standalone},
		{"cluster", cluster},
	}
	mask := []struct{ re, with string }{
		{`"20\d\d-\d\d-\d\dT[^"]*"`, `"TIME"`},
		{`"uptime_seconds":\d+`, `"uptime_seconds":0`},
		{`"config_file":"[^"]*"`, `"config_file":"FILE"`},
		{`"listen_addresses":(null|\[[^\]]*\])`, `"listen_addresses":"ADDRS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, err := buildNode(t, tt.cfg.YAML(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.release)
			if err := a.drains.SetBackend("127.0.0.1:2", true); err != nil {
				t.Fatal(err)
			}
			h := a.admin.Handler()
			var got bytes.Buffer
			for _, path := range []string{"/admin/status", "/admin/pools", "/admin/health", "/admin/routes", "/admin/config", "/admin/stats", "/admin/sessions"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+path, nil))
				if rec.Code != http.StatusOK {
					t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
				}
				body := rec.Body.Bytes()
				for _, m := range mask {
					body = regexp.MustCompile(m.re).ReplaceAll(body, []byte(m.with))
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, body, "", "  "); err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				got.WriteString("GET " + path + "\n")
				got.Write(pretty.Bytes())
			}
			file := filepath.Join("testdata", "admin-"+tt.name+".golden.json")
			if *updateGolden {
				if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("admin answers differ from %s:\n%s", file, got.String())
			}
		})
	}
}
