package main

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/internal/backendtls"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
	"github.com/veloflux/veloflux/proxy"
	"github.com/veloflux/veloflux/proxy/balance"
)

// The config package checks algorithm names without importing the balancer; this keeps the
// two lists from drifting apart.
func TestConfigAlgorithmsMatchBalancer(t *testing.T) {
	cfgNames := []string{config.AlgorithmIPHash, config.AlgorithmLeastConn, config.AlgorithmRandom,
		config.AlgorithmRoundRobin, config.AlgorithmWeighted}
	slices.Sort(cfgNames)
	if got := balance.Algorithms(); !slices.Equal(got, cfgNames) {
		t.Fatalf("balance.Algorithms() = %v, config accepts %v", got, cfgNames)
	}
}

func TestWiringFromSeedConfig(t *testing.T) {
	cfg, err := config.Load("../../config/testdata/seed.yaml", []string{"VFX_STICKY_SECRET=0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	snap := staticSnapshot(cfg, nil)
	if len(snap.Pools) != len(cfg.Pools) || len(snap.Routes) != len(cfg.Routes) {
		t.Fatalf("snapshot has %d pools %d routes, config %d %d", len(snap.Pools), len(snap.Routes), len(cfg.Pools), len(cfg.Routes))
	}
	for i, p := range cfg.Pools {
		sp := snap.Pools[i]
		if sp.Name != p.Name || sp.Algorithm != p.Algorithm || sp.Sticky != p.StickySessions || len(sp.Backends) != len(p.Backends) {
			t.Errorf("pool %d: snapshot %+v from config %+v", i, sp, p)
		}
		for j, b := range p.Backends {
			want := b.HealthCheck.Path
			if want == "" {
				want = p.HealthCheck.Path
			}
			if got := sp.Backends[j]; got.ID != b.Address || got.Address != b.Address || got.Weight != b.Weight || got.HealthPath != want {
				t.Errorf("pool %d backend %d: %+v, want address/ID %s weight %d path %q", i, j, got, b.Address, b.Weight, want)
			}
		}
	}
	pc := proxyConfig(cfg)
	if pc.Sticky != cfg.Sticky || pc.Sticky.Secret != "0123456789abcdef0123456789abcdef" {
		t.Errorf("sticky settings not carried over: %+v", pc.Sticky)
	}
	if pc.Retry.Attempts != cfg.Retry.Attempts || pc.Retry.Timeout != cfg.Retry.Timeout {
		t.Errorf("retry settings not carried over: %+v", pc.Retry)
	}
}

func TestAdminPassword(t *testing.T) {
	file := t.TempDir() + "/pass"
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		environ []string
		want    string
		wantErr bool
	}{
		{"unset", nil, "", false},
		{"env", []string{"VF_ADMIN_PASS=direct"}, "direct", false},
		{"env wins over file", []string{"VF_ADMIN_PASS=direct", "VF_ADMIN_PASS_FILE=" + file}, "direct", false},
		{"file without newline", []string{"VF_ADMIN_PASS_FILE=" + file}, "from-file", false},
		{"missing file is an error", []string{"VF_ADMIN_PASS_FILE=" + file + ".nope"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := adminPassword(tt.environ)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("adminPassword = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestConnectionCapWiring(t *testing.T) {
	t.Run("defaults agree", func(t *testing.T) {
		c, p := config.Default().Global.Limits, proxy.DefaultConfig()
		if c.MaxConnsPerBackend != p.MaxConnsPerBackend || c.BackendQueueTimeout != p.BackendQueueTimeout {
			t.Fatalf("config defaults %d, %s; proxy defaults %d, %s", c.MaxConnsPerBackend, c.BackendQueueTimeout, p.MaxConnsPerBackend, p.BackendQueueTimeout)
		}
	})
	t.Run("from the file", func(t *testing.T) {
		file := testconfig.Config{
			Global: testconfig.Global{Limits: &testconfig.Limits{MaxConnsPerBackend: 100, BackendQueueTimeout: testconfig.Duration(2 * time.Second)}},
			Pools: []testconfig.Pool{
				{Name: "own", MaxConnsPerBackend: 5, Backends: []testconfig.Backend{{Address: "10.0.0.1:80"}}},
				{Name: "inherits", Backends: []testconfig.Backend{{Address: "10.0.0.2:80"}}},
			},
		}
		cfg, err := config.Parse([]byte(file.YAML(t)), nil)
		if err != nil {
			t.Fatal(err)
		}
		pc := proxyConfig(cfg)
		if pc.MaxConnsPerBackend != 100 || pc.BackendQueueTimeout != 2*time.Second {
			t.Fatalf("proxy config cap %d, queue timeout %s; want 100, 2s", pc.MaxConnsPerBackend, pc.BackendQueueTimeout)
		}
		snap := staticSnapshot(cfg, nil)
		if got := []int{snap.Pools[0].MaxConnsPerBackend, snap.Pools[1].MaxConnsPerBackend}; !slices.Equal(got, []int{5, 100}) {
			t.Fatalf("pool caps %v, want [5 100]", got)
		}
	})
}

// TestBackendTLSWiring: pools[].tls reaches the proxy's backends and the health targets alike;
// a pool that only skips verification keeps the shared transport (no settings).
func TestBackendTLSWiring(t *testing.T) {
	tests := []struct {
		name string
		pool config.Pool
		skip bool
		want backendtls.Settings
	}{
		{"private CA and client certificate",
			config.Pool{TLS: config.PoolTLS{CAFile: "/ca.pem", ServerName: "api.internal", CertFile: "/c.pem", KeyFile: "/c.key"}},
			false, backendtls.Settings{CAFile: "/ca.pem", ServerName: "api.internal", CertFile: "/c.pem", KeyFile: "/c.key"}},
		{"client certificate with tls_skip_verify", config.Pool{TLSSkipVerify: true, TLS: config.PoolTLS{CertFile: "/c.pem", KeyFile: "/c.key"}},
			true, backendtls.Settings{CertFile: "/c.pem", KeyFile: "/c.key", InsecureSkipVerify: true}},
		{"tls.insecure_skip_verify alone", config.Pool{TLS: config.PoolTLS{InsecureSkipVerify: true}}, true, backendtls.Settings{}},
		{"tls_skip_verify alone", config.Pool{TLSSkipVerify: true}, true, backendtls.Settings{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			p := tt.pool
			p.Name, p.Algorithm, p.Protocol = "api", config.AlgorithmRoundRobin, config.ProtocolHTTPS
			p.HealthCheck.Path = "/health"
			p.Backends = []config.Backend{{Address: "10.0.0.1:443", Weight: 1}}
			cfg.Pools = []config.Pool{p}
			snap := staticSnapshot(cfg, nil)
			b := snap.Pools[0].Backends[0]
			if b.TLS != tt.want || b.TLSSkipVerify != tt.skip {
				t.Errorf("backend TLS = %+v skip %v, want %+v skip %v", b.TLS, b.TLSSkipVerify, tt.want, tt.skip)
			}
			targets := healthTargets(snap, cfg, nil)
			if len(targets) != 1 || targets[0].TLS != tt.want || targets[0].TLSSkipVerify != tt.skip {
				t.Errorf("health targets = %+v, want one with TLS %+v skip %v", targets, tt.want, tt.skip)
			}
		})
	}
}

// The fields of the cluster's configs that no key sets are filled by the program: the node's
// name (in the store too), its region and version, and with join_consul the peers found in
// Consul, asked at once and kept to ask again. Everything from the file is carried over.
func TestGossipConfigsFromTheProgram(t *testing.T) {
	file := testconfig.Config{
		Geo: &testconfig.Geo{NodeRegion: "eu-west"},
		Cluster: &testconfig.Cluster{Enabled: true, Label: "prod", Seeds: []string{"10.0.0.1:7946"}, MaxEntriesPerKind: 50,
			TombstoneTTL: testconfig.Duration(2 * time.Hour)},
	}
	cfg, err := config.Parse([]byte(file.YAML(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	asked := 0
	find := func() []string { asked++; return []string{"10.0.0.9:7946"} }
	tests := []struct {
		name      string
		findPeers func() []string
		seeds     []string
		asked     int
	}{
		{"seeds only", nil, []string{"10.0.0.1:7946"}, 0},
		{"with peers from Consul", find, []string{"10.0.0.1:7946", "10.0.0.9:7946"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked = 0
			gc, sc := gossipConfigs(cfg, "node-a", tt.findPeers)
			if gc.Name != "node-a" || sc.NodeName != "node-a" {
				t.Errorf("names %q and %q, want node-a for both", gc.Name, sc.NodeName)
			}
			if gc.Region != "eu-west" || gc.Version != version {
				t.Errorf("region %q version %q, want eu-west and %q", gc.Region, gc.Version, version)
			}
			if !slices.Equal(gc.Seeds, tt.seeds) || asked != tt.asked {
				t.Errorf("seeds %v after %d asks, want %v after %d", gc.Seeds, asked, tt.seeds, tt.asked)
			}
			if (gc.FindPeers == nil) != (tt.findPeers == nil) {
				t.Errorf("FindPeers set: %t, want %t", gc.FindPeers != nil, tt.findPeers != nil)
			}
			if gc.Label != "prod" || sc.MaxEntriesPerKind != 50 || sc.TombstoneTTL != 2*time.Hour || sc.ExpireInterval != gossip.DefaultStoreConfig().ExpireInterval {
				t.Errorf("file values not carried over: label %q, store %+v", gc.Label, sc)
			}
			if !slices.Equal(cfg.Cluster.Seeds, []string{"10.0.0.1:7946"}) {
				t.Errorf("the loaded config's seeds changed to %v", cfg.Cluster.Seeds)
			}
			if err := gc.Validate(); err != nil {
				t.Errorf("completed config invalid: %v", err)
			}
			if err := sc.Validate(); err != nil {
				t.Errorf("completed store config invalid: %v", err)
			}
		})
	}
}

// TestSeedACMEConfigRuns: the seed's basic TLS section, auto_cert with acme_email and
// cert_dir, is valid and runnable.
func TestSeedACMEConfigRuns(t *testing.T) {
	file := testconfig.Config{
		Global: testconfig.Global{TLSBindAddress: "0.0.0.0:443",
			TLS: &testconfig.TLS{AutoCert: true, ACMEEmail: "ops@example.com", CertDir: "/etc/veloflux/certs"}},
		Pools:  []testconfig.Pool{testconfig.WebPool("10.0.0.1:8080")},
		Routes: []testconfig.Route{{Host: "example.com", Pool: "web"}},
	}
	cfg, err := config.Parse([]byte(file.YAML(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ACMEStorage(); got != config.ACMEStorageFile {
		t.Errorf("ACME storage without Consul = %q, want file", got)
	}
}

// TestHTTP1FastPathWiring: global.http1_fast_path switches the plain listener's server and the
// http backends' client together; it is on unless the file turns it off.
func TestHTTP1FastPathWiring(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fastPath *bool // nil: not in the file
		want     bool
	}{
		{"default", nil, true},
		{"off", testconfig.Ptr(false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := testconfig.Config{Global: testconfig.Global{BindAddress: "127.0.0.1:0", HTTP1FastPath: tc.fastPath}}
			cfg, err := config.Parse([]byte(file.YAML(t)), nil)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := serverConfig(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if sc.HTTP1FastPath != tc.want || transportConfig(cfg).FastHTTP1 != tc.want {
				t.Fatalf("server fast path %v, transport fast path %v; want both %v", sc.HTTP1FastPath, transportConfig(cfg).FastHTTP1, tc.want)
			}
		})
	}
}
