package config

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/gossip"
)

// gossipKey returns the base64 form of an n-byte key, as an operator would write it.
func gossipKey(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

func TestValidateClusterRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"enabled without bind_address", func(c *Config) {
			c.Cluster.Enabled = true
			c.Cluster.BindAddress = ""
		}, []string{"cluster.bind_address: required when cluster.enabled is true"}},
		{"name with a space", func(c *Config) { c.Cluster.Name = "edge 1" },
			[]string{`cluster.name: must not contain spaces or control characters, got "edge 1"`}},
		{"bind_address without port", func(c *Config) { c.Cluster.BindAddress = "127.0.0.1" },
			[]string{"cluster.bind_address: missing port"}},
		{"bind_address port out of range", func(c *Config) { c.Cluster.BindAddress = "127.0.0.1:65536" },
			[]string{"cluster.bind_address: port 65536 out of range 0-65535"}},
		{"bind_address on a name", func(c *Config) { c.Cluster.BindAddress = "localhost:7946" },
			[]string{`cluster.bind_address: host must be an IP address (gossip binds and advertises addresses, not names), got "localhost"`}},
		{"bind_address without host", func(c *Config) { c.Cluster.BindAddress = ":7946" },
			[]string{"cluster.bind_address: missing host"}},
		{"bind_address with a zone", func(c *Config) { c.Cluster.BindAddress = "[fe80::1%eth0]:7946" },
			[]string{`cluster.bind_address: host must be an IP address (gossip binds and advertises addresses, not names), got "fe80::1%eth0"`}},
		{"non-loopback bind without key", func(c *Config) { c.Cluster.BindAddress = "10.0.0.5:7946" },
			[]string{"cluster.bind_address: 10.0.0.5 is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port"}},
		{"all interfaces without key", func(c *Config) { c.Cluster.BindAddress = "0.0.0.0:7946" },
			[]string{"cluster.bind_address: 0.0.0.0 is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port"}},
		{"ipv6 all interfaces without key", func(c *Config) { c.Cluster.BindAddress = "[::]:7946" },
			[]string{"cluster.bind_address: :: is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port"}},
		{"non-loopback bind without key, disabled too", func(c *Config) {
			c.Cluster.Enabled = false
			c.Cluster.BindAddress = "192.168.1.5:7946"
		}, []string{"cluster.bind_address: 192.168.1.5 is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port"}},
		{"advertise_address on a name", func(c *Config) { c.Cluster.AdvertiseAddress = "edge-1.internal:7946" },
			[]string{`cluster.advertise_address: host must be an IP address (gossip binds and advertises addresses, not names), got "edge-1.internal"`}},
		{"advertise_address port 0", func(c *Config) { c.Cluster.AdvertiseAddress = "203.0.113.5:0" },
			[]string{"cluster.advertise_address: port 0 out of range 1-65535"}},
		{"advertise_address unspecified", func(c *Config) { c.Cluster.AdvertiseAddress = "0.0.0.0:7946" },
			[]string{"cluster.advertise_address: 0.0.0.0 is not an address peers can reach; advertise one of the node's addresses"}},
		{"advertise_address without port", func(c *Config) { c.Cluster.AdvertiseAddress = "203.0.113.5" },
			[]string{"cluster.advertise_address: missing port"}},
		{"preset unknown", func(c *Config) { c.Cluster.Preset = "local" },
			[]string{`cluster.preset: must be one of lan, wan; got "local"`}},
		{"gossip_key not base64", func(c *Config) { c.Cluster.GossipKey = "not-base64!" },
			[]string{"cluster.gossip_key: is not standard base64 (value not shown: it is secret)"}},
		{"gossip_key url-safe base64", func(c *Config) {
			c.Cluster.GossipKey = base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfe0123456789abcdefghijklmnopq"))
		}, []string{"cluster.gossip_key: is not standard base64 (value not shown: it is secret)"}},
		{"gossip_key 8 bytes", func(c *Config) { c.Cluster.GossipKey = gossipKey(8) },
			[]string{"cluster.gossip_key: decodes to 8 bytes; an AES key is 16, 24 or 32 bytes (value not shown: it is secret)"}},
		{"gossip_key 31 bytes", func(c *Config) { c.Cluster.GossipKey = gossipKey(31) },
			[]string{"cluster.gossip_key: decodes to 31 bytes; an AES key is 16, 24 or 32 bytes (value not shown: it is secret)"}},
		{"gossip_key 64 bytes", func(c *Config) { c.Cluster.GossipKey = gossipKey(64) },
			[]string{"cluster.gossip_key: decodes to 64 bytes; an AES key is 16, 24 or 32 bytes (value not shown: it is secret)"}},
		{"gossip_key list", func(c *Config) { c.Cluster.GossipKey = gossipKey(32) + "," + gossipKey(16) },
			[]string{"cluster.gossip_key: must be a single key; a comma-separated list of keys is not supported (value not shown: it is secret)"}},
		{"gossip_keys bad entry", func(c *Config) {
			c.Cluster.GossipKey, c.Cluster.GossipKeys = gossipKey(32), []string{gossipKey(16), gossipKey(8)}
		}, []string{"cluster.gossip_keys[1]: decodes to 8 bytes; an AES key is 16, 24 or 32 bytes (value not shown: it is secret)"}},
		{"probers 0", func(c *Config) { c.Cluster.Health.Probers = 0 },
			[]string{"cluster.health.probers: must be between 1 and 16, got 0"}},
		{"negative observation ttl", func(c *Config) { c.Cluster.Health.ObservationTTL = -time.Second },
			[]string{"cluster.health.observation_ttl: must not be negative (0 picks it from the interval), got -1s"}},
		{"gossip_keys without gossip_key", func(c *Config) { c.Cluster.GossipKeys = []string{gossipKey(16)} },
			[]string{"cluster.gossip_keys: needs cluster.gossip_key: a node encrypts with gossip_key and only also accepts gossip_keys"}},
		{"label empty", func(c *Config) { c.Cluster.Label = "" },
			[]string{"cluster.label: required"}},
		{"label with a space", func(c *Config) { c.Cluster.Label = "velo flux" },
			[]string{`cluster.label: invalid label "velo flux": use letters, digits, ".", "_" and "-" only`}},
		{"label too long", func(c *Config) { c.Cluster.Label = strings.Repeat("a", 65) },
			[]string{"cluster.label: must be at most 64 characters, got 65"}},
		{"seeds", func(c *Config) { c.Cluster.Seeds = []string{"10.0.0.6:7946", "10.0.0.7", "edge-3:0", "", "[::1:7946"} },
			[]string{
				"cluster.seeds[1]: missing port",
				"cluster.seeds[2]: port 0 out of range 1-65535",
				"cluster.seeds[3]: missing port",
				"cluster.seeds[4]: missing ']' in address",
			}},
		{"join_consul without registration", func(c *Config) { c.Cluster.JoinConsul = true },
			[]string{"cluster.join_consul: requires discovery.consul.register.enabled: true (peers are found through that registration)"}},
		{"join_consul with consul but no registration", func(c *Config) {
			c.Cluster.JoinConsul = true
			c.Discovery.Consul.Enabled = true
		}, []string{"cluster.join_consul: requires discovery.consul.register.enabled: true (peers are found through that registration)"}},
		{"queue_size 0", func(c *Config) { c.Cluster.QueueSize = 0 },
			[]string{"cluster.queue_size: must be between 1 and 1000000, got 0"}},
		{"queue_size too large", func(c *Config) { c.Cluster.QueueSize = 1_000_001 },
			[]string{"cluster.queue_size: must be between 1 and 1000000, got 1000001"}},
		{"push_pull_max_bytes too small", func(c *Config) { c.Cluster.PushPullMaxBytes = 1023 },
			[]string{"cluster.push_pull_max_bytes: must be between 1024 and 16777216, got 1023"}},
		{"push_pull_max_bytes too large", func(c *Config) { c.Cluster.PushPullMaxBytes = 16<<20 + 1 },
			[]string{"cluster.push_pull_max_bytes: must be between 1024 and 16777216, got 16777217"}},
		{"max_entries_per_kind 0", func(c *Config) { c.Cluster.MaxEntriesPerKind = 0 },
			[]string{"cluster.max_entries_per_kind: must be between 1 and 10000000, got 0"}},
		{"max_entries_per_kind too large", func(c *Config) { c.Cluster.MaxEntriesPerKind = 10_000_001 },
			[]string{"cluster.max_entries_per_kind: must be between 1 and 10000000, got 10000001"}},
		{"tombstone_ttl 0", func(c *Config) { c.Cluster.TombstoneTTL = 0 },
			[]string{"cluster.tombstone_ttl: must be > 0, got 0s"}},
		{"tombstone_ttl negative", func(c *Config) { c.Cluster.TombstoneTTL = -time.Second },
			[]string{"cluster.tombstone_ttl: must be > 0, got -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			c.Cluster.Enabled = true
			if err := c.Validate(); err != nil {
				t.Fatalf("base config invalid: %v", err)
			}
			tt.mutate(c)
			assertLines(t, c.Validate(), tt.want)
		})
	}
}

func TestValidateClusterAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"defaults, disabled", func(c *Config) {}},
		{"enabled on the loopback default", func(c *Config) { c.Cluster.Enabled = true }},
		{"disabled without bind_address", func(c *Config) { c.Cluster.BindAddress = "" }},
		{"port 0 picks a free port", func(c *Config) { c.Cluster.Enabled, c.Cluster.BindAddress = true, "127.0.0.1:0" }},
		{"ipv6 loopback without key", func(c *Config) { c.Cluster.Enabled, c.Cluster.BindAddress = true, "[::1]:7946" }},
		{"other loopback address without key", func(c *Config) { c.Cluster.BindAddress = "127.0.0.2:7946" }},
		{"non-loopback with 16-byte key", func(c *Config) {
			c.Cluster.Enabled, c.Cluster.BindAddress, c.Cluster.GossipKey = true, "10.0.0.5:7946", gossipKey(16)
		}},
		{"all interfaces with 24-byte key", func(c *Config) { c.Cluster.BindAddress, c.Cluster.GossipKey = "0.0.0.0:7946", gossipKey(24) }},
		{"ipv6 with 32-byte key", func(c *Config) { c.Cluster.BindAddress, c.Cluster.GossipKey = "[2001:db8::5]:7946", gossipKey(32) }},
		{"key with surrounding newline, as from a file", func(c *Config) { c.Cluster.GossipKey = gossipKey(32) + "\n" }},
		{"non-loopback insecure by choice", func(c *Config) {
			c.Cluster.BindAddress, c.Cluster.AllowInsecure = "10.0.0.5:7946", true
		}},
		{"advertise ipv4 and ipv6", func(c *Config) { c.Cluster.AdvertiseAddress = "[2001:db8::5]:17946" }},
		{"wan preset", func(c *Config) { c.Cluster.Preset = gossip.PresetWAN }},
		{"name and label at the limit", func(c *Config) {
			c.Cluster.Name, c.Cluster.Label = "edge-1.eu", "prod_EU-1."+strings.Repeat("x", 54)
		}},
		{"seeds by name and address", func(c *Config) {
			c.Cluster.Seeds = []string{"10.0.0.6:7946", "edge-3.internal:7946", "[2001:db8::7]:7946"}
		}},
		{"join_consul with registration", func(c *Config) {
			c.Cluster.JoinConsul = true
			c.Discovery.Consul.Enabled = true
			c.Discovery.Consul.Register.Enabled = true
		}},
		{"limits at their bounds", func(c *Config) {
			c.Cluster.QueueSize, c.Cluster.PushPullMaxBytes, c.Cluster.MaxEntriesPerKind = 1_000_000, 16<<20, 10_000_000
		}},
		{"limits at their floors", func(c *Config) {
			c.Cluster.QueueSize, c.Cluster.PushPullMaxBytes, c.Cluster.MaxEntriesPerKind = 1, 1024, 1
			c.Cluster.TombstoneTTL = time.Nanosecond
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

// TestClusterGossipKeyNeverEchoed covers the decoder's type errors as well as Validate: a key
// that is wrong is still, most likely, the real key.
func TestClusterGossipKeyNeverEchoed(t *testing.T) {
	const secret = "c2VjcmV0LWdvc3NpcC1rZXk"
	tests := []struct {
		name    string
		yaml    string
		environ []string
	}{
		{"bad length in the file", "cluster: {gossip_key: \"" + secret + "=\"}\n", nil},
		{"not base64 in the file", "cluster: {gossip_key: \"" + secret + "\"}\n", nil},
		{"bad length from VFX_GOSSIP_KEY", "", []string{"VFX_GOSSIP_KEY=" + secret + "="}},
		{"two keys from the generic variable", "", []string{"VFX_CLUSTER__GOSSIP_KEY=" + secret + "=," + gossipKey(16)}},
		{"a number in the file", "cluster: {gossip_key: 1234567890123}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), tt.environ)
			lines := errLines(t, err)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "cluster.gossip_key: ") {
				t.Fatalf("errors %q, want one about cluster.gossip_key", lines)
			}
			for _, leak := range []string{secret, "1234567890123"} {
				if strings.Contains(lines[0], leak) {
					t.Errorf("error %q shows the key", lines[0])
				}
			}
		})
	}
}

