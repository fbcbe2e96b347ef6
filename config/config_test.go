package config

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/geo"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/proxy/ratelimit"
)

func TestDefault(t *testing.T) {
	c := Default()
	tests := []struct {
		key       string
		got, want any
	}{
		{"global.bind_address", c.Global.BindAddress, "0.0.0.0:80"},
		{"global.tls_bind_address", c.Global.TLSBindAddress, ""},
		{"global.metrics_address", c.Global.MetricsAddress, "0.0.0.0:8080"},
		{"global.admin_address", c.Global.AdminAddress, "127.0.0.1:9000"},
		{"global.log_level", c.Global.LogLevel, "info"},
		{"global.access_log", c.Global.AccessLog, true},
		{"global.drain_timeout", c.Global.DrainTimeout, 30 * time.Second},
		{"global.trusted_proxies", len(c.Global.TrustedProxies), 0},
		{"global.tls.auto_cert", c.Global.TLS.AutoCert, false},
		{"global.tls.acme_email", c.Global.TLS.ACMEEmail, ""},
		{"global.tls.cert_dir", c.Global.TLS.CertDir, "/etc/veloflux/certs"},
		{"global.tls.cert_file", c.Global.TLS.CertFile, ""},
		{"global.tls.key_file", c.Global.TLS.KeyFile, ""},
		{"global.health_check.interval", c.Global.HealthCheck.Interval, 10 * time.Second},
		{"global.health_check.timeout", c.Global.HealthCheck.Timeout, 5 * time.Second},
		{"global.health_check.retries", c.Global.HealthCheck.Fall, 3},
		{"global.timeouts.read_header", c.Global.Timeouts.ReadHeader, 10 * time.Second},
		{"global.timeouts.read", c.Global.Timeouts.Read, 60 * time.Second},
		{"global.timeouts.idle", c.Global.Timeouts.Idle, 120 * time.Second},
		{"global.timeouts.backend_dial", c.Global.Timeouts.BackendDial, 5 * time.Second},
		{"global.timeouts.backend_response_header", c.Global.Timeouts.BackendResponseHeader, 30 * time.Second},
		{"global.timeouts.backend_idle", c.Global.Timeouts.BackendIdle, 90 * time.Second},
		{"global.limits.max_header_bytes", c.Global.Limits.MaxHeaderBytes, 65536},
		{"global.limits.max_header_count", c.Global.Limits.MaxHeaderCount, 100},
		{"global.limits.h2_max_concurrent_streams", c.Global.Limits.H2MaxConcurrentStreams, 100},
		{"global.limits.h2_max_frame_size", c.Global.Limits.H2MaxFrameSize, 16384},
		{"global.limits.h2_stream_window", c.Global.Limits.H2StreamWindow, 1 << 20},
		{"global.limits.h2_conn_window", c.Global.Limits.H2ConnWindow, 1 << 20},
		{"global.limits.max_requests_per_conn", c.Global.Limits.MaxRequestsPerConn, 0},
		{"global.limits.max_client_conns", c.Global.Limits.MaxClientConns, 0},
		{"global.limits.max_idle_conns_per_backend", c.Global.Limits.MaxIdleConnsPerBackend, 64},
		{"global.limits.max_conns_per_backend", c.Global.Limits.MaxConnsPerBackend, 1024},
		{"global.limits.backend_queue_timeout", c.Global.Limits.BackendQueueTimeout, 5 * time.Second},
		{"retry.attempts", c.Retry.Attempts, 2},
		{"retry.timeout", c.Retry.Timeout, 10 * time.Second},
		{"sticky.cookie_name", c.Sticky.CookieName, "vf_session"},
		{"sticky.ttl", c.Sticky.TTL, time.Hour},
		{"sticky.secure", c.Sticky.Secure, false},
		{"sticky.http_only", c.Sticky.HTTPOnly, true},
		{"sticky.same_site", c.Sticky.SameSite, "lax"},
		{"sticky.secret", c.Sticky.Secret, ""},
		{"rate_limit.requests_per_second", c.RateLimit.RequestsPerSecond, 0.0},
		{"rate_limit.burst", c.RateLimit.Burst, 0},
		{"rate_limit.max_clients", c.RateLimit.MaxClients, 100000},
		{"rate_limit.ipv6_prefix", c.RateLimit.IPv6Prefix, 64},
		{"rate_limit.rules", len(c.RateLimit.Rules), 0},
		{"discovery.consul.enabled", c.Discovery.Consul.Enabled, false},
		{"discovery.consul.address", c.Discovery.Consul.Address, "127.0.0.1:8500"},
		{"discovery.consul.scheme", c.Discovery.Consul.Scheme, "http"},
		{"discovery.consul.token", c.Discovery.Consul.Token, ""},
		{"discovery.consul.token_file", c.Discovery.Consul.TokenFile, ""},
		{"discovery.consul.datacenter", c.Discovery.Consul.Datacenter, ""},
		{"discovery.consul.datacenters", len(c.Discovery.Consul.Datacenters), 0},
		{"discovery.consul.tls", c.Discovery.Consul.TLS, consul.TLSConfig{}},
		{"discovery.consul.tag_prefix", c.Discovery.Consul.TagPrefix, "veloflux"},
		{"discovery.consul.exposed_by_default", c.Discovery.Consul.ExposedByDefault, false},
		{"discovery.consul.accept_warning", c.Discovery.Consul.AcceptWarning, false},
		{"discovery.consul.wait_time", c.Discovery.Consul.WaitTime, 5 * time.Minute},
		{"discovery.consul.coalesce", c.Discovery.Consul.Coalesce, 50 * time.Millisecond},
		{"discovery.consul.min_backoff", c.Discovery.Consul.MinBackoff, 250 * time.Millisecond},
		{"discovery.consul.max_backoff", c.Discovery.Consul.MaxBackoff, 30 * time.Second},
		{"discovery.consul.register.enabled", c.Discovery.Consul.Register.Enabled, false},
		{"discovery.consul.register.name", c.Discovery.Consul.Register.Name, "veloflux"},
		{"discovery.consul.register.id", c.Discovery.Consul.Register.ID, ""},
		{"discovery.consul.register.address", c.Discovery.Consul.Register.Address, ""},
		{"discovery.consul.register.tags", len(c.Discovery.Consul.Register.Tags), 0},
		{"discovery.consul.register.check_interval", c.Discovery.Consul.Register.CheckInterval, 5 * time.Second},
		{"discovery.consul.register.deregister_critical_after", c.Discovery.Consul.Register.DeregisterCriticalAfter, time.Minute},
		{"geo.database", c.Geo.Database, ""},
		{"geo.node_region", c.Geo.NodeRegion, ""},
		{"geo.cache_size", c.Geo.CacheSize, 65536},
		{"geo.response_header", c.Geo.ResponseHeader, ""},
		{"geo.country_regions", c.Geo.CountryRegions, map[string]string(nil)},
		{"geo.continent_regions", c.Geo.ContinentRegions, map[string]string(nil)},
		{"geo.regions", c.Geo.Regions, []geo.Region(nil)},
		{"cluster.enabled", c.Cluster.Enabled, false},
		{"cluster.name", c.Cluster.Name, ""},
		{"cluster.bind_address", c.Cluster.BindAddress, "127.0.0.1:7946"},
		{"cluster.advertise_address", c.Cluster.AdvertiseAddress, ""},
		{"cluster.preset", c.Cluster.Preset, "lan"},
		{"cluster.gossip_key", c.Cluster.GossipKey, ""},
		{"cluster.label", c.Cluster.Label, "veloflux"},
		{"cluster.allow_insecure", c.Cluster.AllowInsecure, false},
		{"cluster.seeds", c.Cluster.Seeds, []string(nil)},
		{"cluster.join_consul", c.Cluster.JoinConsul, false},
		{"cluster.queue_size", c.Cluster.QueueSize, 1024},
		{"cluster.push_pull_max_bytes", c.Cluster.PushPullMaxBytes, 1048576},
		{"cluster.max_entries_per_kind", c.Cluster.MaxEntriesPerKind, 1_000_000},
		{"cluster.tombstone_ttl", c.Cluster.TombstoneTTL, time.Hour},
		{"pools", len(c.Pools), 0},
		{"routes", len(c.Routes), 0},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("default %s = %#v, want %#v", tt.key, tt.got, tt.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		if err := c.Validate(); err != nil {
			t.Errorf("Default().Validate() = %v", err)
		}
	})
	t.Run("fresh each call", func(t *testing.T) {
		Default().Global.BindAddress = "changed"
		if Default().Global.BindAddress != "0.0.0.0:80" {
			t.Error("Default returns shared state")
		}
	})
}

