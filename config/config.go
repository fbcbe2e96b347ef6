package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/veloflux/veloflux/acme/consulkv"
	"github.com/veloflux/veloflux/certs"
	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/geo"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
	"github.com/veloflux/veloflux/proxy"
	"github.com/veloflux/veloflux/proxy/ratelimit"
	"github.com/veloflux/veloflux/telemetry/tracing"
)

// DefaultPath is where the config file is read from when VFX_CONFIG is not set.
const DefaultPath = "/etc/veloflux/config.yaml"

// Balancing algorithms accepted in pools[].algorithm. They must match the names the balancer
// package registers; config does not import it so that validating a file needs no proxy code.
const (
	AlgorithmRoundRobin = "round_robin"
	AlgorithmWeighted   = "weighted"
	AlgorithmLeastConn  = "least_conn"
	AlgorithmIPHash     = "ip_hash"
	AlgorithmRandom     = "random"
)

// Backend protocols accepted in pools[].protocol. They are the scheme names the discovery
// package gives backends, so cmd copies the value across unchanged.
const (
	// ProtocolHTTP is HTTP/1.1 in clear text.
	ProtocolHTTP = "http"
	// ProtocolHTTPS is HTTP/1.1 or HTTP/2 over TLS, as the backend negotiates.
	ProtocolHTTPS = "https"
	// ProtocolH2C is HTTP/2 in clear text with prior knowledge, for gRPC-style backends.
	ProtocolH2C = "h2c"
)

// Config is the whole VeloFlux configuration. Values are plain data: Load and Parse return a
// validated Config, and a Config is never mutated after that, so a reload builds a new one.
type Config struct {
	Global Global            `koanf:"global"`
	Retry  proxy.RetryConfig `koanf:"retry"`
	// Sticky shapes the session cookie of pools with sticky_sessions; an empty secret is left
	// empty, and the proxy generates a key (cmd warns: cookies then do not survive restarts
	// or work across nodes).
	Sticky proxy.StickyConfig `koanf:"sticky"`
	// RateLimit limits requests per client IP.
	RateLimit ratelimit.Config `koanf:"rate_limit"`
	// Discovery finds backends in a service catalog. It comes before pools because it is
	// where pools come from when the file lists none.
	Discovery Discovery `koanf:"discovery"`
	// Geo locates clients by IP address so that routes with geo other than off can prefer
	// the nearest region. It comes before pools because backends name its regions. Its keys
	// and rules are geo.Config's; config adds the rules that tie routes and backends to it.
	Geo geo.Config `koanf:"geo"`
	// Cluster joins this node to its peers over gossip, so that sessions and backend health
	// are shared across nodes. It comes before pools because it is node-wide, like geo.
	Cluster Cluster `koanf:"cluster"`
	// Tracing exports a span per request and per backend attempt over OTLP. Its keys and
	// rules are those of tracing.Config.
	Tracing tracing.Config `koanf:"tracing"`
	// Pools may be empty: service discovery can provide them later.
	Pools []Pool `koanf:"pools"`
	// Routes may be empty: a proxy without routes answers 404.
	Routes []Route `koanf:"routes"`
}

