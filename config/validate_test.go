package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/certs"
	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/geo"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/proxy/ratelimit"
)

// validBase is a small valid config that each validation case breaks in exactly one way.
func validBase() *Config {
	c := Default()
	c.Pools = []Pool{{
		Name:        "web",
		Algorithm:   AlgorithmRoundRobin,
		Protocol:    ProtocolHTTP,
		HealthCheck: poolHealthCheck(c.Global.HealthCheck, "/health"),
		Passive:     c.Global.Passive,
		Backends: []Backend{
			{Address: "10.0.0.1:8080", Weight: 1},
			{Address: "10.0.0.2:8080", Weight: 1},
		},
	}}
	c.Routes = []Route{{Host: "example.com", Pool: "web", Geo: GeoOff}}
	return c
}

// poolHealthCheck is g as a pool's resolved health check with path, as Load leaves a pool
// that writes only its path.
func poolHealthCheck(g health.Config, path string) PoolHealthCheck {
	return PoolHealthCheck{Config: g, Path: path}
}

// withGeo turns geolocation on for validBase's route, with everything it needs.
func withGeo(c *Config) {
	c.Geo.Database = "/var/lib/veloflux/GeoLite2-City.mmdb"
	c.Geo.NodeRegion = "eu-central-1"
	c.Geo.Regions = []geo.Region{
		{Name: "eu-central-1", Lat: 50.11, Lon: 8.68, RedirectHost: "eu.example.com"},
		{Name: "us-east-1", Lat: 39.04, Lon: -77.49},
	}
	c.Routes[0].Geo = GeoNearest
}

// errLines returns err's problems as "path: message" lines, failing if err is not Errors.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want config.Errors: %v", err, err)
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return lines
}

