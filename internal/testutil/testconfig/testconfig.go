// Package testconfig writes VeloFlux configuration files for tests from Go values: a test
// states the settings it needs in a Config and YAML writes the file, so no test assembles YAML
// by hand. Fields mirror the keys of the file (docs/configuration.md); a zero field is left
// out and takes its default, and a pointer field is for a setting whose zero value is not its
// default (nil leaves it out). The round-trip test loads every field through the real config
// loader, which refuses unknown keys, so a field here cannot name a key the product does not
// read.
//
// Only tests import this package.
package testconfig

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a whole configuration file.
type Config struct {
	Global    Global     `yaml:"global"`
	Sticky    *Sticky    `yaml:"sticky,omitempty"`
	Discovery *Discovery `yaml:"discovery,omitempty"`
	Geo       *Geo       `yaml:"geo,omitempty"`
	Cluster   *Cluster   `yaml:"cluster,omitempty"`
	Tracing   *Tracing   `yaml:"tracing,omitempty"`
	Pools     []Pool     `yaml:"pools,omitempty"`
	Routes    []Route    `yaml:"routes,omitempty"`
}

// Global is the global section.
type Global struct {
	BindAddress    string `yaml:"bind_address,omitempty"`
	TLSBindAddress string `yaml:"tls_bind_address,omitempty"`
	// MetricsAddress and AdminAddress: nil keeps the default listener, "" turns it off.
	MetricsAddress *string      `yaml:"metrics_address,omitempty"`
	AdminAddress   *string      `yaml:"admin_address,omitempty"`
	DrainTimeout   Duration     `yaml:"drain_timeout,omitempty"`
	HTTP3          *bool        `yaml:"http3,omitempty"`
	HTTP1FastPath  *bool        `yaml:"http1_fast_path,omitempty"`
	AccessLog      *bool        `yaml:"access_log,omitempty"`
	LogLevel       string       `yaml:"log_level,omitempty"`
	TrustedProxies []string     `yaml:"trusted_proxies,omitempty"`
	HealthCheck    *HealthCheck `yaml:"health_check,omitempty"`
	Passive        *Passive     `yaml:"passive,omitempty"`
	Limits         *Limits      `yaml:"limits,omitempty"`
	TLS            *TLS         `yaml:"tls,omitempty"`
	// Extra holds keys this type does not know, for tests that write them on purpose.
	Extra map[string]any `yaml:",inline"`
}

// Limits is global.limits.
type Limits struct {
	MaxClientConns      int      `yaml:"max_client_conns,omitempty"`
	MaxConnsPerBackend  int      `yaml:"max_conns_per_backend,omitempty"`
	BackendQueueTimeout Duration `yaml:"backend_queue_timeout,omitempty"`
}

// TLS is global.tls.
type TLS struct {
	CertFile       string     `yaml:"cert_file,omitempty"`
	KeyFile        string     `yaml:"key_file,omitempty"`
	Certificates   []CertPair `yaml:"certificates,omitempty"`
	AutoCert       bool       `yaml:"auto_cert,omitempty"`
	ACMEEmail      string     `yaml:"acme_email,omitempty"`
	CertDir        string     `yaml:"cert_dir,omitempty"`
	ACMEDirectory  string     `yaml:"acme_directory,omitempty"`
	ACMECARoot     string     `yaml:"acme_ca_root,omitempty"`
	ACMEChallenges []string   `yaml:"acme_challenges,omitempty"`
	Storage        string     `yaml:"storage,omitempty"`
}

// CertPair is one of global.tls.certificates.
type CertPair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Discovery is the discovery section.
type Discovery struct {
	Consul Consul `yaml:"consul"`
}

// Consul is discovery.consul.
type Consul struct {
	Enabled     bool            `yaml:"enabled"`
	Address     string          `yaml:"address,omitempty"`
	Token       string          `yaml:"token,omitempty"`
	Datacenters []string        `yaml:"datacenters,omitempty"`
	Coalesce    Duration        `yaml:"coalesce,omitempty"`
	MinBackoff  Duration        `yaml:"min_backoff,omitempty"`
	MaxBackoff  Duration        `yaml:"max_backoff,omitempty"`
	Register    *ConsulRegister `yaml:"register,omitempty"`
}

// ConsulRegister is discovery.consul.register.
type ConsulRegister struct {
	Enabled       bool     `yaml:"enabled"`
	Name          string   `yaml:"name,omitempty"`
	ID            string   `yaml:"id,omitempty"`
	CheckInterval Duration `yaml:"check_interval,omitempty"`
}

// Sticky is the sticky section.
type Sticky struct {
	Secret string `yaml:"secret"`
}

// Geo is the geo section.
type Geo struct {
	Database       string `yaml:"database,omitempty"`
	NodeRegion     string `yaml:"node_region,omitempty"`
	ResponseHeader string `yaml:"response_header,omitempty"`
}