// Global holds node-wide settings. Listener addresses, TLS, timeouts and limits need a restart
// to change, except limits.max_conns_per_backend and limits.backend_queue_timeout; the rest is
// applied on reload.
type Global struct {
	// BindAddress is the plain HTTP listener, host:port. Default "0.0.0.0:80". Required.
	BindAddress string `koanf:"bind_address"`
	// TLSBindAddress is the HTTPS listener. Default "" (no HTTPS listener).
	TLSBindAddress string `koanf:"tls_bind_address"`
	// MetricsAddress serves /metrics, /healthz and /readyz. Default "0.0.0.0:8080"; "" disables.
	MetricsAddress string `koanf:"metrics_address"`
	// AdminAddress serves the admin API. Default "127.0.0.1:9000" so it is not exposed by
	// accident; "" disables.
	AdminAddress string `koanf:"admin_address"`
	// LogLevel is debug, info, warn or error. Default "info". Case-insensitive, stored lower-case.
	LogLevel string `koanf:"log_level"`
	// AccessLog logs one line per request at info level. Default true.
	AccessLog bool `koanf:"access_log"`
	// DrainTimeout is how long shutdown waits for in-flight requests. Default 30s, > 0.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
	// TrustedProxies are the peers whose X-Forwarded-For is believed. Default none. A bare IP
	// in the file is stored as a single-address prefix (/32 or /128).
	TrustedProxies []netip.Prefix `koanf:"trusted_proxies"`
	TLS            TLS            `koanf:"tls"`
	// HTTP3 serves HTTP/3 (QUIC) on the UDP port of TLSBindAddress, announced to TCP clients
	// with Alt-Svc. Default true; without a TLS listener it does nothing.
	HTTP3 bool `koanf:"http3"`
	// H2C lets clients of the plain listener speak HTTP/2 with prior knowledge (no TLS), for
	// internal callers such as gRPC clients behind another load balancer. Default false.
	H2C bool `koanf:"h2c"`
	// HTTP1FastPath serves HTTP/1.1 on the plain listener with VeloFlux's own connection loop
	// and sends to http backends with its own pooled client, instead of Go's net/http: less
	// CPU per request, and idle client connections without a goroutine or buffers. Default
	// true. Ignored for the plain listener when H2C is on (the TLS listener and HTTP/3 always
	// use net/http's servers).
	HTTP1FastPath bool `koanf:"http1_fast_path"`
	// GCMinHeap is the heap size, in bytes, below which Go's garbage collector starts no
	// cycle: while the live heap is under half of it, GOGC is raised after each cycle so that
	// the next starts at this size, and it is back to its configured value above that. A
	// process that serves requests with a small live heap then collects a few times less
	// often, for up to this much more memory. Default 12 MiB, >= 0; 0 leaves GOGC alone.
	GCMinHeap int `koanf:"gc_min_heap"`
	// HealthCheck is the default for every pool; pools override it field by field. Its keys
	// and rules are health.Config's.
	HealthCheck health.Config `koanf:"health_check"`
	// Passive is the default outlier ejection of every pool; pools override it field by field.
	Passive  health.PassiveConfig `koanf:"passive"`
	Timeouts Timeouts             `koanf:"timeouts"`
	Limits   Limits               `koanf:"limits"`
}

// TLS configures certificates for the HTTPS listener.
type TLS struct {
	// AutoCert obtains certificates with ACME for the exact hosts that routes (static and
	// Consul-tagged) send traffic to. Default false. Not with certificate files.
	AutoCert bool `koanf:"auto_cert"`
	// ACMEEmail is the ACME account contact. Default "" (no contact).
	ACMEEmail string `koanf:"acme_email"`
	// CertDir keeps ACME certificates, account keys and locks when Storage is file.
	// Default "/etc/veloflux/certs". Required with auto_cert.
	CertDir string `koanf:"cert_dir"`
	// ACMEDirectory is the directory URL of the ACME server, https. Default Let's Encrypt's
	// production directory, DefaultACMEDirectory.
	ACMEDirectory string `koanf:"acme_directory"`
	// ACMECARoot is a PEM file of CA certificates trusted for the ACME server's own HTTPS,
	// beside the system roots: for Pebble or a private CA. Default "". A path; validation
	// does not open it.
	ACMECARoot string `koanf:"acme_ca_root"`
	// ACMEChallenges are the challenge types used to prove control of a name: http-01
	// (answered on the plain listener, port 80 for the CA) and tls-alpn-01 (answered on the
	// TLS listener, port 443). Default both; one of them for a site whose other port the CA
	// cannot reach.
	ACMEChallenges []string `koanf:"acme_challenges"`
	// Storage is where ACME state lives: consul (Consul KV, shared by every node, so a name is
	// ordered once per cluster) or file (under CertDir, this node's own). Default "" = consul
	// when discovery.consul.enabled, else file; see Config.ACMEStorage. consul needs
	// discovery.consul.enabled.
	Storage string `koanf:"storage"`
	// Config holds the keys of storage consul, storage_prefix and lock_ttl; its keys and
	// rules are consulkv.Config's.
	consulkv.Config `koanf:",squash"`
	// CertFile is a PEM certificate with its chain. Default "". Set together with KeyFile.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the PEM private key for CertFile. Default "". It is a path, not a secret.
	KeyFile string `koanf:"key_file"`
	// Certificates are more certificates beside CertFile, each chosen for the names it covers
	// (SNI: exact name, then wildcard); CertFile, or else the first of these, is the default
	// for other names. Files are reloaded when they change. Default none.
	Certificates []certs.Pair `koanf:"certificates"`
	// RedirectHTTP answers every request on the plain listener with 308 to the same URL on
	// https, except ACME HTTP-01 challenges (/.well-known/acme-challenge/). Default false.
	RedirectHTTP bool `koanf:"redirect_http"`
	// HSTS is the max-age, in seconds, of the Strict-Transport-Security header added to HTTPS
	// responses. Default 0 = no header, >= 0.
	HSTS int `koanf:"hsts"`
}

