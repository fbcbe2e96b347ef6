package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
	"github.com/veloflux/veloflux/proxy"
)

func mustParseConfig(t *testing.T, file testconfig.Config) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(file.YAML(t)), nil)
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg
}

func TestHealthTargets(t *testing.T) {
	cfg := mustParseConfig(t, testconfig.Config{
		Global: testconfig.Global{HealthCheck: &testconfig.HealthCheck{
			Interval: testconfig.Duration(20 * time.Second), Timeout: testconfig.Duration(3 * time.Second), Retries: 4, Rise: 3,
			MaxInterval: testconfig.Duration(2 * time.Minute), Method: "HEAD", Host: "g.internal", ExpectStatus: "200",
		}},
		Pools: []testconfig.Pool{
			{Name: "static-http",
				HealthCheck: &testconfig.HealthCheck{Path: "/health", ExpectStatus: "200-299,301", Interval: testconfig.Duration(5 * time.Second)},
				Backends: []testconfig.Backend{
					{Address: "10.0.0.1:80"},
					{Address: "10.0.0.2:80", HealthCheck: &testconfig.BackendHealthCheck{Path: "/own"}},
					{Address: "10.0.0.5:80", HealthCheck: &testconfig.BackendHealthCheck{Method: "GET", Host: "five.internal", ExpectStatus: "204"}},
				}},
			{Name: "static-tcp", HealthCheck: &testconfig.HealthCheck{Type: "tcp", Retries: 1},
				Backends: []testconfig.Backend{{Address: "10.0.0.3:80"}}},
			{Name: "static-unchecked", Backends: []testconfig.Backend{{Address: "10.0.0.4:80"}}},
		},
	})
	snap, _ := discovery.Merge(staticSnapshot(cfg, nil), &discovery.Snapshot{Source: "consul", Pools: []discovery.Pool{{
		Name: "consul-pool",
		Backends: []discovery.Backend{
			{ID: "dc1/n1/plain", Address: "10.1.0.1:80", HealthPath: "/ready"},
			{ID: "dc1/n1/tagged", Address: "10.1.0.2:80", HealthPath: "/ready", HealthCheck: discovery.HealthCheck{
				Method: "GET", Host: "t.internal", ExpectStatus: "204", Interval: time.Second, Timeout: 500 * time.Millisecond,
				MaxInterval: time.Minute, Rise: 1, Fall: 2,
			}},
			{ID: "dc1/n1/tcp", Address: "10.1.0.3:80", HealthCheck: discovery.HealthCheck{Type: "tcp"}},
			{ID: "dc1/n1/unchecked", Address: "10.1.0.4:80"},
		},
	}}})
	got := map[string]health.Target{}
	for _, tg := range healthTargets(snap, cfg, nil) {
		got[tg.ID] = tg
	}
	tests := []struct {
		id   string
		want *health.Target // nil: not checked
	}{
		{"10.0.0.1:80", &health.Target{
			ID: "10.0.0.1:80", Pool: "static-http", Address: "10.0.0.1:80", Type: "http", Path: "/health", Method: "HEAD",
			Host: "g.internal", ExpectStatus: "200-299,301", Interval: 5 * time.Second, Timeout: 3 * time.Second,
			Fall: 4, Rise: 3, MaxInterval: 2 * time.Minute,
		}},
		{"10.0.0.2:80", &health.Target{
			ID: "10.0.0.2:80", Pool: "static-http", Address: "10.0.0.2:80", Type: "http", Path: "/own", Method: "HEAD",
			Host: "g.internal", ExpectStatus: "200-299,301", Interval: 5 * time.Second, Timeout: 3 * time.Second,
			Fall: 4, Rise: 3, MaxInterval: 2 * time.Minute,
		}},
		{"10.0.0.5:80", &health.Target{
			ID: "10.0.0.5:80", Pool: "static-http", Address: "10.0.0.5:80", Type: "http", Path: "/health", Method: "GET",
			Host: "five.internal", ExpectStatus: "204", Interval: 5 * time.Second, Timeout: 3 * time.Second,
			Fall: 4, Rise: 3, MaxInterval: 2 * time.Minute,
		}},
		{"10.0.0.3:80", &health.Target{
			ID: "10.0.0.3:80", Pool: "static-tcp", Address: "10.0.0.3:80", Type: "tcp", Method: "HEAD",
			Host: "g.internal", ExpectStatus: "200", Interval: 20 * time.Second, Timeout: 3 * time.Second,
			Fall: 1, Rise: 3, MaxInterval: 2 * time.Minute,
		}},
		{"10.0.0.4:80", nil},
		// Discovered backends: global values for what the tags leave out; durations and
		// counts at 0 follow the checker's Config, itself global.health_check.
		{"dc1/n1/plain", &health.Target{
			ID: "dc1/n1/plain", Pool: "consul-pool", Address: "10.1.0.1:80", Type: "http", Path: "/ready", Method: "HEAD",
			Host: "g.internal", ExpectStatus: "200",
		}},
		{"dc1/n1/tagged", &health.Target{
			ID: "dc1/n1/tagged", Pool: "consul-pool", Address: "10.1.0.2:80", Type: "http", Path: "/ready", Method: "GET",
			Host: "t.internal", ExpectStatus: "204", Interval: time.Second, Timeout: 500 * time.Millisecond,
			MaxInterval: time.Minute, Rise: 1, Fall: 2,
		}},
		{"dc1/n1/tcp", &health.Target{
			ID: "dc1/n1/tcp", Pool: "consul-pool", Address: "10.1.0.3:80", Type: "tcp", Method: "HEAD",
			Host: "g.internal", ExpectStatus: "200",
		}},
		{"dc1/n1/unchecked", nil},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			tg, ok := got[tt.id]
			if tt.want == nil {
				if ok {
					t.Fatalf("unchecked backend has target %+v", tg)
				}
				return
			}
			if !ok || tg != *tt.want {
				t.Fatalf("target\n got %+v\nwant %+v", tg, *tt.want)
			}
		})
	}
	if len(got) != 7 {
		t.Fatalf("%d targets, want 7", len(got))
	}
}