func assertLines(t *testing.T, err error, want []string) {
	t.Helper()
	got := errLines(t, err)
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n  got  %q\n  want %q", got, want)
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		// global listeners
		{"bind_address empty", func(c *Config) { c.Global.BindAddress = "" },
			[]string{"global.bind_address: required"}},
		{"bind_address missing port", func(c *Config) { c.Global.BindAddress = "0.0.0.0" },
			[]string{"global.bind_address: missing port"}},
		{"bind_address named port", func(c *Config) { c.Global.BindAddress = ":http" },
			[]string{`global.bind_address: invalid port "http"`}},
		{"bind_address signed port", func(c *Config) { c.Global.BindAddress = ":+80" },
			[]string{`global.bind_address: invalid port "+80"`}},
		{"bind_address port too big", func(c *Config) { c.Global.BindAddress = ":70000" },
			[]string{"global.bind_address: port 70000 out of range 0-65535"}},
		{"bind_address unbracketed ipv6", func(c *Config) { c.Global.BindAddress = "::1:80" },
			[]string{`global.bind_address: IPv6 addresses must be in brackets, e.g. "[::1]:8080"`}},
		{"tls_bind_address bad host", func(c *Config) {
			c.Global.TLSBindAddress = "bad host:443"
			c.Global.TLS.CertFile, c.Global.TLS.KeyFile = "c.pem", "k.pem"
		}, []string{`global.tls_bind_address: invalid host "bad host": invalid character ' ' (internationalized names must be written in punycode)`}},
		{"metrics_address same as bind_address", func(c *Config) { c.Global.MetricsAddress = "0.0.0.0:80" },
			[]string{"global.metrics_address: same address as global.bind_address (0.0.0.0:80)"}},
		{"admin_address same as metrics_address", func(c *Config) { c.Global.AdminAddress = "0.0.0.0:8080" },
			[]string{"global.admin_address: same address as global.metrics_address (0.0.0.0:8080)"}},
		{"admin_address bracketed non-ipv6", func(c *Config) { c.Global.AdminAddress = "[127.0.0.1]:9000" },
			[]string{`global.admin_address: "127.0.0.1" in brackets is not an IPv6 address`}},

		// global scalars
		{"log_level unknown", func(c *Config) { c.Global.LogLevel = "verbose" },
			[]string{`global.log_level: must be one of debug, info, warn, error; got "verbose"`}},
		{"drain_timeout zero", func(c *Config) { c.Global.DrainTimeout = 0 },
			[]string{"global.drain_timeout: must be > 0, got 0s"}},
		{"trusted_proxies zero prefix", func(c *Config) {
			c.Global.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}
		}, []string{"global.trusted_proxies[1]: invalid prefix"}},

		// tls
		{"cert_file without key_file", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.CertFile = "c.pem"
		}, []string{"global.tls.key_file: required when cert_file is set"}},
		{"key_file without cert_file", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.KeyFile = "k.pem"
		}, []string{"global.tls.cert_file: required when key_file is set"}},
		{"auto_cert with files", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.CertFile, c.Global.TLS.KeyFile = "c.pem", "k.pem"
		}, []string{"global.tls.auto_cert: cannot be combined with certificate files; use one source of certificates"}},
		{"auto_cert without cert_dir", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.CertDir = ""
		}, []string{"global.tls.cert_dir: required when auto_cert is true"}},
		{"acme_email invalid", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.ACMEEmail = "ops at example.com"
		}, []string{`global.tls.acme_email: invalid email address "ops at example.com"`}},
		{"acme_email with display name", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.ACMEEmail = "Ops <ops@example.com>"
		}, []string{`global.tls.acme_email: invalid email address "Ops <ops@example.com>"`}},
		{"acme_directory not https", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.ACMEDirectory = "http://acme.example/dir"
		}, []string{`global.tls.acme_directory: must be an https URL such as https://acme-v02.api.letsencrypt.org/directory, got "http://acme.example/dir"`}},
		{"acme challenges none", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.ACMEChallenges = nil
		}, []string{"global.tls.acme_challenges: needs at least one of http-01, tls-alpn-01"}},
		{"acme challenges unknown and repeated", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.ACMEChallenges = []string{"dns-01", "http-01", "http-01"}
		}, []string{
			`global.tls.acme_challenges[0]: must be one of http-01, tls-alpn-01; got "dns-01"`,
			`global.tls.acme_challenges[2]: duplicate challenge "http-01"`,
		}},
		{"acme storage unknown", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.Storage = "redis"
		}, []string{`global.tls.storage: must be one of consul, file; got "redis"`}},
		{"acme storage consul without consul", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.Storage = ACMEStorageConsul
		}, []string{"global.tls.storage: consul needs discovery.consul.enabled: the ACME state lives in that Consul"}},
		{"acme storage prefix with slashes", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Discovery.Consul.Enabled = true
			c.Global.TLS.Prefix = "/veloflux/acme/"
		}, []string{`global.tls.storage_prefix: must not start or end with "/", got "/veloflux/acme/"`}},
		{"acme storage prefix empty", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.Storage = ACMEStorageConsul
			c.Discovery.Consul.Enabled = true
			c.Global.TLS.Prefix = ""
		}, []string{"global.tls.storage_prefix: required with storage consul"}},
		{"acme lock ttl below consul's session minimum", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Discovery.Consul.Enabled = true
			c.Global.TLS.LockTTL = 10 * time.Second
		}, []string{"global.tls.lock_ttl: must be 20s to 48h (the lock's Consul session gets half, and Consul accepts 10s to 24h), got 10s"}},
		{"acme wildcard route", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Routes = append(c.Routes, Route{Host: "*.example.com", Pool: "web", Geo: GeoOff})
		}, []string{`routes[1].host: wildcard host "*.example.com" with global.tls.auto_cert: ACME issues wildcard certificates only over DNS-01, which needs a DNS provider VeloFlux does not have; list the names, or serve this host from certificate files`}},
		{"pool tls without https", func(c *Config) {
			c.Pools[0].TLS.CAFile = "ca.pem"
		}, []string{`pools[0].tls: only applies to protocol https, got protocol "http"`}},
		{"pool tls half a client certificate", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLS.CertFile = "client.pem"
		}, []string{"pools[0].tls.key_file: required when cert_file is set"}},
		{"pool tls key without certificate", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLS.KeyFile = "client.key"
		}, []string{"pools[0].tls.cert_file: required when key_file is set"}},
		{"pool tls bad server name", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLS.ServerName = "api.internal:443"
		}, []string{`pools[0].tls.server_name: must be a host name or IP address without a port, got "api.internal:443"`}},
		{"pool tls skip verify with a CA", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLS.CAFile = "ca.pem"
			c.Pools[0].TLS.InsecureSkipVerify = true
			c.Pools[0].TLSSkipVerify = true
		}, []string{
			"pools[0].tls_skip_verify: cannot be combined with tls.ca_file or tls.server_name, which only matter when certificates are verified",
			"pools[0].tls.insecure_skip_verify: cannot be combined with tls.ca_file or tls.server_name, which only matter when certificates are verified",
		}},
		{"tls listener without certificates", func(c *Config) { c.Global.TLSBindAddress = ":443" },
			[]string{"global.tls_bind_address: needs certificates: set global.tls.cert_file and key_file (or global.tls.certificates), or global.tls.auto_cert"}},
		{"certificate list entry without files", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.Certificates = []certs.Pair{{CertFile: "a.pem", KeyFile: "a.key"}, {CertFile: "b.pem"}, {}}
		}, []string{
			"global.tls.certificates[1].key_file: required",
			"global.tls.certificates[2].cert_file: required",
			"global.tls.certificates[2].key_file: required",
		}},
		{"certificate list without tls listener", func(c *Config) {
			c.Global.TLS.Certificates = []certs.Pair{{CertFile: "a.pem", KeyFile: "a.key"}}
		}, []string{"global.tls_bind_address: required when TLS certificates are configured"}},
		{"hsts negative", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.CertFile, c.Global.TLS.KeyFile = "c.pem", "k.pem"
			c.Global.TLS.HSTS = -1
		}, []string{"global.tls.hsts: must be >= 0, got -1"}},
		{"redirect without tls listener", func(c *Config) { c.Global.TLS.RedirectHTTP = true },
			[]string{"global.tls.redirect_http: needs global.tls_bind_address: there is no https to redirect to"}},
		{"certificates without tls listener", func(c *Config) {
			c.Global.TLS.CertFile, c.Global.TLS.KeyFile = "c.pem", "k.pem"
		}, []string{"global.tls_bind_address: required when TLS certificates are configured"}},

		// global health check
		{"health interval zero", func(c *Config) { c.Global.HealthCheck.Interval = 0 },
			[]string{"global.health_check.interval: must be > 0, got 0s"}},
		{"health timeout zero", func(c *Config) { c.Global.HealthCheck.Timeout = 0 },
			[]string{"global.health_check.timeout: must be > 0, got 0s"}},
		{"health timeout above interval", func(c *Config) { c.Global.HealthCheck.Timeout = 11 * time.Second },
			[]string{"global.health_check.timeout: must not exceed interval (10s), got 11s"}},
		{"health retries zero", func(c *Config) { c.Global.HealthCheck.Fall = 0 },
			[]string{"global.health_check.retries: must be >= 1, got 0"}},
		{"health rise zero", func(c *Config) { c.Global.HealthCheck.Rise = 0 },
			[]string{"global.health_check.rise: must be >= 1, got 0"}},
		{"health max_interval below interval", func(c *Config) { c.Global.HealthCheck.MaxInterval = 9 * time.Second },
			[]string{"global.health_check.max_interval: must be at least interval (10s), got 9s"}},
		{"health type unknown", func(c *Config) { c.Global.HealthCheck.Type = "udp" },
			[]string{`global.health_check.type: must be one of http, tcp; got "udp"`}},
		{"health type upper-case", func(c *Config) { c.Global.HealthCheck.Type = "HTTP" },
			[]string{`global.health_check.type: must be one of http, tcp; got "HTTP"`}},
		{"health method empty", func(c *Config) { c.Global.HealthCheck.Method = "" },
			[]string{`global.health_check.method: must be an HTTP method such as GET or HEAD, got ""`}},
		{"health method with space", func(c *Config) { c.Global.HealthCheck.Method = "GET /" },
			[]string{`global.health_check.method: must be an HTTP method such as GET or HEAD, got "GET /"`}},
		{"health method with separator", func(c *Config) { c.Global.HealthCheck.Method = "GET:" },
			[]string{`global.health_check.method: must be an HTTP method such as GET or HEAD, got "GET:"`}},
		{"health host with space", func(c *Config) { c.Global.HealthCheck.Host = "svc internal" },
			[]string{`global.health_check.host: invalid host "svc internal": invalid character ' ' (internationalized names must be written in punycode)`}},
		{"health host wildcard", func(c *Config) { c.Global.HealthCheck.Host = "*.example.com" },
			[]string{`global.health_check.host: invalid host "*.example.com": a Host header cannot be a wildcard`}},
		{"health host bad port", func(c *Config) { c.Global.HealthCheck.Host = "svc.internal:99999" },
			[]string{`global.health_check.host: port 99999 out of range 1-65535`}},
		{"health expect_status empty", func(c *Config) { c.Global.HealthCheck.ExpectStatus = "" },
			[]string{`global.health_check.expect_status: empty: list codes or ranges such as "200-399"`}},
		{"health expect_status class", func(c *Config) { c.Global.HealthCheck.ExpectStatus = "2xx" },
			[]string{`global.health_check.expect_status: "2xx": not a status code`}},
		{"health expect_status backwards", func(c *Config) { c.Global.HealthCheck.ExpectStatus = "200-299,399-300" },
			[]string{`global.health_check.expect_status: "399-300": range runs backwards`}},
		{"health expect_status out of range", func(c *Config) { c.Global.HealthCheck.ExpectStatus = "200-600" },
			[]string{`global.health_check.expect_status: "200-600": status 600 out of range 100-599`}},

		// global passive
		{"passive failures negative", func(c *Config) { c.Global.Passive.ConsecutiveFailures = -1 },
			[]string{"global.passive.consecutive_failures: must be >= 0, got -1"}},
		{"passive ejection time zero", func(c *Config) { c.Global.Passive.EjectionTime = 0 },
			[]string{"global.passive.ejection_time: must be > 0, got 0s"}},
		{"passive max ejection time below ejection time", func(c *Config) { c.Global.Passive.MaxEjectionTime = 10 * time.Second },
			[]string{"global.passive.max_ejection_time: must be at least ejection_time (30s), got 10s"}},
		{"passive percent above 100", func(c *Config) { c.Global.Passive.MaxEjectionPercent = 101 },
			[]string{"global.passive.max_ejection_percent: must be between 0 and 100, got 101"}},
		{"passive percent negative", func(c *Config) { c.Global.Passive.MaxEjectionPercent = -1 },
			[]string{"global.passive.max_ejection_percent: must be between 0 and 100, got -1"}},

		// timeouts and limits
		{"read_header zero", func(c *Config) { c.Global.Timeouts.ReadHeader = 0 },
			[]string{"global.timeouts.read_header: must be > 0, got 0s"}},
		{"read negative", func(c *Config) { c.Global.Timeouts.Read = -time.Second },
			[]string{"global.timeouts.read: must be >= 0 (0 = no limit), got -1s"}},
		{"idle zero", func(c *Config) { c.Global.Timeouts.Idle = 0 },
			[]string{"global.timeouts.idle: must be > 0, got 0s"}},
		{"backend_dial zero", func(c *Config) { c.Global.Timeouts.BackendDial = 0 },
			[]string{"global.timeouts.backend_dial: must be > 0, got 0s"}},
		{"backend_response_header negative", func(c *Config) { c.Global.Timeouts.BackendResponseHeader = -time.Millisecond },
			[]string{"global.timeouts.backend_response_header: must be > 0, got -1ms"}},
		{"backend_idle zero", func(c *Config) { c.Global.Timeouts.BackendIdle = 0 },
			[]string{"global.timeouts.backend_idle: must be > 0, got 0s"}},
		{"max_header_bytes zero", func(c *Config) { c.Global.Limits.MaxHeaderBytes = 0 },
			[]string{"global.limits.max_header_bytes: must be >= 1, got 0"}},
		{"max_header_count zero", func(c *Config) { c.Global.Limits.MaxHeaderCount = 0 },
			[]string{"global.limits.max_header_count: must be >= 1, got 0"}},
		{"h2_max_concurrent_streams zero", func(c *Config) { c.Global.Limits.H2MaxConcurrentStreams = 0 },
			[]string{"global.limits.h2_max_concurrent_streams: must be 1..10000, got 0"}},
		{"h2_max_concurrent_streams too many", func(c *Config) { c.Global.Limits.H2MaxConcurrentStreams = 10001 },
			[]string{"global.limits.h2_max_concurrent_streams: must be 1..10000, got 10001"}},
		{"h2 frame size too small", func(c *Config) { c.Global.Limits.H2MaxFrameSize = 1024 },
			[]string{"global.limits.h2_max_frame_size: must be 16384..16777215 (RFC 9113 section 4.2), got 1024"}},
		{"h2 stream window too small", func(c *Config) { c.Global.Limits.H2StreamWindow = 1000 },
			[]string{"global.limits.h2_stream_window: must be 65535..2147483647, got 1000"}},
		{"h2 conn window below the stream window", func(c *Config) { c.Global.Limits.H2ConnWindow = 65535 },
			[]string{"global.limits.h2_conn_window: must be at least h2_stream_window (1048576) and at most 2147483647, got 65535"}},
		{"max_requests_per_conn negative", func(c *Config) { c.Global.Limits.MaxRequestsPerConn = -1 },
			[]string{"global.limits.max_requests_per_conn: must be >= 0, got -1"}},
		{"max_client_conns negative", func(c *Config) { c.Global.Limits.MaxClientConns = -1 },
			[]string{"global.limits.max_client_conns: must be >= 0, got -1"}},
		{"max_idle_conns_per_backend zero", func(c *Config) { c.Global.Limits.MaxIdleConnsPerBackend = 0 },
			[]string{"global.limits.max_idle_conns_per_backend: must be >= 1, got 0"}},
		{"max_conns_per_backend negative", func(c *Config) { c.Global.Limits.MaxConnsPerBackend = -1 },
			[]string{"global.limits.max_conns_per_backend: must be >= 0, got -1"}},
		{"backend_queue_timeout zero", func(c *Config) { c.Global.Limits.BackendQueueTimeout = 0 },
			[]string{"global.limits.backend_queue_timeout: must be > 0, got 0s"}},

		// retry
		{"retry attempts zero", func(c *Config) { c.Retry.Attempts = 0 },
			[]string{"retry.attempts: must be between 1 and 10, got 0"}},
		{"retry attempts eleven", func(c *Config) { c.Retry.Attempts = 11 },
			[]string{"retry.attempts: must be between 1 and 10, got 11"}},
		{"retry timeout zero", func(c *Config) { c.Retry.Timeout = 0 },
			[]string{"retry.timeout: must be > 0, got 0s"}},

		// sticky
		{"cookie_name empty", func(c *Config) { c.Sticky.CookieName = "" },
			[]string{"sticky.cookie_name: required"}},
		{"cookie_name with space", func(c *Config) { c.Sticky.CookieName = "vf session" },
			[]string{"sticky.cookie_name: invalid cookie name \"vf session\": use letters, digits and !#$%&'*+-.^_`|~ only"}},
		{"cookie_name with separator", func(c *Config) { c.Sticky.CookieName = "vf=1" },
			[]string{"sticky.cookie_name: invalid cookie name \"vf=1\": use letters, digits and !#$%&'*+-.^_`|~ only"}},
		{"ttl zero", func(c *Config) { c.Sticky.TTL = 0 },
			[]string{"sticky.ttl: must be > 0, got 0s"}},
		{"same_site unknown", func(c *Config) { c.Sticky.SameSite = "relaxed" },
			[]string{`sticky.same_site: must be one of lax, strict, none; got "relaxed"`}},
		{"same_site none without secure", func(c *Config) { c.Sticky.SameSite = "none" },
			[]string{`sticky.same_site: "none" requires sticky.secure: true (browsers drop SameSite=None cookies that are not Secure)`}},
		{"secret short with sticky pool", func(c *Config) {
			c.Pools[0].StickySessions = true
			c.Sticky.Secret = strings.Repeat("s", 31)
		}, []string{"sticky.secret: must be at least 32 bytes when a pool has sticky_sessions, got 31"}},

		// rate_limit
		{"requests_per_second negative", func(c *Config) { c.RateLimit.RequestsPerSecond = -1 },
			[]string{"rate_limit.requests_per_second: must be a finite number >= 0, got -1"}},
		{"requests_per_second NaN", func(c *Config) { c.RateLimit.RequestsPerSecond = math.NaN() },
			[]string{"rate_limit.requests_per_second: must be a finite number >= 0, got NaN"}},
		{"requests_per_second infinite", func(c *Config) { c.RateLimit.RequestsPerSecond = math.Inf(1) },
			[]string{"rate_limit.requests_per_second: must be a finite number >= 0, got +Inf"}},
		{"burst negative", func(c *Config) { c.RateLimit.Burst = -1 },
			[]string{"rate_limit.burst: must be >= 0, got -1"}},
		{"max_clients zero", func(c *Config) { c.RateLimit.MaxClients = 0 },
			[]string{"rate_limit.max_clients: must be between 1 and 16777216, got 0"}},
		{"ipv6_prefix zero", func(c *Config) { c.RateLimit.IPv6Prefix = 0 },
			[]string{"rate_limit.ipv6_prefix: must be between 1 and 128, got 0"}},
		{"ipv6_prefix too long", func(c *Config) { c.RateLimit.IPv6Prefix = 129 },
			[]string{"rate_limit.ipv6_prefix: must be between 1 and 128, got 129"}},
		{"rule without cidr", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{{RequestsPerSecond: 5}}
		}, []string{"rate_limit.rules[0].cidr: required"}},
		{"rule shadowed by earlier wider rule", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{
				{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true},
				{Prefix: netip.MustParsePrefix("10.1.0.0/16"), RequestsPerSecond: 5},
			}
		}, []string{"rate_limit.rules[1].cidr: never matches: rules[0] (10.0.0.0/8) comes first and covers 10.1.0.0/16"}},
		{"rule duplicated", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{
				{Prefix: netip.MustParsePrefix("2001:db8::/32"), RequestsPerSecond: 1},
				{Prefix: netip.MustParsePrefix("2001:db8::/32"), RequestsPerSecond: 2},
			}
		}, []string{"rate_limit.rules[1].cidr: never matches: rules[0] (2001:db8::/32) comes first and covers 2001:db8::/32"}},
		{"rule without rate and not exempt", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}}
		}, []string{"rate_limit.rules[0].requests_per_second: must be > 0 (set exempt to disable limiting)"}},
		{"rule negative rate", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), RequestsPerSecond: -2, Burst: -1}}
		}, []string{
			"rate_limit.rules[0].requests_per_second: must be a finite number >= 0, got -2",
			"rate_limit.rules[0].burst: must be >= 0, got -1",
		}},
		// What the limiter refuses, the file refuses: a node must start with a file that
		// validates.
		{"exempt rule with a rate", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true, RequestsPerSecond: 5}}
		}, []string{"rate_limit.rules[0].exempt: must not be combined with requests_per_second or burst (got 5 and 0)"}},
		{"rate above one per nanosecond", func(c *Config) { c.RateLimit.RequestsPerSecond = 2e9 },
			[]string{"rate_limit.requests_per_second: 2e+09 exceeds 1e+09"}},
		{"bucket refilling in more than 73 years", func(c *Config) {
			c.RateLimit.Rules = []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), RequestsPerSecond: 1e-9, Burst: 10}}
		}, []string{"rate_limit.rules[0].burst: 10 requests at 1e-09 per second take more than 73 years to refill"}},
		{"max clients above the table's cap", func(c *Config) { c.RateLimit.MaxClients = 1 << 30 },
			[]string{"rate_limit.max_clients: must be between 1 and 16777216, got 1073741824"}},

		// discovery.consul
		{"consul address empty", func(c *Config) { c.Discovery.Consul.Address = "" },
			[]string{"discovery.consul.address: required"}},
		{"consul address with scheme", func(c *Config) { c.Discovery.Consul.Address = "https://consul:8501" },
			[]string{`discovery.consul.address: must be host:port without a scheme, got "https://consul:8501"; set discovery.consul.scheme instead`}},
		{"consul address missing port", func(c *Config) { c.Discovery.Consul.Address = "consul.service" },
			[]string{"discovery.consul.address: missing port"}},
		{"consul address missing host", func(c *Config) { c.Discovery.Consul.Address = ":8500" },
			[]string{"discovery.consul.address: missing host"}},
		{"consul address port zero", func(c *Config) { c.Discovery.Consul.Address = "127.0.0.1:0" },
			[]string{"discovery.consul.address: port 0 out of range 1-65535"}},
		{"consul scheme unknown", func(c *Config) { c.Discovery.Consul.Scheme = "grpc" },
			[]string{`discovery.consul.scheme: must be one of http, https; got "grpc"`}},
		{"consul scheme empty", func(c *Config) { c.Discovery.Consul.Scheme = "" },
			[]string{`discovery.consul.scheme: must be one of http, https; got ""`}},
		{"consul token with newline is not echoed", func(c *Config) { c.Discovery.Consul.Token = "s3cr3t-token\n" },
			[]string{"discovery.consul.token: must not contain spaces or control characters (value not shown: it is secret)"}},
		{"consul token and token_file", func(c *Config) {
			c.Discovery.Consul.Token, c.Discovery.Consul.TokenFile = "t", "/run/secrets/consul"
		}, []string{"discovery.consul.token_file: set either token or token_file, not both"}},
		{"consul datacenter upper-case", func(c *Config) { c.Discovery.Consul.Datacenter = "DC1" },
			[]string{`discovery.consul.datacenter: invalid datacenter "DC1": Consul datacenter names are lower-case letters, digits, "-" and "_"`}},
		{"consul datacenters empty name", func(c *Config) { c.Discovery.Consul.Datacenters = []string{"dc2", ""} },
			[]string{"discovery.consul.datacenters[1]: must not be empty"}},
		{"consul datacenters two in one item", func(c *Config) { c.Discovery.Consul.Datacenters = []string{"dc2,dc3"} },
			[]string{`discovery.consul.datacenters[0]: invalid datacenter "dc2,dc3": Consul datacenter names are lower-case letters, digits, "-" and "_"`}},
		{"consul datacenters repeats datacenter", func(c *Config) {
			c.Discovery.Consul.Datacenter = "dc1"
			c.Discovery.Consul.Datacenters = []string{"dc2", "dc1"}
		}, []string{`discovery.consul.datacenters[1]: "dc1" is discovery.consul.datacenter; list only other datacenters`}},
		{"consul datacenters duplicate", func(c *Config) { c.Discovery.Consul.Datacenters = []string{"dc2", "dc3", "dc2"} },
			[]string{`discovery.consul.datacenters[2]: duplicate datacenter "dc2", also datacenters[0]`}},
		{"consul tls cert_file without key_file", func(c *Config) { c.Discovery.Consul.TLS.CertFile = "client.pem" },
			[]string{"discovery.consul.tls.key_file: required when cert_file is set"}},
		{"consul tls key_file without cert_file", func(c *Config) { c.Discovery.Consul.TLS.KeyFile = "client-key.pem" },
			[]string{"discovery.consul.tls.cert_file: required when key_file is set"}},
		{"consul tls server_name with port", func(c *Config) { c.Discovery.Consul.TLS.ServerName = "consul.internal:8501" },
			[]string{`discovery.consul.tls.server_name: must be a host name or IP address without a port, got "consul.internal:8501"`}},
		{"consul tls server_name bad name", func(c *Config) { c.Discovery.Consul.TLS.ServerName = "consul internal" },
			[]string{`discovery.consul.tls.server_name: invalid host "consul internal": invalid character ' ' (internationalized names must be written in punycode)`}},
		{"consul tag_prefix empty", func(c *Config) { c.Discovery.Consul.TagPrefix = "" },
			[]string{"discovery.consul.tag_prefix: required"}},
		{"consul tag_prefix with dot", func(c *Config) { c.Discovery.Consul.TagPrefix = "vf.edge" },
			[]string{`discovery.consul.tag_prefix: invalid tag prefix "vf.edge": use letters, digits, "_" and "-" only`}},
		{"consul tag_prefix with equals", func(c *Config) { c.Discovery.Consul.TagPrefix = "vf=" },
			[]string{`discovery.consul.tag_prefix: invalid tag prefix "vf=": use letters, digits, "_" and "-" only`}},
		{"consul wait_time below 1s", func(c *Config) { c.Discovery.Consul.WaitTime = 999 * time.Millisecond },
			[]string{"discovery.consul.wait_time: must be between 1s and 10m (Consul cuts longer waits to 10m), got 999ms"}},
		{"consul wait_time above 10m", func(c *Config) { c.Discovery.Consul.WaitTime = 10*time.Minute + time.Second },
			[]string{"discovery.consul.wait_time: must be between 1s and 10m (Consul cuts longer waits to 10m), got 10m1s"}},
		{"consul coalesce negative", func(c *Config) { c.Discovery.Consul.Coalesce = -time.Millisecond },
			[]string{"discovery.consul.coalesce: must be between 0 and 10s, got -1ms"}},
		{"consul coalesce above 10s", func(c *Config) { c.Discovery.Consul.Coalesce = 11 * time.Second },
			[]string{"discovery.consul.coalesce: must be between 0 and 10s, got 11s"}},
		{"consul min_backoff zero", func(c *Config) { c.Discovery.Consul.MinBackoff = 0 },
			[]string{"discovery.consul.min_backoff: must be > 0, got 0s"}},
		{"consul max_backoff below min_backoff", func(c *Config) { c.Discovery.Consul.MaxBackoff = 100 * time.Millisecond },
			[]string{"discovery.consul.max_backoff: must be >= min_backoff (250ms), got 100ms"}},
		{"consul register without consul", func(c *Config) { c.Discovery.Consul.Register.Enabled = true },
			[]string{"discovery.consul.register.enabled: requires discovery.consul.enabled: true"}},
		{"consul register without metrics listener", func(c *Config) {
			c.Discovery.Consul.Enabled, c.Discovery.Consul.Register.Enabled = true, true
			c.Global.MetricsAddress = ""
		}, []string{"discovery.consul.register.enabled: requires global.metrics_address: Consul checks the node's /readyz there"}},
		{"consul register name empty", func(c *Config) { c.Discovery.Consul.Register.Name = "" },
			[]string{"discovery.consul.register.name: required"}},
		{"consul register name with underscore", func(c *Config) { c.Discovery.Consul.Register.Name = "velo_flux" },
			[]string{`discovery.consul.register.name: invalid service name "velo_flux": use letters, digits and "-" only (Consul DNS needs a DNS label)`}},
		{"consul register name with dot", func(c *Config) { c.Discovery.Consul.Register.Name = "velo.flux" },
			[]string{`discovery.consul.register.name: invalid service name "velo.flux": use letters, digits and "-" only (Consul DNS needs a DNS label)`}},
		{"consul register id with slash", func(c *Config) { c.Discovery.Consul.Register.ID = "edge/1" },
			[]string{`discovery.consul.register.id: must not contain "/", spaces or control characters, got "edge/1"`}},
		{"consul register id with space", func(c *Config) { c.Discovery.Consul.Register.ID = "edge 1" },
			[]string{`discovery.consul.register.id: must not contain "/", spaces or control characters, got "edge 1"`}},
		{"consul register address with port", func(c *Config) { c.Discovery.Consul.Register.Address = "10.0.0.5:80" },
			[]string{`discovery.consul.register.address: must be a host name or IP address without a port, got "10.0.0.5:80"`}},
		{"consul register address bracketed ipv6", func(c *Config) { c.Discovery.Consul.Register.Address = "[2001:db8::5]" },
			[]string{`discovery.consul.register.address: write an IPv6 address without brackets, got "[2001:db8::5]"`}},
		{"consul register address with zone", func(c *Config) { c.Discovery.Consul.Register.Address = "fe80::1%eth0" },
			[]string{`discovery.consul.register.address: an address with a zone means nothing to other machines, got "fe80::1%eth0"`}},
		{"consul register address unspecified v4", func(c *Config) { c.Discovery.Consul.Register.Address = "0.0.0.0" },
			[]string{"discovery.consul.register.address: 0.0.0.0 is not an address clients can reach; advertise one of the node's addresses"}},
		{"consul register address unspecified v6", func(c *Config) { c.Discovery.Consul.Register.Address = "::" },
			[]string{"discovery.consul.register.address: :: is not an address clients can reach; advertise one of the node's addresses"}},
		{"consul register address bad name", func(c *Config) { c.Discovery.Consul.Register.Address = "edge-.internal" },
			[]string{`discovery.consul.register.address: invalid host "edge-.internal": a label must not start or end with "-"`}},
		{"consul register tag empty", func(c *Config) { c.Discovery.Consul.Register.Tags = []string{"edge", ""} },
			[]string{"discovery.consul.register.tags[1]: must not be empty"}},
		{"consul register tag with control", func(c *Config) { c.Discovery.Consul.Register.Tags = []string{"edge\tv2"} },
			[]string{`discovery.consul.register.tags[0]: must not contain control characters, got "edge\tv2"`}},
		{"consul register check_interval zero", func(c *Config) { c.Discovery.Consul.Register.CheckInterval = 0 },
			[]string{"discovery.consul.register.check_interval: must be > 0, got 0s"}},
		{"consul register deregister below 1m", func(c *Config) { c.Discovery.Consul.Register.DeregisterCriticalAfter = 59 * time.Second },
			[]string{"discovery.consul.register.deregister_critical_after: must be at least 1m (Consul raises shorter values to 1m), got 59s"}},

		// pools
		{"pool name empty", func(c *Config) { c.Pools[0].Name = ""; c.Routes = nil },
			[]string{"pools[0].name: required"}},
		{"pool name with space", func(c *Config) { c.Pools[0].Name = "web servers"; c.Routes[0].Pool = "web servers" },
			[]string{`pools[0].name: invalid name "web servers": use letters, digits, ".", "_" and "-" only`}},
		{"pool name duplicate", func(c *Config) {
			c.Pools = append(c.Pools, Pool{Name: "web", Algorithm: "random", Protocol: ProtocolHTTP, HealthCheck: c.Pools[0].HealthCheck, Passive: c.Pools[0].Passive})
		}, []string{`pools[1].name: duplicate pool name "web", also used by pools[0]`}},
		{"pool algorithm unknown", func(c *Config) { c.Pools[0].Algorithm = "fastest" },
			[]string{`pools[0].algorithm: must be one of round_robin, weighted, least_conn, ip_hash, random; got "fastest"`}},
		{"pool algorithm empty", func(c *Config) { c.Pools[0].Algorithm = "" },
			[]string{`pools[0].algorithm: must be one of round_robin, weighted, least_conn, ip_hash, random; got ""`}},
		{"pool protocol unknown", func(c *Config) { c.Pools[0].Protocol = "http2" },
			[]string{`pools[0].protocol: must be one of http, https, h2c; got "http2"`}},
		{"pool protocol empty", func(c *Config) { c.Pools[0].Protocol = "" },
			[]string{`pools[0].protocol: must be one of http, https, h2c; got ""`}},
		{"pool protocol upper-case", func(c *Config) { c.Pools[0].Protocol = "HTTPS" },
			[]string{`pools[0].protocol: must be one of http, https, h2c; got "HTTPS"`}},
		{"tls_skip_verify with http", func(c *Config) { c.Pools[0].TLSSkipVerify = true },
			[]string{`pools[0].tls_skip_verify: only applies to protocol https, got protocol "http"`}},
		{"tls_skip_verify with h2c", func(c *Config) { c.Pools[0].Protocol, c.Pools[0].TLSSkipVerify = ProtocolH2C, true },
			[]string{`pools[0].tls_skip_verify: only applies to protocol https, got protocol "h2c"`}},
		{"pool health interval zero", func(c *Config) { c.Pools[0].HealthCheck.Interval = 0 },
			[]string{"pools[0].health_check.interval: must be > 0, got 0s"}},
		{"pool health timeout above interval", func(c *Config) { c.Pools[0].HealthCheck.Interval = 2 * time.Second },
			[]string{"pools[0].health_check.timeout: must not exceed interval (2s), got 5s"}},
		{"pool health retries zero", func(c *Config) { c.Pools[0].HealthCheck.Fall = 0 },
			[]string{"pools[0].health_check.retries: must be >= 1, got 0"}},
		{"pool health path relative", func(c *Config) { c.Pools[0].HealthCheck.Path = "health" },
			[]string{`pools[0].health_check.path: must start with "/", got "health"`}},
		{"pool health path with space", func(c *Config) { c.Pools[0].HealthCheck.Path = "/he alth" },
			[]string{`pools[0].health_check.path: must not contain spaces or control characters, got "/he alth"`}},
		{"pool health rise zero", func(c *Config) { c.Pools[0].HealthCheck.Rise = 0 },
			[]string{"pools[0].health_check.rise: must be >= 1, got 0"}},
		{"pool health max_interval below the pool's interval", func(c *Config) { c.Pools[0].HealthCheck.Interval = 2 * time.Minute },
			[]string{"pools[0].health_check.max_interval: must be at least interval (2m0s), got 1m0s"}},
		{"pool health type unknown", func(c *Config) { c.Pools[0].HealthCheck.Type = "grpc" },
			[]string{`pools[0].health_check.type: must be one of http, tcp; got "grpc"`}},
		{"pool health method invalid", func(c *Config) { c.Pools[0].HealthCheck.Method = "G\tET" },
			[]string{`pools[0].health_check.method: must be an HTTP method such as GET or HEAD, got "G\tET"`}},
		{"pool health expect_status invalid", func(c *Config) { c.Pools[0].HealthCheck.ExpectStatus = "200,,204" },
			[]string{`pools[0].health_check.expect_status: "200,,204": empty item between commas`}},
		{"pool tcp check with a path", func(c *Config) { c.Pools[0].HealthCheck.Type = health.TypeTCP },
			[]string{"pools[0].health_check.path: only applies to type http, got type tcp (a tcp check opens a connection and checks every backend)"}},
		{"backend path under a tcp pool", func(c *Config) {
			c.Pools[0].HealthCheck.Type, c.Pools[0].HealthCheck.Path = health.TypeTCP, ""
			c.Pools[0].Backends[1].HealthCheck.Path = "/h"
		}, []string{"pools[0].backends[1].health_check.path: only applies to type http, got the pool's type tcp"}},
		{"backend host and status under a tcp pool", func(c *Config) {
			c.Pools[0].HealthCheck.Type, c.Pools[0].HealthCheck.Path = health.TypeTCP, ""
			c.Pools[0].Backends[0].HealthCheck.Host, c.Pools[0].Backends[0].HealthCheck.ExpectStatus = "a.internal", "204"
		}, []string{
			"pools[0].backends[0].health_check.host: only applies to type http, got the pool's type tcp",
			"pools[0].backends[0].health_check.expect_status: only applies to type http, got the pool's type tcp",
		}},
		{"backend health overrides invalid", func(c *Config) {
			b := &c.Pools[0].Backends[1].HealthCheck
			b.Method, b.Host, b.ExpectStatus = "G ET", "*.wild.example", "2xx"
		}, []string{
			`pools[0].backends[1].health_check.method: must be an HTTP method such as GET or HEAD, got "G ET"`,
			`pools[0].backends[1].health_check.host: invalid host "*.wild.example": a Host header cannot be a wildcard`,
			`pools[0].backends[1].health_check.expect_status: "2xx": not a status code`,
		}},
		{"pool max_conns_per_backend negative", func(c *Config) { c.Pools[0].MaxConnsPerBackend = -2 },
			[]string{"pools[0].max_conns_per_backend: must be >= 0, got -2"}},
		{"pool passive failures negative", func(c *Config) { c.Pools[0].Passive.ConsecutiveFailures = -3 },
			[]string{"pools[0].passive.consecutive_failures: must be >= 0, got -3"}},
		{"pool passive max ejection time below ejection time", func(c *Config) { c.Pools[0].Passive.EjectionTime = 10 * time.Minute },
			[]string{"pools[0].passive.max_ejection_time: must be at least ejection_time (10m0s), got 5m0s"}},
		{"pool passive percent above 100", func(c *Config) { c.Pools[0].Passive.MaxEjectionPercent = 150 },
			[]string{"pools[0].passive.max_ejection_percent: must be between 0 and 100, got 150"}},
		{"backend address empty", func(c *Config) { c.Pools[0].Backends[1].Address = "" },
			[]string{"pools[0].backends[1].address: required"}},
		{"backend address missing port", func(c *Config) { c.Pools[0].Backends[0].Address = "10.0.0.9" },
			[]string{"pools[0].backends[0].address: missing port"}},
		{"backend address missing host", func(c *Config) { c.Pools[0].Backends[0].Address = ":8080" },
			[]string{"pools[0].backends[0].address: missing host"}},
		{"backend address port zero", func(c *Config) { c.Pools[0].Backends[0].Address = "10.0.0.9:0" },
			[]string{"pools[0].backends[0].address: port 0 out of range 1-65535"}},
		{"backend address unbracketed ipv6", func(c *Config) { c.Pools[0].Backends[0].Address = "2001:db8::1:80" },
			[]string{`pools[0].backends[0].address: IPv6 addresses must be in brackets, e.g. "[::1]:8080"`}},
		{"backend address bracketed name", func(c *Config) { c.Pools[0].Backends[0].Address = "[api]:80" },
			[]string{`pools[0].backends[0].address: "api" in brackets is not an IPv6 address`}},
		{"backend address bad name", func(c *Config) { c.Pools[0].Backends[0].Address = "-api.internal:80" },
			[]string{`pools[0].backends[0].address: invalid host "-api.internal": a label must not start or end with "-"`}},
		{"backend address duplicate", func(c *Config) { c.Pools[0].Backends[1].Address = "10.0.0.1:8080" },
			[]string{`pools[0].backends[1].address: duplicate address "10.0.0.1:8080", also used by backends[0]`}},
		{"backend address duplicate ignoring case", func(c *Config) {
			c.Pools[0].Backends[0].Address = "api.internal:80"
			c.Pools[0].Backends[1].Address = "API.internal:80"
		}, []string{`pools[0].backends[1].address: duplicate address "API.internal:80", also used by backends[0]`}},
		{"backend weight zero", func(c *Config) { c.Pools[0].Backends[0].Weight = 0 },
			[]string{"pools[0].backends[0].weight: must be between 1 and 10000, got 0"}},
		{"backend weight too big", func(c *Config) { c.Pools[0].Backends[1].Weight = 10001 },
			[]string{"pools[0].backends[1].weight: must be between 1 and 10000, got 10001"}},
		{"backend health path relative", func(c *Config) { c.Pools[0].Backends[0].HealthCheck.Path = "ping" },
			[]string{`pools[0].backends[0].health_check.path: must start with "/", got "ping"`}},

		// backend region
		{"backend region upper-case", func(c *Config) { c.Pools[0].Backends[1].Region = "US-East-1" },
			[]string{`pools[0].backends[1].region: invalid region name "US-East-1": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"backend region with space", func(c *Config) { c.Pools[0].Backends[0].Region = "us east" },
			[]string{`pools[0].backends[0].region: invalid region name "us east": use lower-case letters, digits, ".", "_" and "-" only`}},

		// geo
		{"geo nearest without database and node_region", func(c *Config) { c.Routes[0].Geo = GeoNearest }, []string{
			`geo.database: required when a route has geo other than off (routes[0] has "nearest")`,
			`geo.node_region: required when a route has geo other than off (routes[0] has "nearest")`,
		}},
		{"geo redirect names the first geo route", func(c *Config) {
			withGeo(c)
			c.Geo.Database = ""
			c.Routes[0].Geo = GeoOff
			c.Routes = append(c.Routes, Route{Host: "a.example.com", Pool: "web", Geo: GeoRedirect},
				Route{Host: "b.example.com", Pool: "web", Geo: GeoNearest})
		}, []string{`geo.database: required when a route has geo other than off (routes[1] has "redirect")`}},
		{"geo node_region missing", func(c *Config) {
			withGeo(c)
			c.Geo.NodeRegion = ""
		}, []string{`geo.node_region: required when a route has geo other than off (routes[0] has "nearest")`}},
		{"geo node_region upper-case", func(c *Config) { c.Geo.NodeRegion = "EU" },
			[]string{`geo.node_region: invalid region name "EU": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"geo node_region non-ascii", func(c *Config) { c.Geo.NodeRegion = "zürich" },
			[]string{`geo.node_region: invalid region name "zürich": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"geo cache_size zero", func(c *Config) { c.Geo.CacheSize = 0 },
			[]string{"geo.cache_size: must be between 1 and 10000000, got 0"}},
		{"geo cache_size too big", func(c *Config) { c.Geo.CacheSize = 10_000_001 },
			[]string{"geo.cache_size: must be between 1 and 10000000, got 10000001"}},
		{"geo response_header with space", func(c *Config) { c.Geo.ResponseHeader = "X Region" },
			[]string{`geo.response_header: invalid header name "X Region": use letters, digits and !#$%&'*+-.^_` + "`" + `|~ only`}},
		{"geo response_header with colon", func(c *Config) { c.Geo.ResponseHeader = "X-Region:" },
			[]string{`geo.response_header: invalid header name "X-Region:": use letters, digits and !#$%&'*+-.^_` + "`" + `|~ only`}},
		{"geo response_header non-ascii", func(c *Config) { c.Geo.ResponseHeader = "X-Région" },
			[]string{`geo.response_header: invalid header name "X-Région": use letters, digits and !#$%&'*+-.^_` + "`" + `|~ only`}},
		{"geo country code lower-case", func(c *Config) { c.Geo.CountryRegions = map[string]string{"de": "eu-central-1"} },
			[]string{`geo.country_regions["de"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "de"`}},
		{"geo country code alpha-3", func(c *Config) { c.Geo.CountryRegions = map[string]string{"DEU": "eu-central-1"} },
			[]string{`geo.country_regions["DEU"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "DEU"`}},
		{"geo country code digits", func(c *Config) { c.Geo.CountryRegions = map[string]string{"12": "eu-central-1"} },
			[]string{`geo.country_regions["12"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "12"`}},
		{"geo country region empty", func(c *Config) { c.Geo.CountryRegions = map[string]string{"DE": ""} },
			[]string{`geo.country_regions["DE"]: must name a region`}},
		{"geo country region invalid", func(c *Config) { c.Geo.CountryRegions = map[string]string{"DE": "Frankfurt"} },
			[]string{`geo.country_regions["DE"]: invalid region name "Frankfurt": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"geo country problems in key order", func(c *Config) {
			c.Geo.CountryRegions = map[string]string{"fr": "eu-west-3", "AT": "", "de": "EU", "US": "us-east-1"}
		}, []string{
			`geo.country_regions["AT"]: must name a region`,
			`geo.country_regions["de"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "de"`,
			`geo.country_regions["de"]: invalid region name "EU": use lower-case letters, digits, ".", "_" and "-" only`,
			`geo.country_regions["fr"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "fr"`,
		}},
		{"geo continent code unknown", func(c *Config) { c.Geo.ContinentRegions = map[string]string{"AU": "ap-southeast-2"} },
			[]string{`geo.continent_regions["AU"]: continent code must be one of AF, AN, AS, EU, NA, OC, SA, got "AU"`}},
		{"geo continent code lower-case", func(c *Config) { c.Geo.ContinentRegions = map[string]string{"eu": "eu-central-1"} },
			[]string{`geo.continent_regions["eu"]: continent code must be one of AF, AN, AS, EU, NA, OC, SA, got "eu"`}},
		{"geo continent region empty", func(c *Config) { c.Geo.ContinentRegions = map[string]string{"EU": ""} },
			[]string{`geo.continent_regions["EU"]: must name a region`}},
		{"geo continent region invalid", func(c *Config) { c.Geo.ContinentRegions = map[string]string{"EU": "eu/central"} },
			[]string{`geo.continent_regions["EU"]: invalid region name "eu/central": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"geo region name empty", func(c *Config) { c.Geo.Regions = []geo.Region{{Lat: 1, Lon: 1}} },
			[]string{"geo.regions[0].name: required"}},
		{"geo region name invalid", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "EU Central", Lat: 1, Lon: 1}} },
			[]string{`geo.regions[0].name: invalid region name "EU Central": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"geo region name duplicate", func(c *Config) {
			c.Geo.Regions = []geo.Region{{Name: "eu", Lat: 1}, {Name: "us"}, {Name: "eu", Lon: 2}}
		}, []string{`geo.regions[2].name: duplicate region name "eu", also used by regions[0]`}},
		{"geo latitude above 90", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", Lat: 90.01}} },
			[]string{"geo.regions[0].lat: must be between -90 and 90 degrees, got 90.01"}},
		{"geo latitude below -90", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", Lat: -91}} },
			[]string{"geo.regions[0].lat: must be between -90 and 90 degrees, got -91"}},
		{"geo latitude NaN", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", Lat: math.NaN()}} },
			[]string{"geo.regions[0].lat: must be between -90 and 90 degrees, got NaN"}},
		{"geo longitude above 180", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", Lon: 180.5}} },
			[]string{"geo.regions[0].lon: must be between -180 and 180 degrees, got 180.5"}},
		{"geo longitude below -180", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", Lon: -181}} },
			[]string{"geo.regions[0].lon: must be between -180 and 180 degrees, got -181"}},
		{"geo longitude infinite", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", Lon: math.Inf(-1)}} },
			[]string{"geo.regions[0].lon: must be between -180 and 180 degrees, got -Inf"}},
		{"geo redirect_host with scheme", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "https://eu.example.com"}} },
			[]string{`geo.regions[0].redirect_host: must be host[:port] without a scheme, got "https://eu.example.com"`}},
		{"geo redirect_host with path", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "eu.example.com/app"}} },
			[]string{`geo.regions[0].redirect_host: must be host[:port] without a path, got "eu.example.com/app"`}},
		{"geo redirect_host with query", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "eu.example.com?a"}} },
			[]string{`geo.regions[0].redirect_host: must be host[:port] without a path, got "eu.example.com?a"`}},
		{"geo redirect_host port zero", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "eu.example.com:0"}} },
			[]string{"geo.regions[0].redirect_host: port 0 out of range 1-65535"}},
		{"geo redirect_host named port", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "eu.example.com:https"}} },
			[]string{`geo.regions[0].redirect_host: invalid port "https"`}},
		{"geo redirect_host empty port", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "eu.example.com:"}} },
			[]string{`geo.regions[0].redirect_host: invalid port ""`}},
		{"geo redirect_host port without host", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: ":443"}} },
			[]string{"geo.regions[0].redirect_host: missing host"}},
		{"geo redirect_host unbracketed ipv6", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "2001:db8::1"}} },
			[]string{`geo.regions[0].redirect_host: IPv6 addresses must be in brackets, e.g. "[2001:db8::1]", got "2001:db8::1"`}},
		{"geo redirect_host bracketed name", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "[eu.example.com]:443"}} },
			[]string{`geo.regions[0].redirect_host: "eu.example.com" in brackets is not an IPv6 address`}},
		{"geo redirect_host bracketed ipv4", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "[10.0.0.1]"}} },
			[]string{`geo.regions[0].redirect_host: "10.0.0.1" in brackets is not an IPv6 address`}},
		{"geo redirect_host ipv6 with zone", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "[fe80::1%eth0]:443"}} },
			[]string{`geo.regions[0].redirect_host: "fe80::1%eth0" in brackets is not an IPv6 address`}},
		{"geo redirect_host unclosed bracket", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "[2001:db8::1"}} },
			[]string{`geo.regions[0].redirect_host: invalid host "[2001:db8::1"`}},
		{"geo redirect_host wildcard", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "*.example.com"}} },
			[]string{`geo.regions[0].redirect_host: invalid host "*.example.com": invalid character '*' (internationalized names must be written in punycode)`}},
		{"geo redirect_host bad label", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "x", RedirectHost: "eu-.example.com:443"}} },
			[]string{`geo.regions[0].redirect_host: invalid host "eu-.example.com": a label must not start or end with "-"`}},

		// routes
		{"route host star", func(c *Config) { c.Routes[0].Host = "*" },
			[]string{`routes[0].host: "*" is not a host; use "" for the default route`}},
		{"route host inner wildcard", func(c *Config) { c.Routes[0].Host = "api.*.example.com" },
			[]string{`routes[0].host: invalid host "api.*.example.com": a wildcard must be the whole leftmost label, e.g. "*.example.com"`}},
		{"route host partial wildcard", func(c *Config) { c.Routes[0].Host = "*api.example.com" },
			[]string{`routes[0].host: invalid host "*api.example.com": a wildcard must be the whole leftmost label, e.g. "*.example.com"`}},
		{"route host wildcard ip", func(c *Config) { c.Routes[0].Host = "*.10.0.0.1" },
			[]string{`routes[0].host: invalid host "*.10.0.0.1": an IP address cannot have a wildcard`}},
		{"route host port zero", func(c *Config) { c.Routes[0].Host = "example.com:0" },
			[]string{"routes[0].host: port 0 out of range 1-65535"}},
		{"route host port not numeric", func(c *Config) { c.Routes[0].Host = "example.com:https" },
			[]string{`routes[0].host: invalid port "https"`}},
		{"route host empty label", func(c *Config) { c.Routes[0].Host = "example..com" },
			[]string{`routes[0].host: invalid host "example..com": empty label`}},
		{"route host trailing dot", func(c *Config) { c.Routes[0].Host = "example.com." },
			[]string{`routes[0].host: invalid host "example.com.": empty label`}},
		{"route host long label", func(c *Config) { c.Routes[0].Host = strings.Repeat("a", 64) + ".com" },
			[]string{`routes[0].host: invalid host "` + strings.Repeat("a", 64) + `"...: label longer than 63 characters`}},
		{"route host bad ipv6", func(c *Config) { c.Routes[0].Host = "[zz::1]:8443" },
			[]string{`routes[0].host: "zz::1" in brackets is not an IPv6 address`}},
		{"route host unclosed bracket", func(c *Config) { c.Routes[0].Host = "[::1" },
			[]string{`routes[0].host: invalid host "[::1": missing "]"`}},
		{"route host unicode", func(c *Config) { c.Routes[0].Host = "bücher.example" },
			[]string{`routes[0].host: invalid host "bücher.example": invalid character 'ü' (internationalized names must be written in punycode)`}},
		{"route path_prefix relative", func(c *Config) { c.Routes[0].PathPrefix = "api" },
			[]string{`routes[0].path_prefix: must be empty or start with "/", got "api"`}},
		{"route path_prefix with query", func(c *Config) { c.Routes[0].PathPrefix = "/api?v=1" },
			[]string{`routes[0].path_prefix: must be a path without query or fragment, got "/api?v=1"`}},
		{"route path_prefix with control", func(c *Config) { c.Routes[0].PathPrefix = "/api\n" },
			[]string{`routes[0].path_prefix: must not contain spaces or control characters, got "/api\n"`}},
		{"route pool empty", func(c *Config) { c.Routes[0].Pool = "" },
			[]string{"routes[0].pool: required"}},
		{"route pool unknown", func(c *Config) { c.Routes[0].Pool = "api" },
			[]string{`routes[0].pool: unknown pool "api"`}},
		{"route geo unknown", func(c *Config) { c.Routes[0].Geo = "closest" },
			[]string{`routes[0].geo: must be one of off, nearest, redirect; got "closest"`}},
		{"route geo empty", func(c *Config) { c.Routes[0].Geo = "" },
			[]string{`routes[0].geo: must be one of off, nearest, redirect; got ""`}},
		{"route geo upper-case", func(c *Config) {
			withGeo(c)
			c.Routes[0].Geo = "Nearest"
		}, []string{`routes[0].geo: must be one of off, nearest, redirect; got "Nearest"`}},
		{"route geo redirect without regions", func(c *Config) {
			withGeo(c)
			c.Geo.Regions = nil
			c.Routes[0].Geo = GeoRedirect
		}, []string{`routes[0].geo: "redirect" needs a geo.regions[] entry with a redirect_host to send clients to`}},
		{"route geo redirect without any redirect_host", func(c *Config) {
			withGeo(c)
			for i := range c.Geo.Regions {
				c.Geo.Regions[i].RedirectHost = ""
			}
			c.Routes = append(c.Routes, Route{Host: "a.example.com", Pool: "web", Geo: GeoRedirect})
		}, []string{`routes[1].geo: "redirect" needs a geo.regions[] entry with a redirect_host to send clients to`}},
		{"route duplicate", func(c *Config) {
			c.Routes = append(c.Routes, Route{Host: "example.com", PathPrefix: "", Pool: "web", StripPrefix: true, Geo: GeoOff})
		}, []string{"routes[1]: same host and path_prefix as routes[0]; the second route could never match"}},
		{"route duplicate empty and slash prefix", func(c *Config) {
			c.Routes = append(c.Routes, Route{Host: "example.com", PathPrefix: "/", Pool: "web", Geo: GeoOff})
		}, []string{"routes[1]: same host and path_prefix as routes[0]; the second route could never match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			if err := c.Validate(); err != nil {
				t.Fatalf("base config invalid: %v", err)
			}
			tt.mutate(c)
			assertLines(t, c.Validate(), tt.want)
		})
	}
}

func TestACMEStorage(t *testing.T) {
	tests := []struct {
		name    string
		storage string
		consul  bool
		want    string
	}{
		{"file without consul", "", false, ACMEStorageFile},
		{"consul when discovery uses it", "", true, ACMEStorageConsul},
		{"file chosen beside consul", ACMEStorageFile, true, ACMEStorageFile},
		{"consul chosen", ACMEStorageConsul, true, ACMEStorageConsul},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Global.TLS.Storage, c.Discovery.Consul.Enabled = tt.storage, tt.consul
			if got := c.ACMEStorage(); got != tt.want {
				t.Errorf("ACMEStorage() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"defaults without pools or routes", func(c *Config) { c.Pools, c.Routes = nil, nil }},
		{"pools without routes", func(c *Config) { c.Routes = nil }},
		{"empty pool", func(c *Config) { c.Pools[0].Backends = nil }},
		{"listeners on port 0 share the port number", func(c *Config) {
			c.Global.BindAddress, c.Global.MetricsAddress, c.Global.AdminAddress = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		}},
		{"listener on all interfaces", func(c *Config) { c.Global.BindAddress = ":80" }},
		{"listener on ipv6", func(c *Config) { c.Global.BindAddress = "[::]:80" }},
		{"listener on a name", func(c *Config) { c.Global.AdminAddress = "localhost:9000" }},
		{"metrics and admin disabled", func(c *Config) { c.Global.MetricsAddress, c.Global.AdminAddress = "", "" }},
		{"tls with files", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.CertFile, c.Global.TLS.KeyFile = "/c.pem", "/k.pem"
		}},
		{"tls with auto_cert", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Global.TLS.ACMEEmail = "ops@example.com"
		}},
		{"auto_cert with consul storage and a private CA", func(c *Config) {
			c.Global.TLSBindAddress = ":443"
			c.Global.TLS.AutoCert = true
			c.Discovery.Consul.Enabled = true
			c.Global.TLS.Storage = ACMEStorageConsul
			c.Global.TLS.ACMEDirectory = "https://127.0.0.1:14000/dir"
			c.Global.TLS.ACMECARoot = "/etc/veloflux/pebble.minica.pem"
		}},
		{"wildcard route without auto_cert", func(c *Config) {
			c.Routes = append(c.Routes, Route{Host: "*.example.com", Pool: "web", Geo: GeoOff})
		}},
		{"pool tls with a private CA, a server name and a client certificate", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLS = PoolTLS{CAFile: "/ca.pem", ServerName: "api.internal", CertFile: "/client.pem", KeyFile: "/client.key"}
		}},
		{"pool tls skipping verification with a client certificate", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLS = PoolTLS{InsecureSkipVerify: true, CertFile: "/client.pem", KeyFile: "/client.key"}
		}},
		{"read timeout zero means none", func(c *Config) { c.Global.Timeouts.Read = 0 }},
		{"health timeout equal to interval", func(c *Config) { c.Global.HealthCheck.Timeout = c.Global.HealthCheck.Interval }},
		{"health max_interval equal to interval turns backoff off", func(c *Config) { c.Global.HealthCheck.MaxInterval = c.Global.HealthCheck.Interval }},
		{"health HEAD", func(c *Config) { c.Global.HealthCheck.Method = "HEAD" }},
		{"health custom token method", func(c *Config) { c.Global.HealthCheck.Method = "X-PROBE" }},
		{"health host forms", func(c *Config) {
			for i, h := range []string{"svc.internal", "Svc.Internal:8443", "10.0.0.1", "[2001:db8::1]:80"} {
				c.Pools = append(c.Pools, Pool{Name: fmt.Sprint("h", i), Algorithm: AlgorithmRandom, Protocol: ProtocolHTTP, HealthCheck: c.Pools[0].HealthCheck, Passive: c.Pools[0].Passive})
				c.Pools[len(c.Pools)-1].HealthCheck.Host = h
			}
		}},
		{"health expect_status forms", func(c *Config) {
			for i, e := range []string{"200", "200-299,301", " 204 , 301-302", "100-599"} {
				c.Pools = append(c.Pools, Pool{Name: fmt.Sprint("e", i), Algorithm: AlgorithmRandom, Protocol: ProtocolHTTP, HealthCheck: c.Pools[0].HealthCheck, Passive: c.Pools[0].Passive})
				c.Pools[len(c.Pools)-1].HealthCheck.ExpectStatus = e
			}
		}},
		{"tcp pool without path", func(c *Config) { c.Pools[0].HealthCheck.Type, c.Pools[0].HealthCheck.Path = health.TypeTCP, "" }},
		{"passive off", func(c *Config) { c.Global.Passive.ConsecutiveFailures, c.Pools[0].Passive.ConsecutiveFailures = 0, 0 }},
		{"passive percent bounds", func(c *Config) { c.Global.Passive.MaxEjectionPercent, c.Pools[0].Passive.MaxEjectionPercent = 0, 100 }},
		{"passive max ejection time equal to ejection time", func(c *Config) { c.Global.Passive.MaxEjectionTime = c.Global.Passive.EjectionTime }},
		{"every algorithm", func(c *Config) {
			for _, a := range []string{AlgorithmRoundRobin, AlgorithmWeighted, AlgorithmLeastConn, AlgorithmIPHash, AlgorithmRandom} {
				c.Pools = append(c.Pools, Pool{Name: "p-" + a, Algorithm: a, Protocol: ProtocolHTTP, HealthCheck: c.Pools[0].HealthCheck, Passive: c.Pools[0].Passive})
			}
		}},
		{"sticky pool with empty secret (cmd generates one)", func(c *Config) { c.Pools[0].StickySessions = true }},
		{"sticky pool with 32 byte secret", func(c *Config) {
			c.Pools[0].StickySessions = true
			c.Sticky.Secret = strings.Repeat("s", 32)
		}},
		{"short secret without sticky pools", func(c *Config) { c.Sticky.Secret = "short" }},
		{"same_site none with secure", func(c *Config) { c.Sticky.SameSite, c.Sticky.Secure = "none", true }},
		{"same_site strict", func(c *Config) { c.Sticky.SameSite = "strict" }},
		{"rate limit rules narrow before wide", func(c *Config) {
			c.RateLimit.RequestsPerSecond = 0.5
			c.RateLimit.Rules = []ratelimit.Rule{
				{Prefix: netip.MustParsePrefix("10.1.0.0/16"), RequestsPerSecond: 5},
				{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true},
				{Prefix: netip.MustParsePrefix("2001:db8::/32"), RequestsPerSecond: 1, Burst: 10},
				{Prefix: netip.MustParsePrefix("0.0.0.0/0"), RequestsPerSecond: 100},
			}
		}},
		{"backend address forms", func(c *Config) {
			c.Pools[0].Backends = []Backend{
				{Address: "[2001:db8::1]:8080", Weight: 1},
				{Address: "[fe80::1%eth0]:8080", Weight: 1},
				{Address: "localhost:80", Weight: 10000},
				{Address: "web_1.service.consul:8080", Weight: 1},
				{Address: "10.0.0.1:65535", Weight: 1},
			}
		}},
		{"route host forms", func(c *Config) {
			c.Routes = nil
			for _, h := range []string{"", "example.com", "example.com:8443", "*.example.com", "*.example.com:8443", "10.0.0.1", "10.0.0.1:8080", "[::1]", "[2001:db8::1]:8443", "xn--bcher-kva.example"} {
				c.Routes = append(c.Routes, Route{Host: h, Pool: "web", Geo: GeoOff})
			}
		}},
		{"consul enabled with every key set", func(c *Config) {
			cs := &c.Discovery.Consul
			cs.Enabled = true
			cs.Address, cs.Scheme = "consul.service.consul:8501", "https"
			cs.Token = "6a1253d2-1785-24fd-91c2-f8e78c745511"
			cs.Datacenter, cs.Datacenters = "eu-west_1", []string{"us-east-1", "ap_south"}
			cs.TLS = consul.TLSConfig{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "server.dc1.consul"}
			cs.TagPrefix, cs.ExposedByDefault, cs.AcceptWarning = "edge_v2-a", true, true
			cs.WaitTime, cs.Coalesce, cs.MinBackoff, cs.MaxBackoff = time.Second, 0, time.Second, time.Second
			cs.Register = consul.RegisterConfig{
				Enabled: true, Name: "Velo-Flux-2", ID: "veloflux-node-1:80", Address: "2001:db8::5",
				Tags: []string{"edge", "Host(`a`) && Path(`/`)"}, CheckInterval: time.Second, DeregisterCriticalAfter: time.Minute,
			}
		}},
		{"consul limits inclusive", func(c *Config) {
			c.Discovery.Consul.WaitTime, c.Discovery.Consul.Coalesce = 10*time.Minute, 10*time.Second
		}},
		{"consul token_file alone", func(c *Config) { c.Discovery.Consul.TokenFile = "/run/secrets/consul-token" }},
		{"consul datacenters without datacenter", func(c *Config) { c.Discovery.Consul.Datacenters = []string{"dc2"} }},
		{"consul tls with ip server name and skip verify", func(c *Config) {
			c.Discovery.Consul.TLS.ServerName, c.Discovery.Consul.TLS.InsecureSkipVerify = "10.0.0.9", true
		}},
		{"consul register address name", func(c *Config) { c.Discovery.Consul.Register.Address = "edge-1.internal" }},
		{"consul register address ipv4", func(c *Config) { c.Discovery.Consul.Register.Address = "10.0.0.5" }},
		{"consul registration disabled without metrics listener", func(c *Config) {
			c.Discovery.Consul.Enabled = true
			c.Global.MetricsAddress = ""
		}},
		{"every pool protocol", func(c *Config) {
			for _, p := range []string{ProtocolHTTP, ProtocolHTTPS, ProtocolH2C} {
				c.Pools = append(c.Pools, Pool{Name: "p-" + p, Algorithm: AlgorithmRandom, Protocol: p, HealthCheck: c.Pools[0].HealthCheck, Passive: c.Pools[0].Passive})
			}
		}},
		{"tls_skip_verify with https", func(c *Config) { c.Pools[0].Protocol, c.Pools[0].TLSSkipVerify = ProtocolHTTPS, true }},
		{"geo nearest and redirect routes", func(c *Config) {
			withGeo(c)
			c.Routes = append(c.Routes, Route{Host: "a.example.com", Pool: "web", Geo: GeoRedirect})
			c.Pools[0].Backends[1].Region = "us-east-1"
		}},
		{"geo redirect with one redirect_host among regions", func(c *Config) {
			withGeo(c)
			c.Geo.Regions = append(c.Geo.Regions, geo.Region{Name: "ap", Lat: -33.87, Lon: 151.21})
			c.Routes[0].Geo = GeoRedirect
		}},
		{"geo section without geo routes needs no database", func(c *Config) {
			c.Geo.NodeRegion = "eu-central-1"
			c.Geo.ResponseHeader = "X-VeloFlux-Region"
			c.Geo.Regions = []geo.Region{{Name: "eu-central-1", Lat: 50.11, Lon: 8.68, RedirectHost: "eu.example.com"}}
			c.Pools[0].Backends[0].Region = "us-east-1"
		}},
		{"geo region names with every allowed character", func(c *Config) {
			withGeo(c)
			c.Geo.NodeRegion = "a.b_c-9"
			c.Pools[0].Backends[0].Region = "0"
			c.Geo.CountryRegions = map[string]string{"DE": "a.b_c-9"}
			c.Geo.Regions = append(c.Geo.Regions, geo.Region{Name: "a.b_c-9"}, geo.Region{Name: "0"})
		}},
		{"geo coordinates at their limits", func(c *Config) {
			c.Geo.Regions = []geo.Region{
				{Name: "n", Lat: 90, Lon: 180}, {Name: "s", Lat: -90, Lon: -180}, {Name: "zero", Lat: 0, Lon: 0},
			}
		}},
		{"geo cache_size limits", func(c *Config) { c.Geo.CacheSize = 1 }},
		{"geo cache_size upper limit", func(c *Config) { c.Geo.CacheSize = 10_000_000 }},
		{"geo response_header token characters", func(c *Config) { c.Geo.ResponseHeader = "x-vf_region.v2!#$%&'*+^`|~" }},
		{"geo every continent and some countries", func(c *Config) {
			c.Geo.ContinentRegions = map[string]string{}
			for _, code := range []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"} {
				c.Geo.ContinentRegions[code] = "r-" + strings.ToLower(code)
			}
			c.Geo.CountryRegions = map[string]string{"NO": "eu-north-1", "GB": "eu-west-2", "ZZ": "us-east-1"}
		}},
		{"geo redirect_host forms", func(c *Config) {
			for i, h := range []string{"eu.example.com", "EU.Example.com:8443", "10.0.0.1", "10.0.0.1:80", "[2001:db8::1]", "[2001:db8::1]:443", "localhost", "xn--bcher-kva.example"} {
				c.Geo.Regions = append(c.Geo.Regions, geo.Region{Name: "r" + strconv.Itoa(i), RedirectHost: h})
			}
		}},
		{"same host different prefixes", func(c *Config) {
			c.Routes = append(c.Routes, Route{Host: "example.com", PathPrefix: "/api", Pool: "web", Geo: GeoOff},
				Route{Host: "example.com", PathPrefix: "/api/", Pool: "web", Geo: GeoOff}, Route{Host: "", PathPrefix: "/api", Pool: "web", Geo: GeoOff})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestValidateReportsAllInSchemaOrder breaks rules in many sections at once, listed here out of
// order, and expects every problem back in the order of the schema.
func TestValidateReportsAllInSchemaOrder(t *testing.T) {
	c := validBase()
	c.Routes[0].Pool = "missing"
	c.Pools[0].Backends[1].Weight = 0
	c.Pools[0].Backends[0].Address = "nohost"
	c.Pools = append(c.Pools, Pool{Name: "", Algorithm: "x", Protocol: ProtocolHTTP, HealthCheck: c.Pools[0].HealthCheck, Passive: c.Pools[0].Passive})
	c.RateLimit.MaxClients = 0
	c.Discovery.Consul.Register.Name = ""
	c.Discovery.Consul.Scheme = "ftp"
	c.Sticky.TTL = 0
	c.Retry.Attempts = 0
	c.Global.Limits.MaxHeaderBytes = 0
	c.Global.LogLevel = "loud"
	c.Global.BindAddress = ""
	c.Global.HealthCheck.Fall = 0
	c.Geo.CountryRegions = map[string]string{"de": "eu"}
	c.Geo.CacheSize = -1
	c.Cluster.TombstoneTTL = 0
	c.Cluster.Preset = "moon"
	assertLines(t, c.Validate(), []string{
		"global.bind_address: required",
		`global.log_level: must be one of debug, info, warn, error; got "loud"`,
		"global.health_check.retries: must be >= 1, got 0",
		"global.limits.max_header_bytes: must be >= 1, got 0",
		"retry.attempts: must be between 1 and 10, got 0",
		"sticky.ttl: must be > 0, got 0s",
		"rate_limit.max_clients: must be between 1 and 16777216, got 0",
		`discovery.consul.scheme: must be one of http, https; got "ftp"`,
		"discovery.consul.register.name: required",
		"geo.cache_size: must be between 1 and 10000000, got -1",
		`geo.country_regions["de"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "de"`,
		`cluster.preset: must be one of lan, wan; got "moon"`,
		"cluster.tombstone_ttl: must be > 0, got 0s",
		"pools[0].backends[0].address: missing port",
		"pools[0].backends[1].weight: must be between 1 and 10000, got 0",
		"pools[1].name: required",
		`pools[1].algorithm: must be one of round_robin, weighted, least_conn, ip_hash, random; got "x"`,
		`routes[0].pool: unknown pool "missing"`,
	})
}

func TestErrorsFormat(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"field error", FieldError{Path: "pools[1].backends[0].address", Msg: "missing port"},
			"pools[1].backends[0].address: missing port"},
		{"document error has no path", FieldError{Msg: "not a mapping"}, "not a mapping"},
		{"errors join with newlines", Errors{{Path: "a", Msg: "x"}, {Path: "b.c", Msg: "y"}}, "a: x\nb.c: y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSortErrorsOrder(t *testing.T) {
	in := Errors{
		{Path: "VFX_A", Msg: "env"},
		{Path: "routes[0].pool", Msg: "r"},
		{Path: "zzz", Msg: "unknown top"},
		{Path: "pools[10].name", Msg: "p10"},
		{Path: "pools[2].backends[1].weight", Msg: "w"},
		{Path: "pools[2].name", Msg: "p2"},
		{Path: `global["a.b"]`, Msg: "quoted"},
		{Path: "global.bind_adress", Msg: "unknown"},
		{Path: "global.drain_timeout", Msg: "drain 1"},
		{Path: "global.bind_address", Msg: "b"},
		{Path: "global.drain_timeout", Msg: "drain 2"},
		{Path: "", Msg: "document"},
	}
	sortErrors(in)
	var got []string
	for _, e := range in {
		got = append(got, e.Msg)
	}
	want := []string{"document", "b", "drain 1", "drain 2", "quoted", "unknown", "p2", "w", "p10", "r", "unknown top", "env"}
	if !slices.Equal(got, want) {
		t.Errorf("order:\n  got  %q\n  want %q", got, want)
	}
}

// TestSortErrorsStable: several messages for one key keep the order they were found in, which
// an unstable sort breaks once there are more than a handful.
func TestSortErrorsStable(t *testing.T) {
	var in Errors
	for i := range 40 {
		path := []string{"routes[0].host", "global.bind_address"}[i%2]
		in = append(in, FieldError{Path: path, Msg: strconv.Itoa(i)})
	}
	sortErrors(in)
	var got []string
	for _, e := range in {
		got = append(got, e.Msg)
	}
	var want []string
	for _, start := range []int{1, 0} {
		for i := start; i < 40; i += 2 {
			want = append(want, strconv.Itoa(i))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("order:\n  got  %q\n  want %q", got, want)
	}
}