// ACME storage kinds accepted in global.tls.storage.
const (
	// ACMEStorageConsul keeps ACME state in Consul KV, shared by every node.
	ACMEStorageConsul = "consul"
	// ACMEStorageFile keeps ACME state in files under global.tls.cert_dir.
	ACMEStorageFile = "file"
)

// ACME challenge types accepted in global.tls.acme_challenges.
const (
	ACMEChallengeHTTP01    = "http-01"
	ACMEChallengeTLSALPN01 = "tls-alpn-01"
)

// DefaultACMEDirectory is Let's Encrypt's production ACME directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// ACMEStorage is the storage ACME state lives in: global.tls.storage when set, else consul
// when discovery.consul.enabled, else file.
func (c *Config) ACMEStorage() string {
	switch {
	case c.Global.TLS.Storage != "":
		return c.Global.TLS.Storage
	case c.Discovery.Consul.Enabled:
		return ACMEStorageConsul
	default:
		return ACMEStorageFile
	}
}

// CertificatePairs lists every certificate file pair, CertFile first when set.
func (t TLS) CertificatePairs() []certs.Pair {
	var out []certs.Pair
	if t.CertFile != "" {
		out = append(out, certs.Pair{CertFile: t.CertFile, KeyFile: t.KeyFile})
	}
	return append(out, t.Certificates...)
}

// Timeouts bound client and backend connections.
type Timeouts struct {
	// ReadHeader is how long a client has to send request headers. Default 10s, > 0;
	// it is what stops slowloris clients.
	ReadHeader time.Duration `koanf:"read_header"`
	// Read bounds reading the whole request including the body. Default 60s; 0 = no limit.
	Read time.Duration `koanf:"read"`
	// Idle is how long a keep-alive client connection may wait for its next request.
	// Default 120s, > 0.
	Idle time.Duration `koanf:"idle"`
	// BackendDial bounds connecting to a backend. Default 5s, > 0.
	BackendDial time.Duration `koanf:"backend_dial"`
	// BackendResponseHeader bounds the wait for a backend's response headers after the request
	// was sent. Default 30s, > 0.
	BackendResponseHeader time.Duration `koanf:"backend_response_header"`
	// BackendIdle is how long an idle pooled backend connection is kept. Default 90s, > 0.
	BackendIdle time.Duration `koanf:"backend_idle"`
}

