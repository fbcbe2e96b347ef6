package config_test

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/gossip"
)

// TestClusterDefaultsMatchGossip keeps the cluster section's defaults equal to the gossip
// package's own, so a key left out of the file means what gossip documents. It lives in an
// external test package because config must not import gossip.
func TestClusterDefaultsMatchGossip(t *testing.T) {
	got := config.Default().Cluster
	want := gossip.DefaultConfig()
	store := gossip.DefaultStoreConfig()
	host, port, err := net.SplitHostPort(got.BindAddress)
	if err != nil {
		t.Fatalf("cluster.bind_address default %q: %v", got.BindAddress, err)
	}
	tests := []struct {
		key       string
		got, want any
	}{
		{"name", got.Name, want.Name},
		{"bind_address host", host, want.BindAddr},
		{"bind_address port", port, strconv.Itoa(want.BindPort)},
		{"advertise_address", got.AdvertiseAddress, want.AdvertiseAddr},
		{"preset", got.Preset, want.Preset},
		{"gossip_key", got.GossipKey == "", len(want.Keys) == 0},
		{"label", got.Label, want.Label},
		{"allow_insecure", got.AllowInsecure, want.AllowInsecure},
		{"seeds", len(got.Seeds), len(want.Seeds)},
		{"queue_size", got.QueueSize, want.QueueSize},
		{"push_pull_max_bytes", got.PushPullMaxBytes, want.PushPullMaxBytes},
		{"max_entries_per_kind", got.MaxEntriesPerKind, store.MaxEntriesPerKind},
		{"tombstone_ttl", got.TombstoneTTL, store.TombstoneTTL},
		{"preset lan", config.ClusterPresetLAN, gossip.PresetLAN},
		{"preset wan", config.ClusterPresetWAN, gossip.PresetWAN},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("cluster.%s default = %#v, gossip has %#v", tt.key, tt.got, tt.want)
			}
		})
	}
}

// TestClusterKeyAgreesWithGossip checks that a gossip_key passes config validation exactly when
// gossip.ParseKey, which cmd uses to build the node, accepts it: a file that validates must
// start, and a key gossip would take must not be refused.
func TestClusterKeyAgreesWithGossip(t *testing.T) {
	enc := func(n int) string { return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n))) }
	tests := []struct {
		name string
		key  string
	}{
		{"16 bytes", enc(16)},
		{"24 bytes", enc(24)},
		{"32 bytes", enc(32)},
		{"surrounded by spaces", "  " + enc(32) + "\n"},
		{"15 bytes", enc(15)},
		{"33 bytes", enc(33)},
		{"unpadded", strings.TrimRight(enc(16), "=")},
		{"url alphabet", base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfe0123456789abc"))},
		{"raw text", "correct horse battery staple"},
		{"two keys", enc(16) + "," + enc(16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, gossipErr := gossip.ParseKey(tt.key)
			_, configErr := config.Parse(nil, []string{"VFX_GOSSIP_KEY=" + tt.key})
			if (gossipErr == nil) != (configErr == nil) {
				t.Errorf("gossip.ParseKey error %v, config error %v: they must agree", gossipErr, configErr)
			}
		})
	}
}

// TestClusterLimitsMatchGossip checks that the largest push_pull_max_bytes config accepts is
// one gossip accepts too, and the next value is refused by both.
func TestClusterLimitsMatchGossip(t *testing.T) {
	for _, n := range []int{16 << 20, 16<<20 + 1} {
		g := gossip.DefaultConfig()
		g.PushPullMaxBytes = n
		_, configErr := config.Parse([]byte("cluster: {push_pull_max_bytes: "+strconv.Itoa(n)+"}\n"), nil)
		if gossipErr := g.Validate(); (gossipErr == nil) != (configErr == nil) {
			t.Errorf("push_pull_max_bytes %d: gossip error %v, config error %v: they must agree", n, gossipErr, configErr)
		}
	}
}
