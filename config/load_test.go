package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/geo"
	"github.com/veloflux/veloflux/health"
)

// minimal is the smallest useful file; cases append to it.
const minimal = `
pools:
  - name: web
    backends:
      - address: "10.0.0.1:8080"
routes:
  - pool: web
`

func mustParse(t *testing.T, yaml string, environ ...string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml), environ)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, doc := range []string{
		"", "# only a comment\n", "---\n", "~\n", "global:\n", "global: {}\nretry: ~\n",
		"geo: {country_regions: {}, continent_regions: ~, regions: []}\n",
	} {
		t.Run(doc, func(t *testing.T) {
			if got := mustParse(t, doc); !reflect.DeepEqual(got, Default()) {
				t.Errorf("Parse(%q) = %+v, want Default()", doc, got)
			}
		})
	}
}

func TestParseNullKeepsDefault(t *testing.T) {
	c := mustParse(t, "global:\n  bind_address:\n  drain_timeout: ~\n  timeouts:\n")
	if c.Global.BindAddress != "0.0.0.0:80" || c.Global.DrainTimeout != 30*time.Second {
		t.Errorf("null values changed defaults: bind_address %q, drain_timeout %s", c.Global.BindAddress, c.Global.DrainTimeout)
	}
}

func TestParseValues(t *testing.T) {
	c := mustParse(t, `
global:
  bind_address: "127.0.0.1:8000"
  metrics_address: ""
  log_level: WARN
  access_log: false
  drain_timeout: 1m30s
  trusted_proxies: [10.0.0.0/8, 192.168.0.1, "2001:db8::1", "::ffff:172.16.0.0/108", 10.1.2.3/8]
  timeouts:
    read: 0
  limits:
    max_conns_per_backend: 3.0
sticky:
  same_site: Strict
rate_limit:
  requests_per_second: 2.5
  rules:
    - cidr: 10.0.0.7
      exempt: true
discovery:
  consul:
    enabled: true
    address: "consul.service:8501"
    scheme: https
    token_file: /run/secrets/consul-token
    datacenter: dc1
    datacenters: [dc2, dc3]
    tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, server_name: consul.dc1, insecure_skip_verify: true}
    tag_prefix: edge
    exposed_by_default: true
    accept_warning: true
    wait_time: 2m
    coalesce: 0
    min_backoff: 1s
    max_backoff: 1m
    register:
      enabled: false         # it would need the metrics listener this file disables
      name: edge-lb
      id: edge-lb-1
      address: 10.0.0.5
      tags: [edge, "v2"]
      check_interval: 10s
      deregister_critical_after: 5m
geo:
  database: /data/GeoLite2-Country.mmdb
  node_region: eu-central-1
  cache_size: 1000
  response_header: X-VeloFlux-Region
  country_regions:
    DE: eu-central-1
    NO: eu-north-1
    "ON": us-east-1
  continent_regions: {NA: us-east-1, OC: ap-southeast-2}
  regions:
    - name: eu-central-1
      lat: 50.11
      lon: 8
      redirect_host: eu.example.com
    - name: us-east-1
      lat: 39.04
      lon: -77.49
      redirect_host: "[2001:db8::1]:8443"
    - name: ap-southeast-2
      lat: -33.87
      lon: 151.21
pools:
  - name: web
    protocol: https
    tls_skip_verify: true
    backends:
      - address: "10.0.0.1:8080"
      - address: "10.0.0.2:8080"
        weight: 7
        region: us-east-1
  - name: grpc
    protocol: h2c
routes:
  - host: "*.EXAMPLE.com"
    path_prefix: /api
    strip_prefix: true
    pool: web
    geo: nearest
  - host: example.com
    pool: web
    geo: redirect
`)
	tests := []struct {
		name      string
		got, want any
	}{
		{"string", c.Global.BindAddress, "127.0.0.1:8000"},
		{"empty string disables", c.Global.MetricsAddress, ""},
		{"log_level lower-cased", c.Global.LogLevel, "warn"},
		{"bool", c.Global.AccessLog, false},
		{"duration", c.Global.DrainTimeout, 90 * time.Second},
		{"bare zero duration", c.Global.Timeouts.Read, time.Duration(0)},
		{"integral float as int", c.Global.Limits.MaxConnsPerBackend, 3},
		{"trusted proxies: cidr, bare v4, bare v6, mapped v4, host bits cleared", c.Global.TrustedProxies, []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.1/32"),
			netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("172.16.0.0/12"),
			netip.MustParsePrefix("10.0.0.0/8"),
		}},
		{"same_site lower-cased", c.Sticky.SameSite, "strict"},
		{"float", c.RateLimit.RequestsPerSecond, 2.5},
		{"rule bare ip", c.RateLimit.Rules[0].Prefix, netip.MustParsePrefix("10.0.0.7/32")},
		{"rule exempt", c.RateLimit.Rules[0].Exempt, true},
		{"consul section", c.Discovery.Consul, consul.Config{
			Enabled: true, Address: "consul.service:8501", Scheme: "https", TokenFile: "/run/secrets/consul-token",
			Datacenter: "dc1", Datacenters: []string{"dc2", "dc3"},
			TLS:       consul.TLSConfig{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "consul.dc1", InsecureSkipVerify: true},
			TagPrefix: "edge", ExposedByDefault: true, AcceptWarning: true,
			WaitTime: 2 * time.Minute, Coalesce: 0, MinBackoff: time.Second, MaxBackoff: time.Minute,
			Register: consul.RegisterConfig{
				Name: "edge-lb", ID: "edge-lb-1", Address: "10.0.0.5", Tags: []string{"edge", "v2"},
				CheckInterval: 10 * time.Second, DeregisterCriticalAfter: 5 * time.Minute,
			},
		}},
		{"pool protocol https", c.Pools[0].Protocol, ProtocolHTTPS},
		{"pool tls_skip_verify", c.Pools[0].TLSSkipVerify, true},
		{"pool protocol h2c", c.Pools[1].Protocol, ProtocolH2C},
		{"pool tls_skip_verify default", c.Pools[1].TLSSkipVerify, false},
		{"pool algorithm default", c.Pools[0].Algorithm, AlgorithmRoundRobin},
		{"backend weight default", c.Pools[0].Backends[0].Weight, 1},
		{"backend weight written", c.Pools[0].Backends[1].Weight, 7},
		{"route host lower-cased", c.Routes[0].Host, "*.example.com"},
		{"route path_prefix", c.Routes[0].PathPrefix, "/api"},
		{"route strip_prefix", c.Routes[0].StripPrefix, true},
		// NO and ON are YAML 1.1 booleans; the file is YAML 1.2, where they are text.
		{"geo section", c.Geo, geo.Config{
			Database: "/data/GeoLite2-Country.mmdb", NodeRegion: "eu-central-1", CacheSize: 1000,
			ResponseHeader:   "X-VeloFlux-Region",
			CountryRegions:   map[string]string{"DE": "eu-central-1", "NO": "eu-north-1", "ON": "us-east-1"},
			ContinentRegions: map[string]string{"NA": "us-east-1", "OC": "ap-southeast-2"},
			Regions: []geo.Region{
				{Name: "eu-central-1", Lat: 50.11, Lon: 8, RedirectHost: "eu.example.com"},
				{Name: "us-east-1", Lat: 39.04, Lon: -77.49, RedirectHost: "[2001:db8::1]:8443"},
				{Name: "ap-southeast-2", Lat: -33.87, Lon: 151.21},
			},
		}},
		{"backend region written", c.Pools[0].Backends[1].Region, "us-east-1"},
		{"backend region default", c.Pools[0].Backends[0].Region, ""},
		{"route geo nearest", c.Routes[0].Geo, GeoNearest},
		{"route geo redirect", c.Routes[1].Geo, GeoRedirect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func TestParseHealthCheckInheritance(t *testing.T) {
	doc := `
global:
  health_check: {interval: 20s, timeout: 4s, retries: 5, rise: 3, max_interval: 2m, method: HEAD, host: svc.internal, expect_status: "200"}
pools:
  - name: inherits
  - name: overrides-some
    health_check: {interval: 8s, path: /ready, expect_status: "200-299,301"}
  - name: overrides-all
    health_check: {interval: 3s, timeout: 1s, retries: 1, rise: 1, max_interval: 3s, type: tcp, method: GET, host: other.internal, expect_status: "204"}
`
	global := health.Config{
		Interval: 20 * time.Second, Timeout: 4 * time.Second, Fall: 5, Rise: 3, MaxInterval: 2 * time.Minute,
		Type: health.TypeHTTP, Method: "HEAD", Host: "svc.internal", ExpectStatus: "200",
	}
	some := poolHealthCheck(global, "/ready")
	some.Interval, some.ExpectStatus = 8*time.Second, "200-299,301"
	all := PoolHealthCheck{Config: health.Config{
		Interval: 3 * time.Second, Timeout: time.Second, Fall: 1, Rise: 1, MaxInterval: 3 * time.Second,
		Type: health.TypeTCP, Method: "GET", Host: "other.internal", ExpectStatus: "204",
	}}
	fromEnv := global
	fromEnv.Fall, fromEnv.Timeout, fromEnv.Type, fromEnv.ExpectStatus = 9, 2*time.Second, health.TypeTCP, "200-204"
	someEnv := poolHealthCheck(fromEnv, "/ready")
	someEnv.Interval, someEnv.ExpectStatus = 8*time.Second, "200-299,301"
	tests := []struct {
		name    string
		doc     string
		environ []string
		want    []PoolHealthCheck
	}{
		{"from file", doc, nil, []PoolHealthCheck{poolHealthCheck(global, ""), some, all}},
		{"environment overrides global before pools inherit", strings.Replace(doc, "path: /ready, ", "", 1), []string{
			"VFX_GLOBAL__HEALTH_CHECK__RETRIES=9", "VFX_GLOBAL__HEALTH_CHECK__TIMEOUT=2s",
			"VFX_GLOBAL__HEALTH_CHECK__TYPE=tcp", "VFX_GLOBAL__HEALTH_CHECK__EXPECT_STATUS=200-204",
		}, []PoolHealthCheck{poolHealthCheck(fromEnv, ""), func() PoolHealthCheck { h := someEnv; h.Path = ""; return h }(), all}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.doc, tt.environ...)
			var got []PoolHealthCheck
			for _, p := range c.Pools {
				got = append(got, p.HealthCheck)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("pool health checks:\n  got  %+v\n  want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePassiveInheritance(t *testing.T) {
	doc := `
global:
  passive: {consecutive_failures: 3, ejection_time: 10s, max_ejection_time: 1m, max_ejection_percent: 30}
pools:
  - name: inherits
  - name: overrides-some
    passive: {consecutive_failures: 0}
  - name: overrides-all
    passive: {consecutive_failures: 7, ejection_time: 1s, max_ejection_time: 2s, max_ejection_percent: 100}
`
	global := health.PassiveConfig{ConsecutiveFailures: 3, EjectionTime: 10 * time.Second, MaxEjectionTime: time.Minute, MaxEjectionPercent: 30}
	off := global
	off.ConsecutiveFailures = 0
	all := health.PassiveConfig{ConsecutiveFailures: 7, EjectionTime: time.Second, MaxEjectionTime: 2 * time.Second, MaxEjectionPercent: 100}
	envGlobal := global
	envGlobal.MaxEjectionPercent, envGlobal.EjectionTime = 10, 20*time.Second
	envOff := envGlobal
	envOff.ConsecutiveFailures = 0
	tests := []struct {
		name    string
		environ []string
		want    []health.PassiveConfig
	}{
		{"from file", nil, []health.PassiveConfig{global, off, all}},
		{"environment overrides global before pools inherit", []string{
			"VFX_GLOBAL__PASSIVE__MAX_EJECTION_PERCENT=10", "VFX_GLOBAL__PASSIVE__EJECTION_TIME=20s",
		}, []health.PassiveConfig{envGlobal, envOff, all}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, doc, tt.environ...)
			var got []health.PassiveConfig
			for _, p := range c.Pools {
				got = append(got, p.Passive)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("pool passive settings:\n  got  %+v\n  want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMaxConnsPerBackendInheritance(t *testing.T) {
	doc := `
global:
  limits: {max_conns_per_backend: 100}
pools:
  - name: inherits
  - name: zero-inherits
    max_conns_per_backend: 0
  - name: overrides
    max_conns_per_backend: 7
`
	tests := []struct {
		name    string
		environ []string
		want    []int
	}{
		{"from file", nil, []int{100, 100, 7}},
		{"environment overrides global before pools inherit", []string{"VFX_GLOBAL__LIMITS__MAX_CONNS_PER_BACKEND=50"}, []int{50, 50, 7}},
		{"no global cap", []string{"VFX_GLOBAL__LIMITS__MAX_CONNS_PER_BACKEND=0"}, []int{0, 0, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, doc, tt.environ...)
			var got []int
			for _, p := range c.Pools {
				got = append(got, p.MaxConnsPerBackend)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("pool caps %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseInheritedMaxIntervalBelowOverriddenInterval(t *testing.T) {
	_, err := Parse([]byte("pools:\n  - name: p\n    health_check: {interval: 2m, timeout: 5s}\n"), nil)
	assertLines(t, err, []string{"pools[0].health_check.max_interval: must be at least interval (2m0s), got 1m0s"})
}

func TestParseInheritedTypeTCPRefusesPath(t *testing.T) {
	_, err := Parse([]byte("global:\n  health_check: {type: tcp}\npools:\n  - name: p\n    health_check: {path: /health}\n    backends: [{address: \"10.0.0.1:80\", health_check: {path: /h}}]\n"), nil)
	assertLines(t, err, []string{
		"pools[0].health_check.path: only applies to type http, got type tcp (a tcp check opens a connection and checks every backend)",
		"pools[0].backends[0].health_check.path: only applies to type http, got the pool's type tcp",
	})
}

func TestParseInheritedTimeoutAboveOverriddenInterval(t *testing.T) {
	_, err := Parse([]byte("pools:\n  - name: p\n    health_check: {interval: 2s}\n"), nil)
	assertLines(t, err, []string{"pools[0].health_check.timeout: must not exceed interval (2s), got 5s"})
}

func TestParseListsReplaceDefaults(t *testing.T) {
	c := mustParse(t, "global:\n  trusted_proxies: [10.0.0.1]\n")
	c2 := mustParse(t, "global:\n  trusted_proxies: []\n")
	if len(c.Global.TrustedProxies) != 1 || len(c2.Global.TrustedProxies) != 0 {
		t.Errorf("trusted_proxies = %v and %v, want one entry and none", c.Global.TrustedProxies, c2.Global.TrustedProxies)
	}
}

func TestParseUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"misspelled global key", "global:\n  bind_adress: x\n",
			[]string{"global.bind_adress: unknown key"}},
		{"unknown section", "globals:\n  bind_address: x\n",
			[]string{"globals: unknown key"}},
		{"key inside list item", "pools:\n  - name: web\n    backend: []\n",
			[]string{"pools[0].backend: unknown key"}},
		{"deep key", "pools:\n  - name: web\n    backends:\n      - address: a:1\n      - address: b:1\n        health_check: {paht: /x}\n",
			[]string{"pools[0].backends[1].health_check.paht: unknown key"}},
		{"several, in schema order", "sticky: {cookie: x}\nglobal: {tls: {cert: x}, zz: 1, aa: 2}\nroutes: [{hots: a}]\n",
			[]string{
				"global.tls.cert: unknown key", "global.aa: unknown key", "global.zz: unknown key",
				"sticky.cookie: unknown key", "routes[0].pool: required", "routes[0].hots: unknown key",
			}},
		{"unknown key reported with validation errors", "rate_limit:\n  rules:\n    - cdir: 10.0.0.0/8\n      exempt: true\n",
			[]string{"rate_limit.rules[0].cidr: required", "rate_limit.rules[0].cdir: unknown key"}},
		{"misspelled consul key", "discovery:\n  consul:\n    adress: consul:8500\n    register: {tag: [x]}\n",
			// Unknown keys come after the known keys of their section, register among them.
			[]string{"discovery.consul.register.tag: unknown key", "discovery.consul.adress: unknown key"}},
		{"unknown discovery source", "discovery:\n  etcd: {}\n",
			[]string{"discovery.etcd: unknown key"}},
		{"dotted key is not a shortcut", "global.bind_address: \":1\"\n",
			[]string{`["global.bind_address"]: unknown key`}},
		{"non-string key", "global:\n  1: x\n",
			[]string{"global.1: unknown key"}},
		{"misspelled geo keys", "geo:\n  databse: /x.mmdb\n  regions: [{name: eu, lat: 1, lon: 2, latitude: 3}]\n",
			[]string{"geo.regions[0].latitude: unknown key", "geo.databse: unknown key"}},
		{"misspelled route geo", "pools: [{name: p, backends: [{address: a:1, regoin: eu}]}]\nroutes: [{pool: p, goe: nearest}]\n",
			[]string{"pools[0].backends[0].regoin: unknown key", "routes[0].goe: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), nil)
			if c != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			assertLines(t, err, tt.want)
		})
	}
}

func TestParseTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"duration text", "global:\n  drain_timeout: abc\n",
			[]string{`global.drain_timeout: invalid duration "abc"`}},
		{"duration without unit", "global:\n  drain_timeout: 30\n",
			[]string{`global.drain_timeout: invalid duration 30: missing unit, e.g. "30s"`}},
		{"duration list", "retry:\n  timeout: [1]\n",
			[]string{`retry.timeout: invalid duration: expected text such as "10s", got a list`}},
		{"bool as yes", "global:\n  access_log: yes\n",
			[]string{`global.access_log: expected true or false, got text "yes"`}},
		{"int as text", "retry:\n  attempts: \"3\"\n",
			[]string{`retry.attempts: expected an integer, got text "3"`}},
		{"int as fraction", "retry:\n  attempts: 2.5\n",
			[]string{`retry.attempts: expected an integer, got number 2.5`}},
		{"int overflow", "global:\n  limits:\n    max_header_bytes: 18446744073709551615\n",
			[]string{`global.limits.max_header_bytes: integer 18446744073709551615 out of range`}},
		{"float as text", "rate_limit:\n  requests_per_second: fast\n",
			[]string{`rate_limit.requests_per_second: expected a number, got text "fast"`}},
		{"string as int", "global:\n  bind_address: 8080\n",
			[]string{`global.bind_address: expected a string, got integer 8080 (quote the value to make it text)`}},
		{"string as timestamp", "global:\n  tls:\n    cert_file: 2001-12-14\n",
			[]string{`global.tls.cert_file: expected a string, got timestamp 2001-12-14T00:00:00Z (quote the value to make it text)`}},
		// A mistyped secret is still the secret: its value must not reach the message.
		{"secret as timestamp is not echoed", "sticky:\n  secret: 2001-12-14\n",
			[]string{`sticky.secret: expected a string, got a timestamp (quote the value to make it text; the value is not shown because the key is secret)`}},
		{"consul token as number is not echoed", "discovery:\n  consul:\n    token: 12e3\n",
			[]string{`discovery.consul.token: expected a string, got a number (quote the value to make it text; the value is not shown because the key is secret)`}},
		{"consul token as integer is not echoed", "discovery:\n  consul:\n    token: 61253123\n",
			[]string{`discovery.consul.token: expected a string, got an integer (quote the value to make it text; the value is not shown because the key is secret)`}},
		{"consul token as mapping", "discovery:\n  consul:\n    token: {a: b}\n",
			[]string{`discovery.consul.token: expected a string, got a mapping (quote the value to make it text; the value is not shown because the key is secret)`}},
		{"consul datacenters as text", "discovery:\n  consul:\n    datacenters: dc2\n",
			[]string{`discovery.consul.datacenters: expected a list, got text "dc2"`}},
		{"consul wait_time without unit", "discovery:\n  consul:\n    wait_time: 300\n",
			[]string{`discovery.consul.wait_time: invalid duration 300: missing unit, e.g. "300s"`}},
		{"pool tls_skip_verify as text", "pools:\n  - name: web\n    protocol: https\n    tls_skip_verify: \"yes\"\n",
			[]string{`pools[0].tls_skip_verify: expected true or false, got text "yes"`}},
		{"list as text", "global:\n  trusted_proxies: 10.0.0.0/8\n",
			[]string{`global.trusted_proxies: expected a list, got text "10.0.0.0/8"`}},
		{"bad cidr", "global:\n  trusted_proxies: [10.0.0.0/33, nope, \"fe80::1%eth0\"]\n",
			[]string{
				`global.trusted_proxies[0]: invalid CIDR or IP address "10.0.0.0/33"`,
				`global.trusted_proxies[1]: invalid CIDR or IP address "nope"`,
				`global.trusted_proxies[2]: invalid CIDR or IP address "fe80::1%eth0"`,
			}},
		{"cidr as number", "rate_limit:\n  rules: [{cidr: 10, exempt: true}]\n",
			[]string{`rate_limit.rules[0].cidr: expected a CIDR or IP address, got integer 10`}},
		{"section as scalar", "global: 5\n",
			[]string{"global: expected a mapping, got integer 5"}},
		{"list as mapping", "pools:\n  name: web\n",
			[]string{"pools: expected a list, got a mapping"}},
		{"empty list item", "pools:\n  -\n",
			[]string{"pools[0]: empty list item"}},
		{"list item as scalar", "routes: [web]\n",
			[]string{`routes[0]: expected a mapping, got text "web"`}},
		{"document not a mapping", "- global\n",
			[]string{"the file must be a mapping of sections such as global: and pools:, got a list"}},
		{"long value is shortened", "sticky:\n  ttl: " + strings.Repeat("x", 100) + "\n",
			[]string{`sticky.ttl: invalid duration "` + strings.Repeat("x", 64) + `"...`}},
		// A value that failed to decode keeps its default; the rule it would then break must
		// not be reported on top of the real problem.
		{"no validation error under a decode error", "pools:\n  - name: web\n    backends:\n      - address: 8080\n",
			[]string{"pools[0].backends[0].address: expected a string, got integer 8080 (quote the value to make it text)"}},
		{"no validation errors under a bad list item", "pools:\n  - name: web\n    backends:\n      - 10.0.0.1:80\n",
			[]string{`pools[0].backends[0]: expected a mapping, got text "10.0.0.1:80"`}},
		{"route pool type error alone", "routes:\n  - pool: 5\n",
			[]string{`routes[0].pool: expected a string, got integer 5 (quote the value to make it text)`}},
		{"route geo as boolean", "pools: [{name: p}]\nroutes:\n  - pool: p\n    geo: false\n",
			[]string{`routes[0].geo: expected a string, got boolean false (quote the value to make it text)`}},
		{"geo mapping as list", "geo:\n  country_regions: [DE]\n",
			[]string{"geo.country_regions: expected a mapping, got a list"}},
		{"geo mapping as text", "geo:\n  continent_regions: EU\n",
			[]string{`geo.continent_regions: expected a mapping, got text "EU"`}},
		// The entry that failed to decode is left out, so only its decode error is reported;
		// the valid entries are still checked.
		{"geo mapping value types", "geo:\n  country_regions:\n    DE: 5\n    FR: [a]\n    at: eu\n",
			[]string{
				`geo.country_regions["DE"]: expected a string, got integer 5 (quote the value to make it text)`,
				`geo.country_regions["FR"]: expected a string, got a list (quote the value to make it text)`,
				`geo.country_regions["at"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "at"`,
			}},
		{"geo mapping value missing", "geo:\n  country_regions:\n    DE:\n    FR: ~\n",
			[]string{`geo.country_regions["DE"]: missing value`, `geo.country_regions["FR"]: missing value`}},
		{"geo mapping non-string key", "geo:\n  continent_regions: {1: eu}\n",
			[]string{`geo.continent_regions["1"]: continent code must be one of AF, AN, AS, EU, NA, OC, SA, got "1"`}},
		{"geo mapping key with a dot", "geo:\n  country_regions: {\"D.E\": eu}\n",
			[]string{`geo.country_regions["D.E"]: country code must be two upper-case letters (ISO 3166-1 alpha-2, e.g. "DE"), got "D.E"`}},
		{"geo cache_size as text", "geo:\n  cache_size: big\n",
			[]string{`geo.cache_size: expected an integer, got text "big"`}},
		{"geo latitude as text", "geo:\n  regions: [{name: eu, lat: \"50.1N\", lon: 8}]\n",
			[]string{`geo.regions[0].lat: expected a number, got text "50.1N"`}},
		{"geo regions as mapping", "geo:\n  regions: {eu: {lat: 1, lon: 2}}\n",
			[]string{"geo.regions: expected a list, got a mapping"}},
		{"geo region as text", "geo:\n  regions: [eu-central-1]\n",
			[]string{`geo.regions[0]: expected a mapping, got text "eu-central-1"`}},
		{"backend region as number", "pools: [{name: p, backends: [{address: a:1, region: 1}]}]\n",
			[]string{`pools[0].backends[0].region: expected a string, got integer 1 (quote the value to make it text)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			assertLines(t, err, tt.want)
		})
	}
}

// TestParseGeoCoordinatesRequired: Validate cannot tell a written 0 from a missing key, so
// Parse insists that each region writes both coordinates.
func TestParseGeoCoordinatesRequired(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"both missing", "geo:\n  regions:\n    - name: eu\n      redirect_host: eu.example.com\n",
			[]string{"geo.regions[0].lat: required", "geo.regions[0].lon: required"}},
		{"lon missing in the second region", "geo:\n  regions: [{name: eu, lat: 1, lon: 2}, {name: us, lat: 3}]\n",
			[]string{"geo.regions[1].lon: required"}},
		{"null is missing", "geo:\n  regions: [{name: eu, lat: ~, lon: 0}]\n",
			[]string{"geo.regions[0].lat: required"}},
		{"zero written is fine", "geo:\n  regions: [{name: null-island, lat: 0, lon: 0.0}]\n", nil},
		{"with validation errors, in schema order", "geo:\n  regions: [{name: EU, lon: 200}]\n",
			[]string{
				`geo.regions[0].name: invalid region name "EU": use lower-case letters, digits, ".", "_" and "-" only`,
				"geo.regions[0].lat: required",
				"geo.regions[0].lon: must be between -180 and 180 degrees, got 200",
			}},
		{"not repeated under a bad entry", "geo:\n  regions: [eu, ~]\n",
			[]string{`geo.regions[0]: expected a mapping, got text "eu"`, "geo.regions[1]: empty list item"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			assertLines(t, err, tt.want)
		})
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"syntax", "global:\n  bind_address: [\n", "parse YAML: yaml: line"},
		{"duplicate key", "retry:\n  attempts: 1\n  attempts: 2\n", `mapping key "attempts" already defined`},
		{"second document", "retry:\n  attempts: 1\n---\nretry:\n  attempts: 2\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), nil)
			if err == nil || c != nil {
				t.Fatalf("Parse = %v, %v; want an error", c, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	t.Run("empty trailing document is fine", func(t *testing.T) {
		mustParse(t, "retry:\n  attempts: 1\n---\n")
	})
}

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		environ []string
		check   func(c *Config) (got, want any)
	}{
		{"VFX_LOG_LEVEL", "", []string{"VFX_LOG_LEVEL=DEBUG"},
			func(c *Config) (any, any) { return c.Global.LogLevel, "debug" }},
		{"VFX_STICKY_SECRET", "", []string{"VFX_STICKY_SECRET=" + strings.Repeat("k", 40)},
			func(c *Config) (any, any) { return c.Sticky.Secret, strings.Repeat("k", 40) }},
		{"VFX_CONSUL_TOKEN", "", []string{"VFX_CONSUL_TOKEN=6a1253d2-1785-24fd-91c2-f8e78c745511"},
			func(c *Config) (any, any) { return c.Discovery.Consul.Token, "6a1253d2-1785-24fd-91c2-f8e78c745511" }},
		{"VFX_CONSUL_TOKEN wins over the generic form", "", []string{
			"VFX_CONSUL_TOKEN=short-form", "VFX_DISCOVERY__CONSUL__TOKEN=generic-form",
		}, func(c *Config) (any, any) { return c.Discovery.Consul.Token, "short-form" }},
		{"VFX_CONSUL_TOKEN overrides file", "discovery:\n  consul:\n    token: from-file\n", []string{"VFX_CONSUL_TOKEN=from-env"},
			func(c *Config) (any, any) { return c.Discovery.Consul.Token, "from-env" }},
		{"consul nested key", "", []string{"VFX_DISCOVERY__CONSUL__REGISTER__CHECK_INTERVAL=15s"},
			func(c *Config) (any, any) { return c.Discovery.Consul.Register.CheckInterval, 15 * time.Second }},
		{"consul tls key", "", []string{"VFX_DISCOVERY__CONSUL__TLS__INSECURE_SKIP_VERIFY=true"},
			func(c *Config) (any, any) { return c.Discovery.Consul.TLS.InsecureSkipVerify, true }},
		{"consul datacenters comma-separated", "", []string{"VFX_DISCOVERY__CONSUL__DATACENTERS=dc2, dc3"},
			func(c *Config) (any, any) { return c.Discovery.Consul.Datacenters, []string{"dc2", "dc3"} }},
		{"consul register tags comma-separated", "", []string{"VFX_DISCOVERY__CONSUL__REGISTER__TAGS=edge,v2"},
			func(c *Config) (any, any) { return c.Discovery.Consul.Register.Tags, []string{"edge", "v2"} }},
		{"generic string overrides file", "global:\n  bind_address: \":81\"\n", []string{"VFX_GLOBAL__BIND_ADDRESS=:82"},
			func(c *Config) (any, any) { return c.Global.BindAddress, ":82" }},
		{"empty value disables", "", []string{"VFX_GLOBAL__ADMIN_ADDRESS="},
			func(c *Config) (any, any) { return c.Global.AdminAddress, "" }},
		{"nested duration", "", []string{"VFX_GLOBAL__TIMEOUTS__IDLE=30s"},
			func(c *Config) (any, any) { return c.Global.Timeouts.Idle, 30 * time.Second }},
		{"float", "", []string{"VFX_RATE_LIMIT__REQUESTS_PER_SECOND=50"},
			func(c *Config) (any, any) { return c.RateLimit.RequestsPerSecond, 50.0 }},
		{"int", "", []string{"VFX_RETRY__ATTEMPTS= 4 "},
			func(c *Config) (any, any) { return c.Retry.Attempts, 4 }},
		{"bool", "", []string{"VFX_GLOBAL__ACCESS_LOG=false"},
			func(c *Config) (any, any) { return c.Global.AccessLog, false }},
		{"trusted proxies comma-separated", "", []string{"VFX_GLOBAL__TRUSTED_PROXIES=10.0.0.0/8, 192.168.0.1,"},
			func(c *Config) (any, any) {
				return c.Global.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.1/32")}
			}},
		{"trusted proxies emptied", "global:\n  trusted_proxies: [10.0.0.1]\n", []string{"VFX_GLOBAL__TRUSTED_PROXIES="},
			func(c *Config) (any, any) { return len(c.Global.TrustedProxies), 0 }},
		{"lower-case variable name", "", []string{"VFX_global__drain_timeout=5s"},
			func(c *Config) (any, any) { return c.Global.DrainTimeout, 5 * time.Second }},
		{"alias wins when listed first", "", []string{"VFX_LOG_LEVEL=warn", "VFX_GLOBAL__LOG_LEVEL=debug"},
			func(c *Config) (any, any) { return c.Global.LogLevel, "warn" }},
		{"alias wins when listed last", "", []string{"VFX_GLOBAL__LOG_LEVEL=debug", "VFX_LOG_LEVEL=warn"},
			func(c *Config) (any, any) { return c.Global.LogLevel, "warn" }},
		{"last duplicate wins", "", []string{"VFX_RETRY__ATTEMPTS=3", "VFX_RETRY__ATTEMPTS=5"},
			func(c *Config) (any, any) { return c.Retry.Attempts, 5 }},
		{"geo database", "", []string{"VFX_GEO__DATABASE=/data/GeoLite2-City.mmdb", "VFX_GEO__NODE_REGION=eu-west-1"},
			func(c *Config) (any, any) { return c.Geo.Database, "/data/GeoLite2-City.mmdb" }},
		{"geo cache_size", "", []string{"VFX_GEO__CACHE_SIZE=1000"},
			func(c *Config) (any, any) { return c.Geo.CacheSize, 1000 }},
		{"geo node_region and header keep their case", "", []string{"VFX_GEO__NODE_REGION=eu-central-1", "VFX_GEO__RESPONSE_HEADER=X-Region"},
			func(c *Config) (any, any) {
				return []string{c.Geo.NodeRegion, c.Geo.ResponseHeader}, []string{"eu-central-1", "X-Region"}
			}},
		{"VFX_CONFIG and other variables are not keys", "", []string{
			"VFX_CONFIG=/tmp/x.yaml", "PATH=/bin", "VF_ADMIN_USER=admin", "VF_ADMIN_PASS=pw", "VFXNOPE=1", "NOEQUALS",
		}, func(c *Config) (any, any) { return c, Default() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.check(mustParse(t, tt.yaml, tt.environ...))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestParseEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"unknown key", []string{"VFX_GLOBAL__BIND_ADRESS=:80"},
			[]string{`VFX_GLOBAL__BIND_ADRESS: unknown key "global.bind_adress"`}},
		{"single underscore is not nesting", []string{"VFX_GLOBAL_BIND_ADDRESS=:80"},
			[]string{`VFX_GLOBAL_BIND_ADDRESS: unknown key "global_bind_address"`}},
		{"below a leaf", []string{"VFX_GLOBAL__BIND_ADDRESS__PORT=80"},
			[]string{`VFX_GLOBAL__BIND_ADDRESS__PORT: unknown key "global.bind_address.port"`}},
		{"prefix alone", []string{"VFX_=1"},
			[]string{`VFX_: unknown key ""`}},
		{"section", []string{"VFX_GLOBAL__TLS=on"},
			[]string{"VFX_GLOBAL__TLS: global.tls is a section, not a key; set one of its keys, e.g. VFX_GLOBAL__TLS__<KEY>"}},
		{"pools list", []string{"VFX_POOLS=web"},
			[]string{"VFX_POOLS: pools is a list of sections, which cannot be set from the environment"}},
		{"pool entry", []string{"VFX_POOLS__0__NAME=web"},
			[]string{"VFX_POOLS__0__NAME: pools is a list of sections, which cannot be set from the environment"}},
		{"rate limit rules", []string{"VFX_RATE_LIMIT__RULES=10.0.0.0/8"},
			[]string{"VFX_RATE_LIMIT__RULES: rate_limit.rules is a list of sections, which cannot be set from the environment"}},
		{"bad duration names the variable", []string{"VFX_GLOBAL__DRAIN_TIMEOUT=abc"},
			[]string{`global.drain_timeout: invalid duration "abc" (from VFX_GLOBAL__DRAIN_TIMEOUT)`}},
		{"bad bool", []string{"VFX_STICKY__SECURE=maybe"},
			[]string{`sticky.secure: expected true or false, got "maybe" (from VFX_STICKY__SECURE)`}},
		{"bad int", []string{"VFX_RETRY__ATTEMPTS=2.0"},
			[]string{`retry.attempts: expected an integer, got "2.0" (from VFX_RETRY__ATTEMPTS)`}},
		{"bad float", []string{"VFX_RATE_LIMIT__BURST=1", "VFX_RATE_LIMIT__REQUESTS_PER_SECOND=lots"},
			[]string{`rate_limit.requests_per_second: expected a number, got "lots" (from VFX_RATE_LIMIT__REQUESTS_PER_SECOND)`}},
		{"bad trusted proxy", []string{"VFX_GLOBAL__TRUSTED_PROXIES=10.0.0.0/8,bogus"},
			[]string{`global.trusted_proxies[1]: invalid CIDR or IP address "bogus" (from VFX_GLOBAL__TRUSTED_PROXIES)`}},
		{"consul section", []string{"VFX_DISCOVERY__CONSUL=on"},
			[]string{"VFX_DISCOVERY__CONSUL: discovery.consul is a section, not a key; set one of its keys, e.g. VFX_DISCOVERY__CONSUL__<KEY>"}},
		{"consul token and token_file from two sources", []string{"VFX_CONSUL_TOKEN=t", "VFX_DISCOVERY__CONSUL__TOKEN_FILE=/run/t"},
			[]string{"discovery.consul.token_file: set either token or token_file, not both"}},
		{"geo regions list", []string{"VFX_GEO__REGIONS=eu"},
			[]string{"VFX_GEO__REGIONS: geo.regions is a list of sections, which cannot be set from the environment"}},
		{"geo mapping", []string{"VFX_GEO__COUNTRY_REGIONS=DE=eu"},
			[]string{"VFX_GEO__COUNTRY_REGIONS: geo.country_regions is a mapping, which cannot be set from the environment; write it in the file"}},
		{"geo mapping entry", []string{"VFX_GEO__CONTINENT_REGIONS__EU=eu"},
			[]string{"VFX_GEO__CONTINENT_REGIONS__EU: geo.continent_regions is a mapping, which cannot be set from the environment; write it in the file"}},
		{"geo section", []string{"VFX_GEO=on"},
			[]string{"VFX_GEO: geo is a section, not a key; set one of its keys, e.g. VFX_GEO__<KEY>"}},
		{"bad geo cache_size", []string{"VFX_GEO__CACHE_SIZE=64k"},
			[]string{`geo.cache_size: expected an integer, got "64k" (from VFX_GEO__CACHE_SIZE)`}},
		{"geo value breaking a rule", []string{"VFX_GEO__NODE_REGION=EU"},
			[]string{`geo.node_region: invalid region name "EU": use lower-case letters, digits, ".", "_" and "-" only`}},
		{"bad consul duration", []string{"VFX_DISCOVERY__CONSUL__COALESCE=soon"},
			[]string{`discovery.consul.coalesce: invalid duration "soon" (from VFX_DISCOVERY__CONSUL__COALESCE)`}},
		{"value breaking a rule", []string{"VFX_RETRY__ATTEMPTS=0"},
			[]string{"retry.attempts: must be between 1 and 10, got 0"}},
		{"short secret with sticky pool", []string{"VFX_STICKY_SECRET=short"},
			[]string{"sticky.secret: must be at least 32 bytes when a pool has sticky_sessions, got 5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("pools: [{name: web, sticky_sessions: true}]\n"), tt.environ)
			assertLines(t, err, tt.want)
		})
	}
}

// TestParseAllErrorsAtOnce is what `veloflux validate` relies on: one call reports unknown
// keys, type errors, rule violations and bad environment variables together, in schema order.
func TestParseAllErrorsAtOnce(t *testing.T) {
	doc := `
routes:
  - host: "*"
    pool: nope
  - host: example.com
    pool: web
  - host: EXAMPLE.COM
    pool: web
pools:
  - name: web
    algoritm: weighted
    backends:
      - address: "10.0.0.1"
      - address: "10.0.0.2:80"
        weight: 0
  - name: web
rate_limit:
  requests_per_second: -1
sticky:
  same_site: none
retry:
  attempts: many
global:
  bind_adress: ":80"
  drain_timeout: abc
  health_check:
    timeout: 30s
`
	_, err := Parse([]byte(doc), []string{"VFX_GLOBAL__NOPE=1", "VFX_GLOBAL__ACCESS_LOG=sometimes"})
	assertLines(t, err, []string{
		"global.access_log: expected true or false, got \"sometimes\" (from VFX_GLOBAL__ACCESS_LOG)",
		`global.drain_timeout: invalid duration "abc"`,
		"global.health_check.timeout: must not exceed interval (10s), got 30s",
		"global.bind_adress: unknown key",
		`retry.attempts: expected an integer, got text "many"`,
		`sticky.same_site: "none" requires sticky.secure: true (browsers drop SameSite=None cookies that are not Secure)`,
		"rate_limit.requests_per_second: must be a finite number >= 0, got -1",
		"pools[0].health_check.timeout: must not exceed interval (10s), got 30s",
		"pools[0].backends[0].address: missing port",
		"pools[0].backends[1].weight: must be between 1 and 10000, got 0",
		"pools[0].algoritm: unknown key",
		`pools[1].name: duplicate pool name "web", also used by pools[0]`,
		"pools[1].health_check.timeout: must not exceed interval (10s), got 30s",
		`routes[0].host: "*" is not a host; use "" for the default route`,
		`routes[0].pool: unknown pool "nope"`,
		"routes[2]: same host and path_prefix as routes[1]; the second route could never match",
		`VFX_GLOBAL__NOPE: unknown key "global.nope"`,
	})
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("valid file with environment", func(t *testing.T) {
		c, err := Load(write("ok.yaml", minimal), []string{"VFX_RETRY__ATTEMPTS=3"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Pools[0].Name != "web" || c.Retry.Attempts != 3 {
			t.Errorf("got pools %+v, attempts %d", c.Pools, c.Retry.Attempts)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "absent.yaml")
		_, err := Load(p, nil)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
		}
		if !strings.Contains(err.Error(), "config file "+p+" does not exist") {
			t.Errorf("error %q does not say which file is missing", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := Load(dir, nil); err == nil || !strings.Contains(err.Error(), "read config file") {
			t.Errorf("Load(dir) error = %v", err)
		}
	})
	t.Run("invalid file lists every problem", func(t *testing.T) {
		p := write("bad.yaml", "global:\n  drain_timeout: abc\nretry:\n  attempts: 0\n")
		_, err := Load(p, nil)
		want := "config file " + p + " has 2 problem(s):\n" +
			"global.drain_timeout: invalid duration \"abc\"\n" +
			"retry.attempts: must be between 1 and 10, got 0"
		if err == nil || err.Error() != want {
			t.Fatalf("error:\n%v\nwant:\n%s", err, want)
		}
		assertLines(t, err, []string{`global.drain_timeout: invalid duration "abc"`, "retry.attempts: must be between 1 and 10, got 0"})
	})
	t.Run("syntax error names the file", func(t *testing.T) {
		p := write("syntax.yaml", "global: [\n")
		if _, err := Load(p, nil); err == nil || !strings.HasPrefix(err.Error(), "config file "+p+": parse YAML") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestSeedLoads(t *testing.T) {
	c, err := Load("testdata/seed.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"pool count", len(c.Pools), 3},
		{"route count", len(c.Routes), 5},
		{"ipv6 backend", c.Pools[0].Backends[2].Address, "[2001:db8::10]:8080"},
		{"default weight", c.Pools[0].Backends[2].Weight, 1},
		{"written weight", c.Pools[0].Backends[0].Weight, 100},
		{"backend health path", c.Pools[0].Backends[0].HealthCheck.Path, "/health"},
		{"pool health check merged with global", c.Pools[1].HealthCheck,
			func() PoolHealthCheck {
				h := poolHealthCheck(Default().Global.HealthCheck, "/ready")
				h.Interval, h.Timeout = 5*time.Second, 2*time.Second
				return h
			}()},
		{"pool passive from global", c.Pools[1].Passive, Default().Global.Passive},
		{"pool health check written in full", c.Pools[0].HealthCheck, PoolHealthCheck{Config: health.Config{
			Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 3, Rise: 3, MaxInterval: 30 * time.Second,
			Type: health.TypeHTTP, Method: "HEAD", Host: "www.example.com", ExpectStatus: "200-299,301",
		}, Path: "/health"}},
		{"pool passive written in full", c.Pools[0].Passive, health.PassiveConfig{
			ConsecutiveFailures: 3, EjectionTime: 10 * time.Second, MaxEjectionTime: 2 * time.Minute, MaxEjectionPercent: 34,
		}},
		{"sticky pool with empty secret", c.Pools[1].StickySessions && c.Sticky.Secret == "", true},
		{"empty pool", len(c.Pools[2].Backends), 0},
		{"host lower-cased", c.Routes[0].Host, "example.com"},
		{"trusted bare ip", c.Global.TrustedProxies[1], netip.MustParsePrefix("192.168.1.10/32")},
		{"exempt rule", c.RateLimit.Rules[1].Exempt, true},
		{"consul disabled", c.Discovery.Consul.Enabled, false},
		{"consul datacenters", c.Discovery.Consul.Datacenters, []string{"dc2"}},
		{"consul register tags", c.Discovery.Consul.Register.Tags, []string{"edge"}},
		{"pool protocols", []string{c.Pools[0].Protocol, c.Pools[1].Protocol, c.Pools[2].Protocol},
			[]string{ProtocolHTTP, ProtocolHTTPS, ProtocolH2C}},
		{"https pool skips verification", c.Pools[1].TLSSkipVerify, true},
		{"geo node region", c.Geo.NodeRegion, "eu-central-1"},
		{"geo database empty without geo routes", c.Geo.Database, ""},
		{"geo country regions, Norway as text", c.Geo.CountryRegions,
			map[string]string{"DE": "eu-central-1", "NO": "eu-central-1", "US": "us-east-1"}},
		{"geo continent regions", c.Geo.ContinentRegions, map[string]string{"EU": "eu-central-1", "NA": "us-east-1"}},
		{"geo regions", len(c.Geo.Regions), 3},
		{"geo redirect host with port", c.Geo.Regions[1].RedirectHost, "us.example.com:8443"},
		{"geo region without redirect", c.Geo.Regions[2], geo.Region{Name: "ap.sydney_1", Lat: -33.87, Lon: 151}},
		{"backend regions", []string{c.Pools[0].Backends[0].Region, c.Pools[0].Backends[1].Region}, []string{"", "us-east-1"}},
		{"route geo written and default", []string{c.Routes[1].Geo, c.Routes[0].Geo}, []string{GeoOff, GeoOff}},
		{"cluster disabled", c.Cluster.Enabled, false},
		{"cluster name", c.Cluster.Name, "edge-1"},
		{"cluster seeds", c.Cluster.Seeds, []string{"10.0.0.6:7946", "edge-3.internal:7946"}},
		{"cluster at defaults otherwise", func() Cluster {
			cl := c.Cluster
			cl.Name, cl.Seeds = "", nil
			return cl
		}(), Default().Cluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func BenchmarkParseSeed(b *testing.B) {
	data, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		b.Fatal(err)
	}
	environ := []string{"VFX_LOG_LEVEL=debug", "VFX_GLOBAL__TIMEOUTS__IDLE=30s", "PATH=/bin"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, environ); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseConsulEnv: the standard Consul client variables fill the discovery.consul keys
// that neither the file nor a VFX_ variable wrote.
func TestParseConsulEnv(t *testing.T) {
	type want struct {
		address, scheme, token, tokenFile, ca, cert, key, serverName string
		skipVerify                                                   bool
	}
	d := consul.DefaultConfig()
	defaults := want{address: d.Address, scheme: d.Scheme}
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    want
	}{
		{"none", "", nil, defaults},
		{"address with https scheme", "", []string{"CONSUL_HTTP_ADDR=https://consul.internal:8501"},
			want{address: "consul.internal:8501", scheme: "https"}},
		{"address with http scheme", "", []string{"CONSUL_HTTP_ADDR=http://10.0.0.5:8500"},
			want{address: "10.0.0.5:8500", scheme: "http"}},
		{"ssl and every tls variable", "", []string{
			"CONSUL_HTTP_SSL=true", "CONSUL_CACERT=/ca.pem", "CONSUL_CLIENT_CERT=/c.pem", "CONSUL_CLIENT_KEY=/k.pem",
			"CONSUL_TLS_SERVER_NAME=consul.internal", "CONSUL_HTTP_SSL_VERIFY=false",
		}, want{address: d.Address, scheme: "https", ca: "/ca.pem", cert: "/c.pem", key: "/k.pem", serverName: "consul.internal", skipVerify: true}},
		{"ssl_verify true changes nothing", "", []string{"CONSUL_HTTP_SSL_VERIFY=true", "CONSUL_HTTP_SSL=0"}, defaults},
		{"token", "", []string{"CONSUL_HTTP_TOKEN=s3cret"}, want{address: d.Address, scheme: d.Scheme, token: "s3cret"}},
		{"token file", "", []string{"CONSUL_HTTP_TOKEN_FILE=/run/token"}, want{address: d.Address, scheme: d.Scheme, tokenFile: "/run/token"}},
		{"the file wins", "discovery:\n  consul: {address: \"127.0.0.1:8500\", scheme: http, token_file: /etc/token}\n",
			[]string{"CONSUL_HTTP_ADDR=https://other:8501", "CONSUL_HTTP_TOKEN=s3cret", "CONSUL_HTTP_SSL=true"},
			want{address: "127.0.0.1:8500", scheme: "http", tokenFile: "/etc/token"}},
		{"VFX_ wins", "", []string{"CONSUL_HTTP_ADDR=other:8500", "VFX_DISCOVERY__CONSUL__ADDRESS=mine:8500", "VFX_CONSUL_TOKEN=vfx", "CONSUL_HTTP_TOKEN_FILE=/run/token"},
			want{address: "mine:8500", scheme: d.Scheme, token: "vfx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.yaml, tt.environ...).Discovery.Consul
			got := want{c.Address, c.Scheme, c.Token, c.TokenFile, c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ServerName, c.TLS.InsecureSkipVerify}
			if got != tt.want {
				t.Errorf("discovery.consul from %v:\n got  %+v\n want %+v", tt.environ, got, tt.want)
			}
		})
	}
	// The values are validated like the file's: veloflux validate sees them too.
	_, err := Parse(nil, []string{"CONSUL_HTTP_ADDR=http://no-port"})
	if err == nil || !strings.Contains(err.Error(), "discovery.consul.address: missing port") {
		t.Errorf("CONSUL_HTTP_ADDR without a port: %v, want a problem at discovery.consul.address", err)
	}
}