func TestPassivePools(t *testing.T) {
	cfg := mustParseConfig(t, testconfig.Config{
		Global: testconfig.Global{Passive: &testconfig.Passive{ConsecutiveFailures: 7, EjectionTime: testconfig.Duration(10 * time.Second),
			MaxEjectionTime: testconfig.Duration(time.Minute), MaxEjectionPercent: 20}},
		Pools: []testconfig.Pool{{Name: "static", Passive: &testconfig.Passive{ConsecutiveFailures: 2},
			Backends: []testconfig.Backend{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}}}},
	})
	snap, _ := discovery.Merge(staticSnapshot(cfg, nil), &discovery.Snapshot{Source: "consul", Pools: []discovery.Pool{
		{Name: "discovered", Backends: []discovery.Backend{{ID: "dc1/n/a", Address: "10.1.0.1:80"}}},
	}})
	got := passivePools(snap, cfg)
	want := []health.PassivePool{
		{Name: "static", Config: health.PassiveConfig{ConsecutiveFailures: 2, EjectionTime: 10 * time.Second, MaxEjectionTime: time.Minute, MaxEjectionPercent: 20},
			Backends: []string{"10.0.0.1:80", "10.0.0.2:80"}},
		{Name: "discovered", Config: health.PassiveConfig{ConsecutiveFailures: 7, EjectionTime: 10 * time.Second, MaxEjectionTime: time.Minute, MaxEjectionPercent: 20},
			Backends: []string{"dc1/n/a"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("passive pools\n got %+v\nwant %+v", got, want)
	}
}

// switchable is a real backend whose answers to proxied requests and to health probes can be
// changed while it runs, and which counts both.
type switchable struct {
	srv          *httptest.Server
	status       atomic.Int32 // for proxied requests
	healthStatus atomic.Int32 // for GET /health
	requests     atomic.Int64
	probes       atomic.Int64
}

func newSwitchable(t *testing.T, status, healthStatus int) *switchable {
	t.Helper()
	s := &switchable{}
	s.status.Store(int32(status))
	s.healthStatus.Store(int32(healthStatus))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			s.probes.Add(1)
			w.WriteHeader(int(s.healthStatus.Load()))
			return
		}
		s.requests.Add(1)
		w.WriteHeader(int(s.status.Load()))
		_, _ = io.WriteString(w, "body")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *switchable) addr() string { return s.srv.Listener.Addr().String() }

