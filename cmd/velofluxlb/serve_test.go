package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
	"github.com/veloflux/veloflux/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestAppRunStopsCleanly runs a whole node in-process on port 0, proxies one request, reloads
// through the hup channel, and checks that ending the context stops every goroutine.
func TestAppRunStopsCleanly(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer be.Close()
	addr := strings.TrimPrefix(be.URL, "http://")
	path := t.TempDir() + "/config.yaml"
	cfg := testconfig.Config{Global: testconfig.Loopback(), Pools: []testconfig.Pool{testconfig.WebPool(addr)}, Routes: []testconfig.Route{{Pool: "web"}}}
	cfg.Global.DrainTimeout = testconfig.Duration(2 * time.Second)
	cfg.Pools[0].HealthCheck = &testconfig.HealthCheck{Path: "/", Interval: testconfig.Duration(50 * time.Millisecond), Timeout: testconfig.Duration(40 * time.Millisecond)}
	if err := os.WriteFile(path, []byte(cfg.YAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	log, level, err := telemetry.NewLogger(logs, "debug")
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(path, nil, loaded, log, level)
	if err != nil {
		t.Fatal(err)
	}
	a.readyFile = t.TempDir() + "/ready.json"
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, hup) }()

	testutil.Receive(t, a.serving, "the node to serve")
	if !strings.Contains(logs.String(), "veloflux started") {
		t.Fatalf("serving without a start-up line:\n%s", logs.String())
	}
	var ready Ready
	if b, err := os.ReadFile(a.readyFile); err != nil {
		t.Fatalf("ready file: %v", err)
	} else if err := json.Unmarshal(b, &ready); err != nil {
		t.Fatalf("ready file %q: %v", b, err)
	}
	if ready.PID != os.Getpid() || len(ready.Listeners) != 1 || ready.Listeners[0] != a.server.Addrs()[0].String() ||
		ready.Admin != a.admin.Addr().String() || ready.Metrics != a.metricsLn.Addr().String() {
		t.Fatalf("ready file = %+v, want pid %d, listener %v, admin %v, metrics %v", ready, os.Getpid(),
			a.server.Addrs()[0], a.admin.Addr(), a.metricsLn.Addr())
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + a.server.Addrs()[0].String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("proxied request: %d %q", resp.StatusCode, body)
	}
	hup <- os.Interrupt // any signal value: the channel is the SIGHUP channel
	testutil.Eventually(t, "the reload line", func() bool {
		return strings.Contains(logs.String(), `"reason":"SIGHUP"`)
	})
	c.CloseIdleConnections()
	cancel()
	if err := testutil.Receive(t, done, "run to return after its context ended"); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "veloflux stopped") {
		t.Errorf("no stop line:\n%s", logs.String())
	}
	if _, err := os.Stat(a.readyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ready file after the stop: %v, want it removed", err)
	}
}

// buildNode writes yaml to a file and builds a node from it, as serve does.
func buildNode(t *testing.T, yaml string) (*app, *testutil.LogBuffer, error) {
	t.Helper()
	return buildNodeEnv(t, yaml, nil)
}

// buildNodeEnv is buildNode with environ as the node's environment.
func buildNodeEnv(t *testing.T, yaml string, environ []string) (*app, *testutil.LogBuffer, error) {
	t.Helper()
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, environ)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	log, level, err := telemetry.NewLogger(logs, "debug")
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(path, environ, cfg, log, level)
	return a, logs, err
}