// Cluster is the cluster section.
type Cluster struct {
	Enabled     bool     `yaml:"enabled"`
	Name        string   `yaml:"name,omitempty"`
	BindAddress string   `yaml:"bind_address,omitempty"`
	GossipKey   string   `yaml:"gossip_key,omitempty"`
	GossipKeys  []string `yaml:"gossip_keys,omitempty"`
	Seeds       []string `yaml:"seeds,omitempty"`
	JoinConsul  bool     `yaml:"join_consul,omitempty"`
	Label       string   `yaml:"label,omitempty"`
	// ReconnectInterval is how often a node alone retries its seeds.
	ReconnectInterval Duration `yaml:"reconnect_interval,omitempty"`
	MaxEntriesPerKind int      `yaml:"max_entries_per_kind,omitempty"`
	TombstoneTTL      Duration `yaml:"tombstone_ttl,omitempty"`
}

// Tracing is the tracing section.
type Tracing struct {
	Enabled      bool     `yaml:"enabled"`
	Endpoint     string   `yaml:"endpoint,omitempty"`
	Protocol     string   `yaml:"protocol,omitempty"`
	Insecure     bool     `yaml:"insecure,omitempty"`
	SampleRatio  float64  `yaml:"sample_ratio,omitempty"`
	BatchTimeout Duration `yaml:"batch_timeout,omitempty"`
	ServiceName  string   `yaml:"service_name,omitempty"`
}

// Pool is one of pools.
type Pool struct {
	Name               string       `yaml:"name"`
	Algorithm          string       `yaml:"algorithm,omitempty"`
	StickySessions     bool         `yaml:"sticky_sessions,omitempty"`
	MaxConnsPerBackend int          `yaml:"max_conns_per_backend,omitempty"`
	HealthCheck        *HealthCheck `yaml:"health_check,omitempty"`
	Passive            *Passive     `yaml:"passive,omitempty"`
	Backends           []Backend    `yaml:"backends"`
}

// HealthCheck is global.health_check or a pool's health_check; only a pool's has a path.
type HealthCheck struct {
	Type         string   `yaml:"type,omitempty"`
	Path         string   `yaml:"path,omitempty"`
	Method       string   `yaml:"method,omitempty"`
	Host         string   `yaml:"host,omitempty"`
	ExpectStatus string   `yaml:"expect_status,omitempty"`
	Interval     Duration `yaml:"interval,omitempty"`
	Timeout      Duration `yaml:"timeout,omitempty"`
	Retries      int      `yaml:"retries,omitempty"`
	Rise         int      `yaml:"rise,omitempty"`
	MaxInterval  Duration `yaml:"max_interval,omitempty"`
}

// BackendHealthCheck is a backend's own health_check, overriding its pool's.
type BackendHealthCheck struct {
	Path         string `yaml:"path,omitempty"`
	Method       string `yaml:"method,omitempty"`
	Host         string `yaml:"host,omitempty"`
	ExpectStatus string `yaml:"expect_status,omitempty"`
}

// Passive is global.passive or a pool's passive section.
type Passive struct {
	ConsecutiveFailures int      `yaml:"consecutive_failures,omitempty"`
	EjectionTime        Duration `yaml:"ejection_time,omitempty"`
	MaxEjectionTime     Duration `yaml:"max_ejection_time,omitempty"`
	MaxEjectionPercent  int      `yaml:"max_ejection_percent,omitempty"`
}

// Backend is one of a pool's backends.
type Backend struct {
	Address     string              `yaml:"address"`
	Weight      int                 `yaml:"weight,omitempty"`
	HealthCheck *BackendHealthCheck `yaml:"health_check,omitempty"`
	Region      string              `yaml:"region,omitempty"`
}

// Route is one of routes.
type Route struct {
	Host       string `yaml:"host,omitempty"`
	PathPrefix string `yaml:"path_prefix,omitempty"`
	Pool       string `yaml:"pool"`
	Geo        string `yaml:"geo,omitempty"`
}

// Duration is written as Go writes it ("1.5s"), the form the config file reads; yaml would
// write a time.Duration as nanoseconds.
type Duration time.Duration

// MarshalYAML writes d as time.Duration.String does.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// IsZero lets omitempty leave an unset duration out.
func (d Duration) IsZero() bool { return d == 0 }

// YAML is the file VeloFlux reads.
func (c Config) YAML(t testing.TB) string {
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

// Ptr is a pointer to v, for the settings whose zero value is not their default.
func Ptr[T any](v T) *T { return &v }

// Loopback is every listener (proxy, metrics, admin) on 127.0.0.1 with a port the kernel picks.
func Loopback() Global {
	return Global{BindAddress: "127.0.0.1:0", MetricsAddress: Ptr("127.0.0.1:0"), AdminAddress: Ptr("127.0.0.1:0")}
}

// ListenOn puts the proxy, metrics and admin listeners on ip, each on a port the kernel picks.
func (c *Config) ListenOn(ip string) {
	c.Global.BindAddress, c.Global.MetricsAddress, c.Global.AdminAddress = ip+":0", Ptr(ip+":0"), Ptr(ip+":0")
}

// WebPool is the pool "web" over addrs.
func WebPool(addrs ...string) Pool {
	p := Pool{Name: "web", Backends: []Backend{}}
	for _, a := range addrs {
		p.Backends = append(p.Backends, Backend{Address: a})
	}
	return p
}
