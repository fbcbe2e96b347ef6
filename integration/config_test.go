//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// testConfig is a node's configuration file as Go values: each test states the settings it
// needs and yaml() writes the file, so no test assembles YAML by hand. Fields mirror the keys
// of the file (docs/configuration.md); a zero field is left out and takes its default. Extra
// holds keys the type does not know, for tests that write them on purpose.
type testConfig struct {
	Global    globalSection     `yaml:"global"`
	Discovery *discoverySection `yaml:"discovery,omitempty"`
	Sticky    *stickySection    `yaml:"sticky,omitempty"`
	Geo       *geoSection       `yaml:"geo,omitempty"`
	Cluster   *clusterSection   `yaml:"cluster,omitempty"`
	Tracing   *tracingSection   `yaml:"tracing,omitempty"`
	Pools     []poolConfig      `yaml:"pools,omitempty"`
	Routes    []routeConfig     `yaml:"routes,omitempty"`
}

type globalSection struct {
	BindAddress    string         `yaml:"bind_address,omitempty"`
	TLSBindAddress string         `yaml:"tls_bind_address,omitempty"`
	MetricsAddress string         `yaml:"metrics_address,omitempty"`
	AdminAddress   string         `yaml:"admin_address,omitempty"`
	DrainTimeout   duration       `yaml:"drain_timeout,omitempty"`
	HTTP3          *bool          `yaml:"http3,omitempty"`
	AccessLog      *bool          `yaml:"access_log,omitempty"`
	LogLevel       string         `yaml:"log_level,omitempty"`
	TrustedProxies []string       `yaml:"trusted_proxies,omitempty"`
	HealthCheck    *healthCheck   `yaml:"health_check,omitempty"`
	Limits         *limitsSection `yaml:"limits,omitempty"`
	TLS            *tlsSection    `yaml:"tls,omitempty"`
	Extra          map[string]any `yaml:",inline"`
}

type limitsSection struct {
	MaxClientConns int `yaml:"max_client_conns,omitempty"`
}

type tlsSection struct {
	CertFile       string     `yaml:"cert_file,omitempty"`
	KeyFile        string     `yaml:"key_file,omitempty"`
	Certificates   []certPair `yaml:"certificates,omitempty"`
	AutoCert       bool       `yaml:"auto_cert,omitempty"`
	ACMEEmail      string     `yaml:"acme_email,omitempty"`
	CertDir        string     `yaml:"cert_dir,omitempty"`
	ACMEDirectory  string     `yaml:"acme_directory,omitempty"`
	ACMECARoot     string     `yaml:"acme_ca_root,omitempty"`
	ACMEChallenges []string   `yaml:"acme_challenges,omitempty"`
	Storage        string     `yaml:"storage,omitempty"`
}

type certPair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type discoverySection struct {
	Consul consulSection `yaml:"consul"`
}

type consulSection struct {
	Enabled     bool            `yaml:"enabled"`
	Address     string          `yaml:"address,omitempty"`
	Token       string          `yaml:"token,omitempty"`
	Datacenters []string        `yaml:"datacenters,omitempty"`
	Coalesce    duration        `yaml:"coalesce,omitempty"`
	MinBackoff  duration        `yaml:"min_backoff,omitempty"`
	MaxBackoff  duration        `yaml:"max_backoff,omitempty"`
	Register    *consulRegister `yaml:"register,omitempty"`
}

type consulRegister struct {
	Enabled       bool     `yaml:"enabled"`
	ID            string   `yaml:"id,omitempty"`
	CheckInterval duration `yaml:"check_interval,omitempty"`
}

type stickySection struct {
	Secret string `yaml:"secret"`
}

type geoSection struct {
	Database       string `yaml:"database,omitempty"`
	NodeRegion     string `yaml:"node_region,omitempty"`
	ResponseHeader string `yaml:"response_header,omitempty"`
}

type clusterSection struct {
	Enabled     bool     `yaml:"enabled"`
	Name        string   `yaml:"name,omitempty"`
	BindAddress string   `yaml:"bind_address,omitempty"`
	GossipKey   string   `yaml:"gossip_key,omitempty"`
	GossipKeys  []string `yaml:"gossip_keys,omitempty"`
	Seeds       []string `yaml:"seeds,omitempty"`
	JoinConsul  bool     `yaml:"join_consul,omitempty"`
	// ReconnectInterval is how often a node alone retries its seeds.
	ReconnectInterval duration `yaml:"reconnect_interval,omitempty"`
}