// Limits bound memory and connection use.
type Limits struct {
	// MaxHeaderBytes is the largest request head accepted, request line included, in bytes;
	// 431 above it (414 when the request line alone is longer). Default 64 KiB, > 0.
	MaxHeaderBytes int `koanf:"max_header_bytes"`
	// MaxHeaderCount is the most header fields a request may carry; 431 above it. Default 100, > 0.
	MaxHeaderCount int `koanf:"max_header_count"`
	// H2MaxConcurrentStreams is the most streams one HTTP/2 client may have open. Default 100,
	// 1..10000.
	H2MaxConcurrentStreams int `koanf:"h2_max_concurrent_streams"`
	// H2MaxFrameSize is the largest HTTP/2 frame payload VeloFlux accepts, in bytes (and
	// advertises in SETTINGS_MAX_FRAME_SIZE). Default 16384, 16384..16777215.
	H2MaxFrameSize int `koanf:"h2_max_frame_size"`
	// H2StreamWindow is the HTTP/2 flow-control window of one stream, in bytes: how much of
	// a request body a client may send before the backend reads it. Default 1 MiB, 65535..2^31-1.
	H2StreamWindow int `koanf:"h2_stream_window"`
	// H2ConnWindow is the flow-control window of a whole HTTP/2 connection, in bytes.
	// Default 1 MiB, >= h2_stream_window and <= 2^31-1.
	H2ConnWindow int `koanf:"h2_conn_window"`
	// MaxRequestsPerConn closes a client connection after this many requests (HTTP/1.1 and
	// HTTP/2). Default 0 = unlimited, >= 0.
	MaxRequestsPerConn int `koanf:"max_requests_per_conn"`
	// MaxClientConns caps open client connections over both listeners; at the cap the proxy
	// stops accepting until one closes. Default 0 = derived from the open-files limit (half
	// of it less 256), >= 0.
	MaxClientConns int `koanf:"max_client_conns"`
	// MaxIdleConnsPerBackend is the idle connection pool size per backend. Default 64, > 0.
	MaxIdleConnsPerBackend int `koanf:"max_idle_conns_per_backend"`
	// MaxConnsPerBackend caps the requests in flight to one backend of a pool, and so the
	// connections to it; requests beyond it wait up to BackendQueueTimeout for a free slot.
	// Default 1024, Envoy's default circuit-breaker limit of connections and requests; >= 0,
	// 0 = no cap. pools[].max_conns_per_backend overrides it. Applied on reload.
	MaxConnsPerBackend int `koanf:"max_conns_per_backend"`
	// BackendQueueTimeout is how long a request waits for a free slot of a backend at
	// MaxConnsPerBackend before it is answered 503 (or tried on another backend). Default 5s,
	// > 0. Applied on reload.
	BackendQueueTimeout time.Duration `koanf:"backend_queue_timeout"`
}

// Pool is a named set of interchangeable backends.
type Pool struct {
	// Name identifies the pool for routes; unique, [A-Za-z0-9._-]+. Required.
	Name string `koanf:"name"`
	// Algorithm is round_robin, weighted, least_conn, ip_hash or random. Default round_robin.
	Algorithm string `koanf:"algorithm"`
	// StickySessions pins a client to one backend with the signed sticky cookie. Default false.
	StickySessions bool `koanf:"sticky_sessions"`
	// Protocol is how the proxy talks to this pool's backends: http, https or h2c. Default
	// http. Applied on reload.
	Protocol string `koanf:"protocol"`
	// TLSSkipVerify accepts any certificate from the backends, for self-signed test setups;
	// it removes the protection TLS gives against a network attacker. Default false. Only
	// valid with protocol https, so that it is never set believing it does something else.
	TLSSkipVerify bool `koanf:"tls_skip_verify"`
	// TLS is how the proxy and its health probes verify this pool's backends and present
	// themselves to them. Only with protocol https. Applied on reload.
	TLS PoolTLS `koanf:"tls"`
	// MaxConnsPerBackend is global.limits.max_conns_per_backend for this pool's backends.
	// Default 0 = the global value, which Load writes in, so consumers read the pool's cap
	// here; >= 0. Applied on reload.
	MaxConnsPerBackend int `koanf:"max_conns_per_backend"`
	// HealthCheck is global.health_check with this pool's overrides already applied by Load,
	// so consumers never resolve inheritance themselves.
	HealthCheck PoolHealthCheck `koanf:"health_check"`
	// Passive is global.passive with this pool's overrides already applied by Load.
	Passive health.PassiveConfig `koanf:"passive"`
	// Backends may be empty: discovery can fill the pool later.
	Backends []Backend `koanf:"backends"`
}