func TestParseCluster(t *testing.T) {
	key := gossipKey(32)
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    func(c *Cluster)
	}{
		{"file", `
cluster:
  enabled: true
  name: edge-1
  bind_address: "10.0.0.5:7946"
  advertise_address: "203.0.113.5:7946"
  preset: WAN
  gossip_key: "` + key + `"
  label: prod
  seeds: ["10.0.0.6:7946", "edge-3.internal:7946"]
  queue_size: 4096
  push_pull_max_bytes: 1048576
  max_entries_per_kind: 50000
  tombstone_ttl: 2h
`, nil, func(c *Cluster) {
			c.Enabled, c.Name, c.BindAddress, c.AdvertiseAddress = true, "edge-1", "10.0.0.5:7946", "203.0.113.5:7946"
			c.Preset, c.GossipKey, c.Label = gossip.PresetWAN, key, "prod"
			c.Seeds = []string{"10.0.0.6:7946", "edge-3.internal:7946"}
			c.QueueSize, c.PushPullMaxBytes, c.MaxEntriesPerKind, c.TombstoneTTL = 4096, 1<<20, 50000, 2*time.Hour
		}},
		{"VFX_GOSSIP_KEY", "", []string{"VFX_GOSSIP_KEY=" + key}, func(c *Cluster) { c.GossipKey = key }},
		{"VFX_GOSSIP_KEY wins over the generic form and the file", "cluster: {gossip_key: \"" + gossipKey(16) + "\"}\n",
			[]string{"VFX_GOSSIP_KEY=" + key, "VFX_CLUSTER__GOSSIP_KEY=" + gossipKey(24)},
			func(c *Cluster) { c.GossipKey = key }},
		{"generic variables", "", []string{
			"VFX_CLUSTER__ENABLED=true", "VFX_CLUSTER__SEEDS=10.0.0.6:7946, 10.0.0.7:7946",
			"VFX_CLUSTER__TOMBSTONE_TTL=30m", "VFX_CLUSTER__JOIN_CONSUL=false",
		}, func(c *Cluster) {
			c.Enabled, c.Seeds, c.TombstoneTTL = true, []string{"10.0.0.6:7946", "10.0.0.7:7946"}, 30*time.Minute
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Default().Cluster
			tt.want(&want)
			if got := mustParse(t, tt.yaml, tt.environ...).Cluster; !reflect.DeepEqual(got, want) {
				t.Errorf("cluster:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