func TestListItemDefaults(t *testing.T) {
	c := mustParse(t, "pools:\n  - name: p\n    backends:\n      - address: a:1\n")
	if c.Pools[0].Algorithm != AlgorithmRoundRobin || c.Pools[0].Backends[0].Weight != 1 {
		t.Errorf("pool algorithm %q, backend weight %d; want round_robin and 1", c.Pools[0].Algorithm, c.Pools[0].Backends[0].Weight)
	}
	if c.Pools[0].Protocol != ProtocolHTTP || c.Pools[0].TLSSkipVerify {
		t.Errorf("pool protocol %q, tls_skip_verify %v; want http and false", c.Pools[0].Protocol, c.Pools[0].TLSSkipVerify)
	}
	if c.Pools[0].Backends[0].Region != "" {
		t.Errorf("backend region %q, want \"\" (geo.node_region)", c.Pools[0].Backends[0].Region)
	}
	c = mustParse(t, "pools: [{name: p}]\nroutes: [{pool: p}, {pool: p, host: a.example}]\n")
	for i, r := range c.Routes {
		if r.Geo != GeoOff {
			t.Errorf("routes[%d].geo = %q, want %q", i, r.Geo, GeoOff)
		}
	}
}

func TestPathFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    string
	}{
		{"unset", []string{"PATH=/bin"}, DefaultPath},
		{"nil environ", nil, DefaultPath},
		{"set", []string{"VFX_CONFIG=/srv/vf.yaml"}, "/srv/vf.yaml"},
		{"empty", []string{"VFX_CONFIG="}, DefaultPath},
		{"last wins", []string{"VFX_CONFIG=/a.yaml", "VFX_CONFIG=/b.yaml"}, "/b.yaml"},
		{"similar name", []string{"VFX_CONFIGS=/a.yaml", "XVFX_CONFIG=/b.yaml"}, DefaultPath},
		{"value with equals sign", []string{"VFX_CONFIG=/etc/a=b.yaml"}, "/etc/a=b.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PathFromEnv(tt.environ); got != tt.want {
				t.Errorf("PathFromEnv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	orig := validBase()
	orig.Sticky.Secret = strings.Repeat("s", 32)
	orig.Discovery.Consul.Token = "6a1253d2-1785-24fd-91c2-f8e78c745511"
	orig.Discovery.Consul.Datacenters = []string{"dc2"}
	orig.Global.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	orig.RateLimit.Rules = []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true}}
	orig.Geo.CountryRegions = map[string]string{"DE": "eu"}
	orig.Geo.ContinentRegions = map[string]string{"EU": "eu"}
	orig.Geo.Regions = []geo.Region{{Name: "eu", Lat: 50, Lon: 8}}
	orig.Cluster.GossipKey = gossipKey(32)
	orig.Cluster.GossipKeys = []string{gossipKey(16), gossipKey(24)}
	orig.Cluster.Seeds = []string{"10.0.0.6:7946"}
	keep := validBase()
	keep.Sticky.Secret = orig.Sticky.Secret
	keep.Discovery.Consul.Token = orig.Discovery.Consul.Token
	keep.Discovery.Consul.Datacenters = []string{"dc2"}
	keep.Global.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	keep.RateLimit.Rules = []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true}}
	keep.Geo.CountryRegions = map[string]string{"DE": "eu"}
	keep.Geo.ContinentRegions = map[string]string{"EU": "eu"}
	keep.Geo.Regions = []geo.Region{{Name: "eu", Lat: 50, Lon: 8}}
	keep.Cluster.GossipKey = orig.Cluster.GossipKey
	keep.Cluster.GossipKeys = []string{gossipKey(16), gossipKey(24)}
	keep.Cluster.Seeds = []string{"10.0.0.6:7946"}

	r := orig.Redacted()
	t.Run("secrets replaced", func(t *testing.T) {
		if r.Sticky.Secret != "REDACTED" {
			t.Errorf("Sticky.Secret = %q", r.Sticky.Secret)
		}
		if r.Discovery.Consul.Token != "REDACTED" {
			t.Errorf("Discovery.Consul.Token = %q", r.Discovery.Consul.Token)
		}
		if r.Cluster.GossipKey != "REDACTED" {
			t.Errorf("Cluster.GossipKey = %q", r.Cluster.GossipKey)
		}
		if !slices.Equal(r.Cluster.GossipKeys, []string{"REDACTED", "REDACTED"}) {
			t.Errorf("Cluster.GossipKeys = %q", r.Cluster.GossipKeys)
		}
	})
	t.Run("everything else equal", func(t *testing.T) {
		cp := *r
		cp.Sticky.Secret = orig.Sticky.Secret
		cp.Discovery.Consul.Token = orig.Discovery.Consul.Token
		cp.Cluster.GossipKey = orig.Cluster.GossipKey
		cp.Cluster.GossipKeys = orig.Cluster.GossipKeys
		if !reflect.DeepEqual(&cp, orig) {
			t.Errorf("redacted copy differs beyond the secret:\n%+v\n%+v", cp, *orig)
		}
	})
	t.Run("deep copy", func(t *testing.T) {
		r.Pools[0].Backends[0].Address = "changed:1"
		r.Pools[0].Name = "changed"
		r.Routes[0].Pool = "changed"
		r.Global.TrustedProxies[0] = netip.MustParsePrefix("1.1.1.1/32")
		r.RateLimit.Rules[0].Exempt = false
		r.Discovery.Consul.Datacenters[0] = "changed"
		r.Geo.CountryRegions["DE"] = "changed"
		r.Geo.CountryRegions["FR"] = "added"
		delete(r.Geo.ContinentRegions, "EU")
		r.Geo.Regions[0].Lat = 0
		r.Cluster.Seeds[0] = "changed:1"
		if !reflect.DeepEqual(orig, keep) {
			t.Errorf("changing the redacted copy changed the original:\n%+v", *orig)
		}
	})
	t.Run("empty secrets stay empty", func(t *testing.T) {
		r := Default().Redacted()
		if r.Sticky.Secret != "" || r.Discovery.Consul.Token != "" || r.Cluster.GossipKey != "" {
			t.Errorf("Sticky.Secret = %q, Discovery.Consul.Token = %q, Cluster.GossipKey = %q, want all empty",
				r.Sticky.Secret, r.Discovery.Consul.Token, r.Cluster.GossipKey)
		}
	})
	t.Run("nil maps stay nil", func(t *testing.T) {
		if r := validBase().Redacted(); r.Geo.CountryRegions != nil || r.Geo.ContinentRegions != nil {
			t.Errorf("maps %#v and %#v, want nil", r.Geo.CountryRegions, r.Geo.ContinentRegions)
		}
	})
	t.Run("nil", func(t *testing.T) {
		var c *Config
		if c.Redacted() != nil {
			t.Error("nil.Redacted() != nil")
		}
	})
}

