package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/config"
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
	yaml := `global:
  bind_address: "127.0.0.1:0"
  metrics_address: "127.0.0.1:0"
  admin_address: "127.0.0.1:0"
  drain_timeout: 2s
pools:
  - name: web
    health_check: {path: /, interval: 50ms, timeout: 40ms}
    backends:
      - address: "` + addr + `"
routes:
  - pool: web
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncWriter{}
	log, level, err := telemetry.NewLogger(logs, "debug")
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(path, nil, cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, hup) }()

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "veloflux started") {
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
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
	for !strings.Contains(logs.String(), `"reason":"SIGHUP"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload line:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the context ended")
	}
	if !strings.Contains(logs.String(), "veloflux stopped") {
		t.Errorf("no stop line:\n%s", logs.String())
	}
}

// syncWriter is a log sink safe for concurrent writers.
type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// buildNode writes yaml to a file and builds a node from it, as serve does.
func buildNode(t *testing.T, yaml string) (*app, *syncWriter, error) {
	t.Helper()
	return buildNodeEnv(t, yaml, nil)
}

// buildNodeEnv is buildNode with environ as the node's environment.
func buildNodeEnv(t *testing.T, yaml string, environ []string) (*app, *syncWriter, error) {
	t.Helper()
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, environ)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncWriter{}
	log, level, err := telemetry.NewLogger(logs, "debug")
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(path, environ, cfg, log, level)
	return a, logs, err
}
