package gossip

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/fielderr"
)

func TestValidate(t *testing.T) {
	key16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	cases := []struct {
		name   string
		modify func(*Config)
		want   []string // whole problems, in order; none means valid
	}{
		{name: "defaults", modify: func(*Config) {}},
		{name: "loopback without keys", modify: func(c *Config) { c.BindAddress = "127.0.0.1:7946" }},
		{name: "any address with key", modify: func(c *Config) { c.BindAddress = "0.0.0.0:7946"; c.GossipKey = key16 }},
		{name: "any address insecure opt-out", modify: func(c *Config) { c.BindAddress = "0.0.0.0:7946"; c.AllowInsecure = true }},
		{name: "port 0", modify: func(c *Config) { c.BindAddress = "127.0.0.1:0" }},
		{
			name:   "any address without key",
			modify: func(c *Config) { c.BindAddress = "0.0.0.0:7946" },
			want:   []string{"bind_address: 0.0.0.0 is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port"},
		},
		{
			name: "everything wrong at once",
			modify: func(c *Config) {
				c.Name = "a b"
				c.BindAddress = "localhost:7946"
				c.AdvertiseAddress = "0.0.0.0:7946"
				c.Preset = "lan-fast"
				c.GossipKeys = []string{key16, base64.StdEncoding.EncodeToString(make([]byte, 15))}
				c.Label = strings.Repeat("l", 65)
				c.Seeds = []string{"10.0.0.1:7946", "10.0.0.2", "seed:0"}
				c.QueueSize = 0
				c.PushPullMaxBytes = 32 << 20
				c.MaxEntriesPerKind = 0
				c.TombstoneTTL = 0
				c.ReconnectInterval = 0
				c.ReconnectTimeout = -time.Second
			},
			want: []string{
				`name: must not contain spaces or control characters, got "a b"`,
				`bind_address: host must be an IP address (gossip binds and advertises addresses, not names), got "localhost"`,
				"advertise_address: 0.0.0.0 is not an address peers can reach; advertise one of the node's addresses",
				`preset: must be one of lan, wan; got "lan-fast"`,
				"gossip_keys[1]: decodes to 15 bytes; an AES key is 16, 24 or 32 bytes (value not shown: it is secret)",
				"gossip_keys: needs cluster.gossip_key: a node encrypts with gossip_key and only also accepts gossip_keys",
				"label: must be at most 64 characters, got 65",
				"seeds[1]: missing port",
				"seeds[2]: port 0 out of range 1-65535",
				"queue_size: must be between 1 and 1000000, got 0",
				"push_pull_max_bytes: must be between 1024 and 16777216, got 33554432",
				"max_entries_per_kind: must be between 1 and 10000000, got 0",
				"tombstone_ttl: must be > 0, got 0s",
				"reconnect_interval: must be > 0, got 0s",
				"reconnect_timeout: must be > 0, got -1s",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			var got []string
			for _, fe := range fielderr.Prefix("", err) {
				got = append(got, fe.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Validate() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BindAddress = "0.0.0.0:7946"
	if _, err := New(cfg, &recState{}, nil, nil); err == nil || !strings.Contains(err.Error(), "bind_address: 0.0.0.0 is not a loopback address") {
		t.Fatalf("New with insecure bind = %v, want a bind_address error", err)
	}
	cfg = DefaultConfig()
	cfg.Region = strings.Repeat("r", 600)
	if _, err := New(cfg, &recState{}, nil, nil); err == nil || !strings.Contains(err.Error(), "bytes of node metadata") {
		t.Fatalf("New with a 600-byte region = %v, want a metadata size error", err)
	}
}

func TestParseKey(t *testing.T) {
	enc := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	cases := []struct {
		name    string
		in      string
		wantLen int // 0 means an error is expected
	}{
		{"aes-128", enc(16), 16},
		{"aes-192", enc(24), 24},
		{"aes-256 with newline", enc(32) + "\n", 32},
		{"too short", enc(8), 0},
		{"between sizes", enc(20), 0},
		{"not base64", "not*base64!", 0},
		{"empty", "", 0},
		{"two keys", enc(16) + "," + enc(16), 0},
		{"unpadded", strings.TrimRight(enc(16), "="), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseKey(tc.in)
			if tc.wantLen == 0 {
				if err == nil {
					t.Fatalf("ParseKey(%q) = %d bytes, want error", tc.in, len(key))
				}
				return
			}
			if err != nil || len(key) != tc.wantLen {
				t.Fatalf("ParseKey(%q) = %d bytes, %v; want %d bytes", tc.in, len(key), err, tc.wantLen)
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseKey(s)
		if err == nil && len(key) != 16 && len(key) != 24 && len(key) != 32 {
			t.Fatalf("ParseKey(%q) accepted a %d-byte key", s, len(key))
		}
	})
}