// TestSchemaKinds pins what the decoder, Redacted's deep copy and the docs test can handle:
// a new field of another kind (a pointer, a map of anything but strings) must extend them
// first. Every exported field of a section is a key, a squashed section, or tagged "-" as set
// by the program.
func TestSchemaKinds(t *testing.T) {
	var walk func(t *testing.T, path string, typ reflect.Type)
	walk = func(t *testing.T, path string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch tag := f.Tag.Get("koanf"); {
			case !f.IsExported() || tag == "-":
			case tag == ",squash":
				if f.Type.Kind() != reflect.Struct {
					t.Errorf("%s.%s: only a struct can be squashed", typ, f.Name)
				}
			case tag == "" || keyPath("", tag) != tag:
				t.Errorf("%s.%s: koanf tag %q is not a plain key", typ, f.Name, tag)
			}
		}
		seen := make(map[string]bool)
		for _, sf := range keysOf(typ) {
			f, key := sf.field, sf.key
			p := keyPath(path, key)
			if seen[key] {
				t.Errorf("%s: duplicate koanf tag %q", typ, key)
			}
			seen[key] = true
			if f.Tag.Get("redact") != "" && f.Type.Kind() != reflect.String &&
				(f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.String) &&
				f.Type != reflect.TypeFor[map[string]string]() {
				t.Errorf("%s: only strings, lists of strings and string maps can be redacted", p)
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeFor[map[string]string]():
			case ft == reflect.TypeFor[time.Duration](), ft == reflect.TypeFor[netip.Prefix]():
			case ft.Kind() == reflect.Struct:
				walk(t, p, ft)
			case ft.Kind() == reflect.String, ft.Kind() == reflect.Bool, ft.Kind() == reflect.Int, ft.Kind() == reflect.Float64:
			default:
				t.Errorf("%s: unsupported type %s", p, f.Type)
			}
		}
	}
	walk(t, "", reflect.TypeFor[Config]())
}