// healthNode is the health part of a node, wired as newApp wires it: a real checker and
// passive checks, the routing that maps configuration to both, and a real proxy on a real
// socket that reads healthView and reports to the passive checks.
type healthNode struct {
	checker *health.Checker
	passive *health.Passive
	proxy   *proxy.Proxy
	url     string
	client  *http.Client
}

func startHealthNode(t *testing.T, file testconfig.Config) *healthNode {
	t.Helper()
	cfg := mustParseConfig(t, file)
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	checker, passive, err := newHealthChecks(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	consensus, err := newConsensus(cfg, nil, checker, passive, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	drains, err := newDrains(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxyConfig(cfg), proxy.Options{
		Health:     healthView{drains: drains, passive: passive, consensus: consensus},
		Passive:    passive,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	r := &routing{proxy: p, consensus: consensus, passive: passive, log: log}
	if err := r.setStatic(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = checker.Run(ctx) })
	wg.Go(func() { _ = passive.Run(ctx) })
	wg.Go(func() { _ = consensus.Run(ctx) })
	srv := httptest.NewServer(p)
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
		cancel()
		wg.Wait()
	})
	return &healthNode{checker: checker, passive: passive, proxy: p, url: srv.URL, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (n *healthNode) get(t *testing.T) int {
	t.Helper()
	resp, err := n.client.Get(n.url + "/")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// poolConfig is a config with one pool of the given backends behind the default route, probed
// once an hour (so only the passive checks' ProbeNow brings a probe during a test), ejecting
// after 3 failures for ejectionTime.
func poolConfig(ejectionTime time.Duration, percent int, addrs ...string) testconfig.Config {
	pool := testconfig.WebPool(addrs...)
	pool.HealthCheck = &testconfig.HealthCheck{Path: "/health"}
	return testconfig.Config{
		Global: testconfig.Global{
			HealthCheck: &testconfig.HealthCheck{Interval: testconfig.Duration(time.Hour), Timeout: testconfig.Duration(time.Second),
				MaxInterval: testconfig.Duration(time.Hour)},
			Passive: &testconfig.Passive{ConsecutiveFailures: 3, EjectionTime: testconfig.Duration(ejectionTime),
				MaxEjectionTime: testconfig.Duration(10 * time.Second), MaxEjectionPercent: percent},
		},
		Pools:  []testconfig.Pool{pool},
		Routes: []testconfig.Route{{Pool: "web"}},
	}
}

// TestPassiveThroughProxy drives a real proxy against real backends and checks the passive
// checks end to end: a backend answering 5xx is ejected after 3 such answers and gets no
// more traffic, and comes back only through a successful active probe.
func TestPassiveThroughProxy(t *testing.T) {
	t.Run("5xx backend ejected, back after a probe succeeds", func(t *testing.T) {
		// Its probes fail until the test has checked that it gets no traffic, so it stays
		// out however long those requests take on a busy machine.
		bad := newSwitchable(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
		good1, good2 := newSwitchable(t, http.StatusOK, http.StatusOK), newSwitchable(t, http.StatusOK, http.StatusOK)
		n := startHealthNode(t, poolConfig(50*time.Millisecond, 50, bad.addr(), good1.addr(), good2.addr()))
		for bad.requests.Load() < 3 {
			n.get(t)
		}
		if !n.passive.Ejected(bad.addr()) {
			t.Fatalf("backend not ejected after %d 5xx answers", bad.requests.Load())
		}
		before := bad.requests.Load()
		for range 12 {
			if code := n.get(t); code != http.StatusOK {
				t.Fatalf("request answered %d while the failing backend is ejected", code)
			}
		}
		if got := bad.requests.Load(); got != before {
			t.Fatalf("the ejected backend got %d more requests", got-before)
		}
		testutil.Eventually(t, "a failing probe after the ejection time", func() bool { return bad.probes.Load() >= 1 })
		if !n.passive.Ejected(bad.addr()) {
			t.Fatal("the backend came back while its probes fail")
		}
		probes := bad.probes.Load()
		bad.healthStatus.Store(http.StatusOK)
		testutil.Eventually(t, "the backend back", func() bool { return !n.passive.Ejected(bad.addr()) })
		if bad.probes.Load() <= probes {
			t.Fatal("the backend came back without an active probe")
		}
		bad.status.Store(http.StatusOK)
		testutil.Eventually(t, "traffic to the returned backend", func() bool { n.get(t); return bad.requests.Load() > before })
	})

	t.Run("a failing probe keeps the ejected backend out", func(t *testing.T) {
		bad := newSwitchable(t, http.StatusInternalServerError, http.StatusServiceUnavailable)
		good := newSwitchable(t, http.StatusOK, http.StatusOK)
		n := startHealthNode(t, poolConfig(50*time.Millisecond, 50, bad.addr(), good.addr()))
		for i := 0; !n.passive.Ejected(bad.addr()); i++ {
			if i == 20 {
				t.Fatalf("not ejected after %d 5xx answers", bad.requests.Load())
			}
			n.get(t)
		}
		testutil.Eventually(t, "a probe after the ejection time", func() bool { return bad.probes.Load() >= 1 })
		time.Sleep(200 * time.Millisecond) // four ejection times: a timer alone would have returned it
		st := passiveStatus(t, n.passive, bad.addr())
		if !st.Ejected || !st.AwaitingProbe {
			t.Fatalf("status %+v, want still ejected and awaiting a successful probe", st)
		}
		if got := n.get(t); got != http.StatusOK {
			t.Fatalf("request answered %d; the ejected backend must get none", got)
		}
	})

	t.Run("max_ejection_percent keeps the pool serving", func(t *testing.T) {
		b1 := newSwitchable(t, http.StatusBadGateway, http.StatusOK)
		b2 := newSwitchable(t, http.StatusBadGateway, http.StatusOK)
		n := startHealthNode(t, poolConfig(10*time.Second, 100, b1.addr(), b2.addr()))
		for range 30 {
			n.get(t)
		}
		ejected := 0
		for _, b := range []*switchable{b1, b2} {
			if n.passive.Ejected(b.addr()) {
				ejected++
			}
		}
		if ejected != 1 {
			t.Fatalf("%d of 2 failing backends ejected at 100%%, want 1: the last one stays", ejected)
		}
		// The pool still answers from the remaining backend, its 502 passed on, never 503.
		if got := n.get(t); got != http.StatusBadGateway {
			t.Fatalf("answer %d, want the backend's own 502", got)
		}
	})

	t.Run("a pool of one is never emptied by passive checks", func(t *testing.T) {
		only := newSwitchable(t, http.StatusInternalServerError, http.StatusOK)
		n := startHealthNode(t, poolConfig(10*time.Second, 50, only.addr()))
		for range 10 {
			if got := n.get(t); got != http.StatusInternalServerError {
				t.Fatalf("answer %d, want the backend's own 500", got)
			}
		}
		if n.passive.Ejected(only.addr()) {
			t.Fatal("the only backend of a pool was ejected")
		}
	})
}

// TestAllDownPoolAnswers503 takes a pool's backends down through the active checks
// (nothing listens) and checks that its requests get 503 at once.
func TestAllDownPoolAnswers503(t *testing.T) {
	var dead []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, ln.Addr().String())
		_ = ln.Close()
	}
	cfg := poolConfig(10*time.Second, 50, dead...)
	cfg.Global.HealthCheck = &testconfig.HealthCheck{Interval: testconfig.Duration(20 * time.Millisecond),
		Timeout: testconfig.Duration(10 * time.Millisecond), Retries: 1}
	n := startHealthNode(t, cfg)
	testutil.Eventually(t, "both backends down", func() bool { return !n.checker.Healthy(dead[0]) && !n.checker.Healthy(dead[1]) })
	start := time.Now()
	for range 10 {
		if got := n.get(t); got != http.StatusServiceUnavailable {
			t.Fatalf("answer %d, want 503 from a pool with every backend down", got)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("10 requests to a down pool took %s", took)
	}
}

func passiveStatus(t *testing.T, p *health.Passive, id string) health.PassiveStatus {
	t.Helper()
	for _, s := range p.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no passive status for %s", id)
	return health.PassiveStatus{}
}
