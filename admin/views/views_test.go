package views

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/admin"
	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
	"github.com/veloflux/veloflux/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// healthView is the proxy's health view as cmd composes it: drains, passive, consensus.
type healthView struct {
	drains    *gossip.Drains
	passive   *health.Passive
	consensus *consensus.View
}

func (v healthView) Healthy(id string) bool {
	return !v.drains.Drained(id) && !v.passive.Ejected(id) && v.consensus.Healthy(id)
}

// testNode is a node's real parts, not running, over one pool of three backends of which
// only the first is actively checked. told records what SetDraining was told.
type testNode struct {
	parts    Parts
	told     []bool
	sessions *proxy.LocalSessions
	reg      *prometheus.Registry
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	checker, err := health.NewChecker(health.DefaultConfig(), nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	passive, err := health.NewPassive(checker, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	checker.OnResult(passive.ObserveProbe)
	view, err := consensus.New(consensus.DefaultConfig(), checker, consensus.Gossip{}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	passive.OnChange(view.ReportLocal)
	sc := gossip.DefaultStoreConfig()
	sc.NodeName = "local"
	st, err := gossip.NewStore(sc, gossip.NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	drains := gossip.NewDrains(st, nil)
	p, err := proxy.New(proxy.DefaultConfig(), proxy.Options{
		Health:     healthView{drains: drains, passive: passive, consensus: view},
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ids := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	snap := &discovery.Snapshot{Source: "static", Routes: []discovery.Route{{Pool: "web"}}}
	pool := discovery.Pool{Name: "web"}
	for _, id := range ids {
		pool.Backends = append(pool.Backends, discovery.Backend{ID: id, Address: id})
	}
	snap.Pools = []discovery.Pool{pool}
	if err := p.Apply(snap); err != nil {
		t.Fatal(err)
	}
	view.SetTargets([]health.Target{{ID: ids[0], Pool: "web", Address: ids[0], Path: "/health"}})
	passive.SetPools([]health.PassivePool{{Name: "web", Backends: ids,
		Config: health.PassiveConfig{ConsecutiveFailures: 2, EjectionTime: time.Minute, MaxEjectionTime: time.Hour, MaxEjectionPercent: 100}}})
	srvCfg := proxy.DefaultServerConfig()
	srvCfg.Addr = "127.0.0.1:0"
	server, err := proxy.NewServer(srvCfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Discovery.Consul.Token = "secret-token"
	n := &testNode{sessions: proxy.NewLocalSessions(0), reg: reg}
	n.parts = Parts{
		Metrics: reg, Sessions: n.sessions,
		Version: "v-test", Started: time.Now().Add(-time.Minute), ConfigFile: "/etc/veloflux/config.yaml",
		Proxy: p, Server: server, Checker: checker, Passive: passive, Consensus: view, Drains: drains,
		Running: func() (*config.Config, Reload) {
			return cfg, Reload{At: time.Now(), OK: false, Error: "pools[0]: bad"}
		},
		SetDraining: func(d bool) { n.told = append(n.told, d) },
	}
	return n
}

// roundTrip encodes v as the admin server does and decodes it as a client would.
func roundTrip[T any](t *testing.T, v any) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return out
}

func TestNewNamesMissingParts(t *testing.T) {
	n := newTestNode(t)
	tests := []struct {
		name  string
		edit  func(*Parts)
		wants []string
	}{
		{"complete", func(*Parts) {}, nil},
		{"optional parts left out", func(p *Parts) { p.SetDraining, p.SourceConflicts, p.Consul, p.Cluster = nil, nil, nil, nil }, nil},
		{"no proxy and no config", func(p *Parts) { p.Proxy, p.Running = nil, nil }, []string{"Parts.Proxy", "Parts.Running"}},
		{"no metrics and no sessions", func(p *Parts) { p.Metrics, p.Sessions = nil, nil }, []string{"Parts.Metrics", "Parts.Sessions"}},
		{"cluster without its store", func(p *Parts) { p.Cluster = &Cluster{Name: "n1"} }, []string{"Parts.Cluster.Node", "Parts.Cluster.Store"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := n.parts
			tt.edit(&p)
			_, err := New(p)
			if (err != nil) != (len(tt.wants) > 0) {
				t.Fatalf("New: %v, want errors naming %v", err, tt.wants)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestStatus(t *testing.T) {
	n := newTestNode(t)
	n.parts.SourceConflicts = func() []string { return []string{`pool "web": static and consul`} }
	c, err := New(n.parts)
	if err != nil {
		t.Fatal(err)
	}
	st := roundTrip[map[string]any](t, c.Status())
	want := map[string]any{
		"version": "v-test", "config_file": "/etc/veloflux/config.yaml", "draining": false,
		"inflight": 0.0, "table_version": 1.0, "health_targets": 1.0, "health_probed": 1.0,
		"uptime_seconds": 60.0, "listen_addresses": nil, "consul": nil, "cluster": nil, "acme": nil,
		"source_conflicts": []any{`pool "web": static and consul`},
	}
	for k, w := range want {
		if got, ok := st[k]; !ok || !jsonEqual(got, w) {
			t.Errorf("status[%q] = %v, want %v", k, got, w)
		}
	}
	if last, _ := st["last_reload"].(map[string]any); last["ok"] != false || last["error"] != "pools[0]: bad" {
		t.Errorf("last_reload = %v", st["last_reload"])
	}
	if len(st) != len(want)+2 { // started and last_reload
		t.Errorf("status has %d keys, want %d: %v", len(st), len(want)+2, st)
	}
	if cfg := roundTrip[map[string]any](t, c.Config()); !strings.Contains(mustJSON(t, cfg), `"Token":"REDACTED"`) {
		t.Errorf("config not redacted: %s", mustJSON(t, cfg))
	}

	// With auto_cert, "acme" is what the ACME manager reports.
	n.parts.ACME = func() any { return map[string]any{"names": []string{"shop.example.com"}} }
	if c, err = New(n.parts); err != nil {
		t.Fatal(err)
	}
	st = roundTrip[map[string]any](t, c.Status())
	if !jsonEqual(st["acme"], map[string]any{"names": []any{"shop.example.com"}}) {
		t.Errorf("status[acme] = %v, want the manager's status", st["acme"])
	}
}

// TestHealthAndDrains: a backend an operator drained, one the passive checks ejected and one
// serving, each with its reason, in /admin/health and /admin/pools.
func TestHealthAndDrains(t *testing.T) {
	n := newTestNode(t)
	c, err := New(n.parts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DrainBackend("10.0.0.1:80", true); err != nil {
		t.Fatal(err)
	}
	if err := c.DrainBackend("10.9.9.9:80", true); !errors.Is(err, admin.ErrUnknownBackend) {
		t.Fatalf("draining an unknown backend: %v, want ErrUnknownBackend", err)
	}
	if err := c.DrainBackend("10.9.9.9:80", false); err != nil {
		t.Fatalf("undraining a backend no pool has (clean-up) refused: %v", err)
	}
	n.parts.Passive.Report("10.0.0.2:80", health.Outcome5xx)
	n.parts.Passive.Report("10.0.0.2:80", health.Outcome5xx)

	type entry struct {
		Backend, Why string
		Healthy      bool
		Drained      bool
		Ejected      *struct{ Reason string }
		Consensus    struct {
			Healthy, Standalone bool
			Probers             []string
		}
	}
	got := roundTrip[[]entry](t, c.Health())
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(got), got)
	}
	if e := got[0]; e.Healthy || !e.Drained || e.Why != "drained by an operator" || !e.Consensus.Standalone || len(e.Consensus.Probers) != 1 {
		t.Errorf("drained backend: %+v", e)
	}
	if e := got[1]; e.Healthy || e.Drained || e.Ejected == nil || !strings.HasPrefix(e.Why, "ejected by passive checks on this node: ") {
		t.Errorf("ejected backend: %+v", e)
	}
	if e := got[2]; !e.Healthy || e.Why != "" || e.Ejected != nil || !e.Consensus.Healthy {
		t.Errorf("serving backend: %+v", e)
	}

	type backend struct {
		ID            string
		HealthPath    string `json:"health_path"`
		EjectedReason string `json:"ejected_reason"`
	}
	pools := roundTrip[[]struct {
		Name     string
		Backends []backend
	}](t, c.Pools())
	if len(pools) != 1 || len(pools[0].Backends) != 3 {
		t.Fatalf("pools %+v", pools)
	}
	if b := pools[0].Backends; b[0].HealthPath != "/health" || b[1].EjectedReason == "" || b[2].HealthPath != "" {
		t.Errorf("backends %+v", b)
	}
}

func TestNodeDrainTellsOthers(t *testing.T) {
	n := newTestNode(t)
	c, err := New(n.parts)
	if err != nil {
		t.Fatal(err)
	}
	c.Drain()
	if !n.parts.Proxy.Draining() || roundTrip[map[string]any](t, c.Status())["draining"] != true {
		t.Fatal("the proxy does not drain after Drain")
	}
	c.Undrain()
	if n.parts.Proxy.Draining() {
		t.Fatal("the proxy still drains after Undrain")
	}
	if len(n.told) != 2 || !n.told[0] || n.told[1] {
		t.Fatalf("SetDraining told %v, want [true false]", n.told)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
