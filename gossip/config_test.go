package gossip

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none means valid
	}{
		{name: "defaults", modify: func(*Config) {}},
		{name: "loopback without keys", modify: func(c *Config) { c.BindAddr = "127.0.0.1" }},
		{name: "any address with key", modify: func(c *Config) { c.BindAddr = "0.0.0.0"; c.Keys = [][]byte{make([]byte, 16)} }},
		{name: "any address insecure opt-out", modify: func(c *Config) { c.BindAddr = "0.0.0.0"; c.AllowInsecure = true }},
		{
			name:   "any address without key",
			modify: func(c *Config) { c.BindAddr = "0.0.0.0" },
			want:   []string{"cluster.bind_addr: 0.0.0.0 is not loopback and no gossip key"},
		},
		{
			name:   "public address without key",
			modify: func(c *Config) { c.BindAddr = "10.0.0.7" },
			want:   []string{"cluster.bind_addr: 10.0.0.7 is not loopback"},
		},
		{
			name: "everything wrong at once",
			modify: func(c *Config) {
				c.BindAddr = "localhost"
				c.BindPort = 70000
				c.AdvertiseAddr = "nat-box"
				c.AdvertisePort = -1
				c.Preset = "lan-fast"
				c.Keys = [][]byte{make([]byte, 16), make([]byte, 15)}
				c.Label = strings.Repeat("l", 256)
				c.Seeds = []string{"10.0.0.1:7946", "10.0.0.2", "seed:0"}
				c.Region = strings.Repeat("r", 600)
				c.QueueSize = 0
				c.PushPullMaxBytes = 32 << 20
			},
			want: []string{
				`cluster.bind_addr: "localhost" is not an IP address`,
				"cluster.bind_port: 70000",
				`cluster.advertise_addr: "nat-box"`,
				"cluster.advertise_port: -1",
				`cluster.preset: "lan-fast"`,
				"cluster.keys[1]: 15 bytes",
				"cluster.label: 256 bytes",
				`cluster.seeds[1]: "10.0.0.2" is not host:port`,
				`cluster.seeds[2]: "seed:0" has an invalid port`,
				"cluster.region:",
				"cluster.queue_size: 0",
				"cluster.push_pull_max_bytes: 33554432",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nmissing %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tc.want) {
				t.Errorf("Validate() reported %d problems, want %d:\n%v", got, len(tc.want), err)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BindAddr = "0.0.0.0"
	if _, err := New(cfg, &recState{}, nil, nil); err == nil || !strings.Contains(err.Error(), "cluster.bind_addr") {
		t.Fatalf("New with insecure bind = %v, want cluster.bind_addr error", err)
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