type tracingSection struct {
	Enabled      bool     `yaml:"enabled"`
	Endpoint     string   `yaml:"endpoint,omitempty"`
	Protocol     string   `yaml:"protocol,omitempty"`
	Insecure     bool     `yaml:"insecure,omitempty"`
	SampleRatio  float64  `yaml:"sample_ratio,omitempty"`
	BatchTimeout duration `yaml:"batch_timeout,omitempty"`
	ServiceName  string   `yaml:"service_name,omitempty"`
}

type poolConfig struct {
	Name           string          `yaml:"name"`
	StickySessions bool            `yaml:"sticky_sessions,omitempty"`
	HealthCheck    *healthCheck    `yaml:"health_check,omitempty"`
	Backends       []backendConfig `yaml:"backends"`
}

type healthCheck struct {
	Path     string   `yaml:"path,omitempty"`
	Interval duration `yaml:"interval,omitempty"`
	Timeout  duration `yaml:"timeout,omitempty"`
	Retries  int      `yaml:"retries,omitempty"`
	Rise     int      `yaml:"rise,omitempty"`
}

type backendConfig struct {
	Address string `yaml:"address"`
	Region  string `yaml:"region,omitempty"`
}

type routeConfig struct {
	Host       string `yaml:"host,omitempty"`
	PathPrefix string `yaml:"path_prefix,omitempty"`
	Pool       string `yaml:"pool"`
	Geo        string `yaml:"geo,omitempty"`
}

// duration is written as Go writes it ("1.5s"), the form the config file reads; yaml would
// write a time.Duration as nanoseconds.
type duration time.Duration

func (d duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// IsZero lets omitempty leave an unset duration out.
func (d duration) IsZero() bool { return d == 0 }

// yaml is the file veloflux reads.
func (c testConfig) yaml(t testing.TB) string {
	t.Helper()
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2) // as the docs write it, so a failing test's file reads the same
	if err := enc.Encode(c); err != nil {
		t.Fatalf("marshal test config: %v", err)
	}
	if err := enc.Close(); err != nil {
		t.Fatalf("marshal test config: %v", err)
	}
	return out.String()
}

// ptr is a pointer to v, for the settings whose zero value is not their default.
func ptr[T any](v T) *T { return &v }

// loopbackGlobal is every listener on 127.0.0.1 with a port the kernel picks.
func loopbackGlobal() globalSection {
	return globalSection{BindAddress: "127.0.0.1:0", MetricsAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0"}
}

// webPool is the pool "web" over addrs.
func webPool(addrs ...string) poolConfig {
	p := poolConfig{Name: "web", Backends: []backendConfig{}}
	for _, a := range addrs {
		p.Backends = append(p.Backends, backendConfig{Address: a})
	}
	return p
}

// listenOn puts the node's proxy, metrics and admin listeners on ip, each on a port the
// kernel picks.
func (c *testConfig) listenOn(ip string) {
	c.Global.BindAddress, c.Global.MetricsAddress, c.Global.AdminAddress = ip+":0", ip+":0", ip+":0"
}

// singlePool is a node on loopback (drain timeout 5s) sending every request to pool, which must
// be named web.
func singlePool(pool poolConfig) testConfig {
	g := loopbackGlobal()
	g.DrainTimeout = duration(5 * time.Second)
	return testConfig{Global: g, Pools: []poolConfig{pool}, Routes: []routeConfig{{Pool: "web"}}}
}

// addrsOf is the addresses of backends, in order.
func addrsOf(backends []*backend) []string {
	var out []string
	for _, b := range backends {
		out = append(out, b.addr())
	}
	return out
}

// tlsNode is singlePool over backend with a TLS listener serving certFile, access log off.
func tlsNode(backend, certFile, keyFile string) testConfig {
	cfg := singlePool(webPool(backend))
	cfg.Global.AccessLog = ptr(false)
	cfg.Global.TLSBindAddress = "127.0.0.1:0"
	cfg.Global.TLS = &tlsSection{CertFile: certFile, KeyFile: keyFile}
	return cfg
}

// clusterNode is a cluster member on loopback named name, gossiping on bind and joining
// through seed (none when empty), with a sticky pool web over backends.
func clusterNode(name, bind, seed string, backends []*backend) testConfig {
	pool := webPool(addrsOf(backends)...)
	pool.StickySessions = true
	c := testConfig{
		Global: loopbackGlobal(),
		Sticky: &stickySection{Secret: "cluster-test-secret-cluster-test-secret-42"},
		Cluster: &clusterSection{
			Enabled: true, Name: name, BindAddress: bind,
			GossipKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		},
		Pools:  []poolConfig{pool},
		Routes: []routeConfig{{Pool: "web"}},
	}
	if seed != "" {
		c.Cluster.Seeds = []string{seed}
	}
	return c
}
