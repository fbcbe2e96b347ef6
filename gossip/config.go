package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Preset names accepted in Config.Preset. They select memberlist's DefaultLANConfig or
// DefaultWANConfig timings; everything else in Config overrides the preset.
const (
	PresetLAN = "lan"
	PresetWAN = "wan"
)

// maxPushPullBytes caps Config.PushPullMaxBytes. memberlist refuses remote push/pull states above
// 20 MiB (maxPushStateBytes in its net.go); staying well below keeps a state that outgrows the cap
// a clear local error rather than a silent rejection on the peer.
const maxPushPullBytes = 16 << 20

// Config is the gossip node's configuration; it maps to the `cluster.*` keys of the VeloFlux config.
type Config struct {
	// Name is the unique node name in the cluster. Default: "" meaning the host name.
	Name string
	// BindAddr is the IP address gossip listens on (UDP and TCP). Default "127.0.0.1", so that an
	// unconfigured node never talks to the network. Binding a non-loopback address needs Keys or
	// AllowInsecure.
	BindAddr string
	// BindPort is the gossip port (UDP and TCP). Default 7946 (memberlist's). 0 picks a free port,
	// which tests use.
	BindPort int
	// AdvertiseAddr is the IP peers reach this node at, for NAT or containers. Default "": derived
	// from BindAddr by memberlist.
	AdvertiseAddr string
	// AdvertisePort is the port peers reach this node at. Default 0: the bound port.
	AdvertisePort int
	// Preset selects memberlist timings: "lan" (default) or "wan" (slower probes, more tolerance).
	Preset string
	// Keys are the AES keys for gossip encryption and authentication, 16, 24 or 32 bytes each; the
	// first is the primary (used to encrypt), the others are accepted for decryption during a
	// rotation. Default none: gossip is in clear text, which is allowed only on loopback unless
	// AllowInsecure is set.
	Keys [][]byte
	// Label is stamped on every packet; nodes with another label ignore ours, so two clusters that
	// share a network do not merge by mistake. Default "veloflux". At most 255 bytes.
	Label string
	// AllowInsecure permits binding a non-loopback address without Keys. Default false: a node
	// without a key would accept state from anyone who can reach its port.
	AllowInsecure bool
	// Seeds are host:port addresses of existing members to join; the node keeps retrying, with
	// backoff, until one answers. Default none: the node starts a new cluster.
	Seeds []string
	// FindPeers, when set, names more members to try, asked afresh each time this node finds
	// itself alone (at every ReconnectInterval): how nodes that find each other through a
	// registry (Consul) meet even when they all started before any had registered. It must
	// return within a few seconds. Default nil.
	FindPeers func() []string
	// Region and Version are gossiped in the node metadata so peers can show them and prefer
	// same-region nodes. Default "".
	Region, Version string
	// QueueSize bounds the incoming message queue between memberlist's callbacks and the State;
	// messages beyond it are dropped and counted. Default 1024 messages.
	QueueSize int
	// ReconnectInterval is how often the node tries to rejoin departed members (and its seeds
	// when it is alone), which is how the two sides of a healed partition find each other again.
	// Default 10s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a departed member is remembered and retried. Default 6h.
	ReconnectTimeout time.Duration
	// PushPullMaxBytes caps a push/pull payload, sent or received. Default 1 MiB; at most
	// 16 MiB. A Reconciler (Store) sends a digest, a few KiB, and the entries that differ
	// follow over the reliable stream; a State that sends full states is cut to this size.
	PushPullMaxBytes int
}

// DefaultConfig returns the defaults documented on each Config field.
func DefaultConfig() Config {
	return Config{
		BindAddr:          "127.0.0.1",
		BindPort:          7946,
		Preset:            PresetLAN,
		Label:             "veloflux",
		QueueSize:         1024,
		PushPullMaxBytes:  1 << 20,
		ReconnectInterval: 10 * time.Second,
		ReconnectTimeout:  6 * time.Hour,
	}
}

// Validate reports every problem at once, each prefixed with its `cluster.*` key path.
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster.%s: "+format, append([]any{path}, args...)...))
	}
	bindIP := net.ParseIP(c.BindAddr)
	if bindIP == nil {
		add("bind_addr", "%q is not an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		add("bind_port", "%d is out of range 0-65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		add("advertise_addr", "%q is not an IP address", c.AdvertiseAddr)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		add("advertise_port", "%d is out of range 0-65535", c.AdvertisePort)
	}
	if c.Preset != PresetLAN && c.Preset != PresetWAN {
		add("preset", "%q is not one of %q, %q", c.Preset, PresetLAN, PresetWAN)
	}
	for i, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			add(fmt.Sprintf("keys[%d]", i), "%d bytes: must be 16, 24 or 32", len(k))
		}
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		add("label", "%d bytes is longer than %d", len(c.Label), memberlist.LabelMaxSize)
	}
	if bindIP != nil && !bindIP.IsLoopback() && len(c.Keys) == 0 && !c.AllowInsecure {
		add("bind_addr", "%s is not loopback and no gossip key is set: set cluster.gossip_key or allow_insecure", c.BindAddr)
	}
	for i, s := range c.Seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			add(fmt.Sprintf("seeds[%d]", i), "%q is not host:port", s)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			add(fmt.Sprintf("seeds[%d]", i), "%q has an invalid port", s)
		}
	}
	if meta := encodeMeta(nodeMeta{Region: c.Region, Version: c.Version, Draining: true}); len(meta) > memberlist.MetaMaxSize {
		add("region", "region and version take %d bytes of node metadata, more than memberlist's %d", len(meta), memberlist.MetaMaxSize)
	}
	if c.QueueSize < 1 {
		add("queue_size", "%d must be at least 1", c.QueueSize)
	}
	if c.ReconnectInterval <= 0 {
		add("reconnect_interval", "%s must be positive", c.ReconnectInterval)
	}
	if c.ReconnectTimeout <= 0 {
		add("reconnect_timeout", "%s must be positive", c.ReconnectTimeout)
	}
	if c.PushPullMaxBytes < 1 || c.PushPullMaxBytes > maxPushPullBytes {
		add("push_pull_max_bytes", "%d is out of range 1-%d", c.PushPullMaxBytes, maxPushPullBytes)
	}
	return errors.Join(errs...)
}

// ParseKey decodes a base64 gossip key (as given in cluster.gossip_key or VFX_GOSSIP_KEY) and
// checks it is an AES-128, -192 or -256 key.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("gossip key: not base64: %w", err)
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("gossip key: %d bytes, must be 16, 24 or 32: %w", len(key), err)
	}
	return key, nil
}