func TestRestartNeeded(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"nothing changed", func(c *Config) {}, nil},
		{"bind_address", func(c *Config) { c.Global.BindAddress = ":81" }, []string{"global.bind_address"}},
		{"tls_bind_address", func(c *Config) { c.Global.TLSBindAddress = ":443" }, []string{"global.tls_bind_address"}},
		{"metrics_address", func(c *Config) { c.Global.MetricsAddress = "" }, []string{"global.metrics_address"}},
		{"admin_address", func(c *Config) { c.Global.AdminAddress = "" }, []string{"global.admin_address"}},
		{"drain_timeout", func(c *Config) { c.Global.DrainTimeout = time.Second }, []string{"global.drain_timeout"}},
		{"tls", func(c *Config) { c.Global.TLS.CertFile, c.Global.TLS.AutoCert = "x", true },
			[]string{"global.tls.auto_cert", "global.tls.cert_file"}},
		{"http3", func(c *Config) { c.Global.HTTP3 = !c.Global.HTTP3 }, []string{"global.http3"}},
		{"h2c", func(c *Config) { c.Global.H2C = !c.Global.H2C }, []string{"global.h2c"}},
		{"http1_fast_path", func(c *Config) { c.Global.HTTP1FastPath = !c.Global.HTTP1FastPath }, []string{"global.http1_fast_path"}},
		{"protocol switches together", func(c *Config) {
			c.Global.HTTP3, c.Global.H2C, c.Global.HTTP1FastPath = !c.Global.HTTP3, !c.Global.H2C, !c.Global.HTTP1FastPath
		}, []string{"global.http3", "global.h2c", "global.http1_fast_path"}},
		{"timeouts", func(c *Config) { c.Global.Timeouts.Idle = time.Second }, []string{"global.timeouts.idle"}},
		{"limits", func(c *Config) { c.Global.Limits.MaxIdleConnsPerBackend = 9 }, []string{"global.limits.max_idle_conns_per_backend"}},
		{"backend connection cap and queue are live", func(c *Config) {
			c.Global.Limits.MaxConnsPerBackend = 9
			c.Global.Limits.BackendQueueTimeout = time.Second
			c.Pools[0].MaxConnsPerBackend = 3
		}, nil},
		{"consul switch", func(c *Config) { c.Discovery.Consul.Enabled = true }, []string{"discovery.consul.enabled"}},
		{"consul connection", func(c *Config) {
			c.Discovery.Consul.Address = "consul:8500"
			c.Discovery.Consul.Token = "t"
			c.Discovery.Consul.TLS.CAFile = "/ca.pem"
		}, []string{"discovery.consul.address", "discovery.consul.token", "discovery.consul.tls.ca_file"}},
		{"consul watch", func(c *Config) {
			c.Discovery.Consul.Datacenters = []string{"dc2"}
			c.Discovery.Consul.TagPrefix = "vf"
			c.Discovery.Consul.MaxBackoff = time.Minute
		}, []string{"discovery.consul.datacenters", "discovery.consul.tag_prefix", "discovery.consul.max_backoff"}},
		{"consul register", func(c *Config) {
			c.Discovery.Consul.Register.Tags = []string{"edge"}
			c.Discovery.Consul.Register.DeregisterCriticalAfter = time.Hour
		}, []string{"discovery.consul.register.tags", "discovery.consul.register.deregister_critical_after"}},
		{"global and discovery together", func(c *Config) {
			c.Global.BindAddress = ":81"
			c.Discovery.Consul.Register.Enabled = true
		}, []string{"global.bind_address", "discovery.consul.register.enabled"}},
		{"geo database and node region", func(c *Config) {
			c.Geo.Database = "/data/GeoIP2-City.mmdb"
			c.Geo.NodeRegion = "us-east-1"
		}, []string{"geo.database", "geo.node_region"}},
		{"geo cache and header", func(c *Config) {
			c.Geo.CacheSize = 10
			c.Geo.ResponseHeader = "X-Region"
		}, []string{"geo.cache_size", "geo.response_header"}},
		{"geo mappings", func(c *Config) {
			c.Geo.CountryRegions = map[string]string{"DE": "eu"}
			c.Geo.ContinentRegions = map[string]string{"EU": "eu"}
		}, []string{"geo.country_regions", "geo.continent_regions"}},
		{"geo regions", func(c *Config) { c.Geo.Regions = []geo.Region{{Name: "eu", Lat: 50, Lon: 8}} },
			[]string{"geo.regions"}},
		{"cluster switch", func(c *Config) { c.Cluster.Enabled = true }, []string{"cluster.enabled"}},
		{"cluster addresses", func(c *Config) {
			c.Cluster.BindAddress = "10.0.0.5:7946"
			c.Cluster.AdvertiseAddress = "203.0.113.5:7946"
		}, []string{"cluster.bind_address", "cluster.advertise_address"}},
		{"gossip keys rotate live", func(c *Config) {
			c.Cluster.GossipKey = gossipKey(16)
			c.Cluster.GossipKeys = []string{gossipKey(32)}
		}, nil},
		{"cluster membership", func(c *Config) {
			c.Cluster.Name = "edge-2"
			c.Cluster.Preset = gossip.PresetWAN
			c.Cluster.Label = "prod"
			c.Cluster.AllowInsecure = true
			c.Cluster.Seeds = []string{"10.0.0.6:7946"}
			c.Cluster.JoinConsul = true
		}, []string{"cluster.name", "cluster.preset", "cluster.label", "cluster.allow_insecure", "cluster.seeds", "cluster.join_consul"}},
		{"cluster limits", func(c *Config) {
			c.Cluster.QueueSize = 1
			c.Cluster.PushPullMaxBytes = 1024
			c.Cluster.MaxEntriesPerKind = 1
			c.Cluster.TombstoneTTL = time.Minute
		}, []string{"cluster.queue_size", "cluster.push_pull_max_bytes", "cluster.max_entries_per_kind", "cluster.tombstone_ttl"}},
		{"geo and cluster together", func(c *Config) {
			c.Geo.CacheSize = 10
			c.Cluster.Enabled = true
		}, []string{"geo.cache_size", "cluster.enabled"}},
		{"route geo and backend region are live", func(c *Config) {
			c.Routes[0].Geo = GeoNearest
			c.Pools[0].Backends[0].Region = "us-east-1"
		}, nil},
		{"pool protocol is live", func(c *Config) {
			c.Pools[0].Protocol = ProtocolHTTPS
			c.Pools[0].TLSSkipVerify = true
		}, nil},
		{"live keys only", func(c *Config) {
			c.Global.LogLevel = "debug"
			c.Global.AccessLog = false
			c.Global.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			c.Global.HealthCheck.Interval = time.Minute
			c.Retry.Attempts = 5
			c.Sticky.TTL = time.Minute
			c.RateLimit.RequestsPerSecond = 9
			c.Pools = nil
			c.Routes = nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, next := validBase(), validBase()
			tt.mutate(next)
			if got := old.RestartNeeded(next); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("RestartNeeded = %q, want %q", got, tt.want)
			}
		})
	}
}