// PoolTLS is the client side of TLS towards a pool's backends. Validation does not open the
// files; cmd loads them on start and on every reload, and keeps the running pools when one
// does not load.
type PoolTLS struct {
	// CAFile is PEM CA certificates that verify the backends instead of the system roots, for
	// backends with certificates from a private CA. Default "" = the system roots.
	CAFile string `koanf:"ca_file"`
	// ServerName is the name sent as SNI and checked in the backends' certificates. Default ""
	// = the host of each backend's address. A host name or IP address, without port.
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any backend certificate, as tls_skip_verify does. Default
	// false. Not with CAFile or ServerName, which it would silently ignore.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
	// CertFile is a PEM client certificate with its chain, presented to backends that verify
	// clients (mutual TLS). Default "". Set together with KeyFile.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default "". A path, not a secret.
	KeyFile string `koanf:"key_file"`
}

// IsZero reports whether no key of the pool's tls section is set.
func (t PoolTLS) IsZero() bool { return t == PoolTLS{} }

// PoolHealthCheck is a pool's effective health check: global.health_check's keys, each one
// the pool leaves out inherited from there, and the path.
type PoolHealthCheck struct {
	health.Config `koanf:",squash"`
	// Path is probed with Method. Default "" = no active HTTP check unless a backend sets
	// its own path. Starts with "/". Only with type http: a tcp check has no path and checks
	// every backend.
	Path string `koanf:"path"`
}

// Backend is one upstream instance.
type Backend struct {
	// Address is host:port; host is a DNS name, an IPv4 address or a bracketed IPv6 address;
	// port 1..65535. Required, unique within the pool.
	Address string `koanf:"address"`
	// Weight is the relative share of traffic. Default 1, 1..10000.
	Weight      int                `koanf:"weight"`
	HealthCheck BackendHealthCheck `koanf:"health_check"`
	// Region is the region the backend runs in, [a-z0-9._-]*. Default "" = geo.node_region.
	// Applied on reload. Only its spelling is checked here; see Geo for where names are
	// resolved.
	Region string `koanf:"region"`
}

// BackendHealthCheck overrides the pool's health check for one backend.
type BackendHealthCheck struct {
	// Path overrides the pool's path. Default "" = the pool's. Starts with "/".
	Path string `koanf:"path"`
	// Method, Host and ExpectStatus override the pool's, for a backend that answers its
	// checks differently (another virtual host, say). Default "" = the pool's. Only with
	// type http; same rules as the pool's keys.
	Method       string `koanf:"method"`
	Host         string `koanf:"host"`
	ExpectStatus string `koanf:"expect_status"`
}

// Route sends requests whose host and path match to a pool.
type Route struct {
	// Host is "" (default route), "example.com", "example.com:8443" or "*.example.com".
	// Stored lower-case because host matching is case-insensitive.
	Host string `koanf:"host"`
	// PathPrefix is "" (everything) or starts with "/".
	PathPrefix string `koanf:"path_prefix"`
	// StripPrefix removes PathPrefix from the path sent upstream. Default false.
	StripPrefix bool `koanf:"strip_prefix"`
	// Pool names an existing pool. Required.
	Pool string `koanf:"pool"`
	// Geo is off, nearest or redirect (the Geo* constants). Default off. Applied on reload.
	// Anything but off needs geo.database and geo.node_region; redirect also needs a
	// geo.regions[] entry with a redirect_host.
	Geo string `koanf:"geo"`
}

