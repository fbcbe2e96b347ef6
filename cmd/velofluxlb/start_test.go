package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// testNode is a node built by newApp from a YAML file and run by run in the background.
type testNode struct {
	a    *app
	logs *testutil.LogBuffer
	stop context.CancelFunc
	done chan error
}

// startNode builds a node and runs it until the test stops it (or ends).
func startNode(t *testing.T, yaml string) *testNode {
	t.Helper()
	return startNodeEnv(t, yaml, nil)
}

// startNodeEnv is startNode with environ as the node's environment.
func startNodeEnv(t *testing.T, yaml string, environ []string) *testNode {
	t.Helper()
	a, logs, err := buildNodeEnv(t, yaml, environ)
	if err != nil {
		t.Fatalf("newApp: %v\n%s", err, logs.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{a: a, logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { n.done <- a.run(ctx, make(chan os.Signal)) }()
	t.Cleanup(func() { n.shutdown(t) })
	return n
}

// shutdown ends the node's context and returns what run returned; safe to call twice.
func (n *testNode) shutdown(t *testing.T) error {
	t.Helper()
	n.stop()
	timer := time.NewTimer(testutil.Timeout())
	defer timer.Stop()
	select {
	case err, ok := <-n.done:
		if ok {
			close(n.done)
		}
		return err
	case <-timer.C:
		t.Fatalf("run did not return %v after its context ended:\n%s", testutil.Timeout(), n.logs.String())
		return nil
	}
}

// TestAdminWhileConsulStarts asks the admin API for the status, and drains and undrains the
// node, while the node is still starting its Consul discovery and registration against a real
// agent. Every answer must show the Consul source: the admin API must never see a node whose
// parts are still being assigned (under -race, such an assignment is reported as a data race).
func TestAdminWhileConsulStarts(t *testing.T) {
	agent := consultest.Start(t, "")
	cfg := testconfig.Config{Global: testconfig.Loopback(), Discovery: &testconfig.Discovery{Consul: testconfig.Consul{
		Enabled: true, Address: agent.HTTPAddr,
		Register: &testconfig.ConsulRegister{Enabled: true, Name: "vf-start-test", CheckInterval: testconfig.Duration(time.Second)},
	}}}
	cfg.Global.DrainTimeout = testconfig.Duration(time.Second)
	n := startNode(t, cfg.YAML(t))
	adminAddr := n.a.admin.Addr().String() // bound by newApp, before run starts anything
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	call := func(method, path string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+adminAddr+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
		}
		var status map[string]any
		if err := json.Unmarshal(body, &status); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
		return status
	}
	// Ask from the moment the admin listener is bound until a few answers after the node
	// says it started.
	after := 0
	for i := 0; after < 3; i++ {
		if i == 2000 {
			t.Fatalf("the node did not serve after %d requests:\n%s", i, n.logs.String())
		}
		select {
		case <-n.a.serving:
			after++
		default:
		}
		for _, r := range []struct{ method, path string }{
			{http.MethodGet, "/admin/status"},
			{http.MethodPost, "/admin/drain"},
			{http.MethodPost, "/admin/undrain"},
		} {
			if st := call(r.method, r.path); st["consul"] == nil {
				t.Fatalf("%s %s answered without the Consul source: %v", r.method, r.path, st)
			}
		}
	}
	if err := n.shutdown(t); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestNodeRunsDrainsAndStops runs a whole node (static pool, metrics and admin on port 0),
// proxies a request, then ends its context while a request is still in flight: the proxy
// drains while /readyz answers 503 and the admin API still answers, and once the request is
// done every part stops and no goroutine is left behind.
func TestNodeRunsDrainsAndStops(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "hello")
	}))
	cfg := testconfig.Config{Global: testconfig.Loopback(), Pools: []testconfig.Pool{testconfig.WebPool(be.Listener.Addr().String())},
		Routes: []testconfig.Route{{Pool: "web"}}}
	cfg.Global.DrainTimeout = testconfig.Duration(10 * time.Second)
	cfg.Pools[0].HealthCheck = &testconfig.HealthCheck{Path: "/", Interval: testconfig.Duration(50 * time.Millisecond), Timeout: testconfig.Duration(40 * time.Millisecond)}
	n := startNode(t, cfg.YAML(t))
	proxyURL := "http://" + n.a.server.Addrs()[0].String()
	readyz := "http://" + n.a.metricsLn.Addr().String() + "/readyz"
	status := "http://" + n.a.admin.Addr().String() + "/admin/status"
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(proxyURL + "/"); code != http.StatusOK || body != "hello" {
		t.Fatalf("proxied request: %d %q", code, body)
	}
	if code, _ := get(readyz); code != http.StatusOK {
		t.Fatalf("/readyz %d before the drain", code)
	}

	slow := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(proxyURL + "/slow")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()
	<-entered
	n.stop()
	testutil.Eventually(t, "/readyz to answer 503 during the drain", func() bool {
		code, _ := get(readyz)
		return code == http.StatusServiceUnavailable
	})
	if code, body := get(status); code != http.StatusOK || !strings.Contains(body, `"draining":true`) {
		t.Fatalf("admin status during the drain: %d %s", code, body)
	}
	select {
	case err := <-n.done:
		t.Fatalf("run returned %v with a request in flight", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight during the drain: %v", err)
	}
	if err := n.shutdown(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	tr.CloseIdleConnections()
	be.Close()
	if _, err := c.Get(readyz); err == nil {
		t.Fatal("the metrics listener still answers after run returned")
	}
	goleak.VerifyNone(t)
}

// mustRebind binds addr again and lets it go: what a failed start bound must be free.
func mustRebind(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s not free again: %v", addr, err)
	}
	ln.Close()
}

// TestStartFailureReleasesEverything: when a part cannot start, newApp or run returns the
// error naming it, and leaves no goroutine and no listener behind: the proxy's port, and the
// metrics or admin port that was bound before the failure, are free again.
func TestStartFailureReleasesEverything(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	const free = "free" // a fixed port nothing listens on, checked free again at the end
	tests := []struct {
		name                    string
		metrics, admin, cluster string
		wantErr                 string
		atRun                   bool // the failure comes from a part run starts, not from newApp
	}{
		{name: "admin address taken", metrics: free, admin: taken.Addr().String(),
			wantErr: "admin: listen on " + taken.Addr().String()},
		{name: "metrics address taken", metrics: taken.Addr().String(), admin: free,
			wantErr: "metrics: listen " + taken.Addr().String()},
		{name: "metrics address not on this host", metrics: "192.0.2.1:0", admin: free,
			wantErr: "metrics: listen 192.0.2.1:0"},
		{name: "gossip address taken", metrics: free, admin: free, cluster: taken.Addr().String(),
			wantErr: "gossip: gossip: start memberlist", atRun: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustBeFree := []string{testutil.FreeAddr(t)}
			addr := func(a string) string {
				if a == free {
					a = testutil.FreeAddr(t)
					mustBeFree = append(mustBeFree, a)
				}
				return a
			}
			cfg := testconfig.Config{
				Global: testconfig.Global{BindAddress: mustBeFree[0], MetricsAddress: testconfig.Ptr(addr(tt.metrics)),
					AdminAddress: testconfig.Ptr(addr(tt.admin)), DrainTimeout: testconfig.Duration(time.Second)},
				Pools:  []testconfig.Pool{testconfig.WebPool("127.0.0.1:1")},
				Routes: []testconfig.Route{{Pool: "web"}},
			}
			if tt.cluster != "" {
				cfg.Cluster = &testconfig.Cluster{Enabled: true, Name: "failing", BindAddress: tt.cluster}
			}
			a, logs, err := buildNode(t, cfg.YAML(t))
			if tt.atRun {
				if err != nil {
					t.Fatalf("newApp: %v", err)
				}
				done := make(chan error, 1)
				go func() { done <- a.run(context.Background(), make(chan os.Signal)) }()
				err = testutil.Receive(t, done, "run to return after a part failed")
			} else if a != nil {
				t.Fatal("newApp returned a node with its error")
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q\n%s", err, tt.wantErr, logs.String())
			}
			for _, addr := range mustBeFree {
				mustRebind(t, addr)
			}
			goleak.VerifyNone(t)
		})
	}
}