// Route geo modes accepted in routes[].geo.
const (
	// GeoOff ignores where the client is.
	GeoOff = "off"
	// GeoNearest proxies to the healthy backends of the region nearest the client.
	GeoNearest = "nearest"
	// GeoRedirect answers with a redirect to the redirect_host of the client's nearest
	// region, when that region is not this node's.
	GeoRedirect = "redirect"
)

// Discovery holds the service discovery sources. The whole section is read once at startup.
type Discovery struct {
	Consul consul.Config `koanf:"consul"`
}

// Cluster joins this node to its peers over gossip, so that sessions and backend health are
// shared across nodes: gossip.Config's keys, then the consensus of shared health checking
// (docs/health.md). The whole section is read once at startup, except the keys (rotation).
type Cluster struct {
	gossip.Config `koanf:",squash"`
	// Health shares active health checking across the nodes: each backend is probed by a few
	// of them and the verdict is their consensus.
	Health consensus.Config `koanf:"health"`
}

// Default returns a Config with every default and no pools or routes. It is valid.
func Default() *Config {
	return &Config{
		Global: Global{
			BindAddress:    "0.0.0.0:80",
			TLSBindAddress: "",
			MetricsAddress: "0.0.0.0:8080",
			AdminAddress:   "127.0.0.1:9000",
			LogLevel:       "info",
			AccessLog:      true,
			DrainTimeout:   30 * time.Second,
			TLS: TLS{
				CertDir:        "/etc/veloflux/certs",
				ACMEDirectory:  DefaultACMEDirectory,
				ACMEChallenges: []string{ACMEChallengeHTTP01, ACMEChallengeTLSALPN01},
				Config:         consulkv.DefaultConfig(),
			},
			HTTP3:         true,
			HTTP1FastPath: true,
			GCMinHeap:     12 << 20,
			HealthCheck:   health.DefaultConfig(),
			Passive:       health.DefaultPassiveConfig(),
			Timeouts: Timeouts{
				ReadHeader:            10 * time.Second,
				Read:                  60 * time.Second,
				Idle:                  120 * time.Second,
				BackendDial:           5 * time.Second,
				BackendResponseHeader: 30 * time.Second,
				BackendIdle:           90 * time.Second,
			},
			Limits: Limits{
				MaxHeaderBytes:         64 << 10,
				MaxHeaderCount:         100,
				H2MaxConcurrentStreams: 100,
				H2MaxFrameSize:         16384,
				H2StreamWindow:         1 << 20,
				H2ConnWindow:           1 << 20,
				MaxIdleConnsPerBackend: 64,
				MaxConnsPerBackend:     1024,
				BackendQueueTimeout:    5 * time.Second,
			},
		},
		Retry:     proxy.DefaultConfig().Retry,
		Sticky:    proxy.DefaultConfig().Sticky,
		RateLimit: ratelimit.DefaultConfig(),
		Discovery: Discovery{Consul: consul.DefaultConfig()},
		Geo:       geo.DefaultConfig(),
		Cluster:   Cluster{Config: gossip.DefaultConfig(), Health: consensus.DefaultConfig()},
		Tracing:   tracing.DefaultConfig(),
	}
}

// defaultPool is what a pools[] entry starts from before its keys are applied. Its health
// check and passive fields are filled from global.health_check and global.passive after all
// layers are read, because an environment override of the global values must reach pools too.
func defaultPool() Pool { return Pool{Algorithm: AlgorithmRoundRobin, Protocol: ProtocolHTTP} }

// defaultBackend is what a backends[] entry starts from; Weight stays 1 unless written.
func defaultBackend() Backend { return Backend{Weight: 1} }

// defaultRoute is what a routes[] entry starts from.
func defaultRoute() Route { return Route{Geo: GeoOff} }

// PathFromEnv returns the config file path: VFX_CONFIG when set and non-empty, else DefaultPath.
// environ is in os.Environ form; when a variable repeats, the last one wins.
func PathFromEnv(environ []string) string {
	path := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, envConfigVar+"="); ok {
			path = v
		}
	}
	if path == "" {
		return DefaultPath
	}
	return path
}
