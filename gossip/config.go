package gossip

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"

	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/hostrule"
)

// Preset names accepted in Config.Preset. They select memberlist's DefaultLANConfig or
// DefaultWANConfig timings; everything else in Config overrides the preset.
const (
	// PresetLAN suits nodes in one datacenter: fast probes, quick failure detection.
	PresetLAN = "lan"
	// PresetWAN suits nodes across datacenters: slower probes, more tolerance of latency.
	PresetWAN = "wan"
)

// Limits of Config values. They keep a typo from reserving gigabytes; push_pull_max_bytes also
// stays well below the 20 MiB state that memberlist refuses from a peer (maxPushStateBytes in
// its net.go), so that outgrowing it is a clear local error rather than a silent rejection on
// the other node.
const (
	maxQueueSize      = 1_000_000
	minPushPullBytes  = 1 << 10
	maxPushPullBytes  = 16 << 20
	maxEntriesPerKind = 10_000_000
	maxLabelBytes     = 64
)

// Config is the gossip node's configuration in the config file's terms (the cluster section):
// addresses are ip:port and keys are base64. The fields tagged koanf:"-" are set by the program.
type Config struct {
	// Enabled starts the gossip layer. Default false: a single node shares nothing. Only the
	// program reads it; New builds a node either way.
	Enabled bool `koanf:"enabled"`
	// Name is this node's name, unique in the cluster. Default "" = the host name. No spaces
	// or control characters.
	Name string `koanf:"name"`
	// BindAddress is where gossip listens, UDP and TCP, as ip:port. Default "127.0.0.1:7946",
	// so that an unconfigured node never talks to the network. Required when Enabled. The host must be an
	// IP address because memberlist binds an address, not a name; port 0 picks a free port,
	// which tests use.
	BindAddress string `koanf:"bind_address"`
	// AdvertiseAddress is the ip:port peers reach this node at, for NAT and containers.
	// Default "" = derived from BindAddress by memberlist.
	AdvertiseAddress string `koanf:"advertise_address"`
	// Preset is lan or wan (the Preset* constants): memberlist's timings. Default lan.
	// Lower-case.
	Preset string `koanf:"preset"`
	// GossipKey is the base64 (standard encoding) of one AES key of 16, 24 or 32 bytes that
	// encrypts and authenticates gossip. Default "" = clear text, allowed only on loopback
	// unless AllowInsecure. Secret: redacted in logged copies and never echoed in errors.
	GossipKey string `koanf:"gossip_key" redact:"true"`
	// GossipKeys are more keys, in the same form, that this node accepts but does not encrypt
	// with: the staging area of a key rotation (Node.SetKeys applies a new set at runtime).
	// Default none; needs GossipKey. Secret like GossipKey.
	GossipKeys []string `koanf:"gossip_keys" redact:"true"`
	// Label is stamped on every packet; nodes with another label ignore ours, so two clusters
	// that share a network never merge. Default "veloflux"; [A-Za-z0-9._-], 1..64 characters.
	Label string `koanf:"label"`
	// AllowInsecure permits a non-loopback BindAddress without GossipKey. Default false:
	// without a key, anyone who reaches the port can write sessions and health state.
	AllowInsecure bool `koanf:"allow_insecure"`
	// Seeds are host:port addresses of existing members to join; the node keeps retrying,
	// with backoff, until one answers. Default none = this node starts a new cluster.
	Seeds []string `koanf:"seeds"`
	// JoinConsul also finds peers among the nodes registered in Consul. Default false. The
	// program implements it with FindPeers; the config file requires
	// discovery.consul.register.enabled with it, because peers are found through that
	// registration.
	JoinConsul bool `koanf:"join_consul"`
	// QueueSize bounds the incoming message queue between memberlist's callbacks and the
	// State; overflow is dropped and counted. Default 1024 messages, 1..1000000.
	QueueSize int `koanf:"queue_size"`
	// PushPullMaxBytes caps a push/pull payload, sent or received. Default 1048576 (1 MiB),
	// 1024..16777216: memberlist refuses states above 20 MiB from its peers. A Reconciler
	// (Store) sends a digest, a few KiB, and the entries that differ follow over the reliable
	// stream; a State that sends full states is cut to this size.
	PushPullMaxBytes int `koanf:"push_pull_max_bytes"`
	// StoreConfig bounds the replicated store (max_entries_per_kind, tombstone_ttl); its
	// NodeName is Name, set by the program.
	StoreConfig `koanf:",squash"`
	// ReconnectInterval is how often the node tries to rejoin members that left or were
	// declared dead (and its seeds when it is alone): how the two sides of a healed partition
	// find each other. Default 10s, > 0.
	ReconnectInterval time.Duration `koanf:"reconnect_interval"`
	// ReconnectTimeout is how long a departed member is remembered, shown and retried.
	// Default 6h, > 0.
	ReconnectTimeout time.Duration `koanf:"reconnect_timeout"`

	// FindPeers, when set, names more members to try, asked afresh each time this node finds
	// itself alone (at every ReconnectInterval): how nodes that find each other through a
	// registry (Consul) meet even when they all started before any had registered. It must
	// return within a few seconds. Default nil.
	FindPeers func() []string `koanf:"-" json:"-"`
	// Region and Version are gossiped in the node metadata so peers can show them and prefer
	// same-region nodes. Default "".
	Region  string `koanf:"-" json:"-"`
	Version string `koanf:"-" json:"-"`
	// AdminPort, when set, returns the port of this node's admin API, gossiped in the node
	// metadata so that another node's admin API can forward to it (/admin/peers/); 0 gossips
	// none, and peers then try the port they serve on themselves. Asked when the node starts,
	// once every listener is bound. Default nil.
	AdminPort func() int `koanf:"-" json:"-"`

	// tune, when set, adjusts memberlist's configuration after the preset: the package's
	// tests shorten the push/pull interval with it.
	tune func(*memberlist.Config)
}

// DefaultConfig returns the defaults documented on each Config field.
func DefaultConfig() Config {
	return Config{
		BindAddress:       "127.0.0.1:7946",
		Preset:            PresetLAN,
		Label:             "veloflux",
		QueueSize:         1024,
		PushPullMaxBytes:  1 << 20,
		StoreConfig:       DefaultStoreConfig(),
		ReconnectInterval: 10 * time.Second,
		ReconnectTimeout:  6 * time.Hour,
	}
}

// Validate reports every problem at once, with paths relative to the cluster section
// ("bind_address", "gossip_keys[1]"), whether or not the cluster is enabled, so that turning
// it on later never reveals an old mistake. Keys are never shown. The store's node name is
// the program's, and not checked here.
func (c Config) Validate() error {
	var e fielderr.Errors
	if strings.IndexFunc(c.Name, isSpaceOrControl) >= 0 {
		e.Add("name", "must not contain spaces or control characters, got %s", fielderr.Quote(c.Name))
	}
	var bindIP netip.Addr
	if c.BindAddress == "" {
		if c.Enabled {
			e.Add("bind_address", "required when cluster.enabled is true")
		}
	} else if ip, msg := checkAddr(c.BindAddress, 0); msg != "" {
		e.Add("bind_address", "%s", msg)
	} else {
		bindIP = ip
	}
	if c.AdvertiseAddress != "" {
		ip, msg := checkAddr(c.AdvertiseAddress, 1)
		switch {
		case msg != "":
			e.Add("advertise_address", "%s", msg)
		case ip.IsUnspecified():
			e.Add("advertise_address", "%s is not an address peers can reach; advertise one of the node's addresses", ip)
		}
	}
	e.OneOf("preset", c.Preset, PresetLAN, PresetWAN)
	if c.GossipKey != "" {
		if msg := keyProblem(c.GossipKey); msg != "" {
			e.Add("gossip_key", "%s (value not shown: it is secret)", msg)
		}
	}
	for i, k := range c.GossipKeys {
		if msg := keyProblem(k); msg != "" {
			e.Add(fielderr.Index("gossip_keys", i), "%s (value not shown: it is secret)", msg)
		}
	}
	if len(c.GossipKeys) > 0 && c.GossipKey == "" {
		e.Add("gossip_keys", "needs cluster.gossip_key: a node encrypts with gossip_key and only also accepts gossip_keys")
	}
	// Clear-text gossip on a reachable address lets anyone who can send a packet write
	// sessions and backend health, so it must be asked for by name.
	if bindIP.IsValid() && !bindIP.IsLoopback() && c.GossipKey == "" && !c.AllowInsecure {
		e.Add("bind_address", "%s is not a loopback address and cluster.gossip_key is empty: set gossip_key, or allow_insecure: true to accept clear-text gossip from anyone who can reach the port", bindIP)
	}
	switch {
	case c.Label == "":
		e.Add("label", "required")
	case strings.IndexFunc(c.Label, func(r rune) bool { return !isLabelChar(r) }) >= 0:
		e.Add("label", "invalid label %s: use letters, digits, \".\", \"_\" and \"-\" only", fielderr.Quote(c.Label))
	case len(c.Label) > maxLabelBytes:
		e.Add("label", "must be at most %d characters, got %d", maxLabelBytes, len(c.Label))
	}
	for i, seed := range c.Seeds {
		if msg := hostrule.HostPort(seed, 1, true); msg != "" {
			e.Add(fielderr.Index("seeds", i), "%s", msg)
		}
	}
	e.Between("queue_size", c.QueueSize, 1, maxQueueSize)
	e.Between("push_pull_max_bytes", c.PushPullMaxBytes, minPushPullBytes, maxPushPullBytes)
	c.StoreConfig.validateKeys(&e)
	e.Positive("reconnect_interval", c.ReconnectInterval)
	e.Positive("reconnect_timeout", c.ReconnectTimeout)
	return e.Err()
}

// keys decodes GossipKey and GossipKeys, primary first; nil without GossipKey.
func (c Config) keys() ([][]byte, error) {
	if c.GossipKey == "" {
		return nil, nil
	}
	var out [][]byte
	for i, s := range append([]string{c.GossipKey}, c.GossipKeys...) {
		key, err := ParseKey(s)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("cluster.gossip_key: %w", err)
			}
			return nil, fmt.Errorf("cluster.gossip_keys[%d]: %w", i-1, err)
		}
		out = append(out, key)
	}
	return out, nil
}

// checkAddr returns the IP of a gossip address, or why addr is not ip:port. The host must be
// an IP address without a zone, because memberlist binds and advertises addresses, not names.
func checkAddr(addr string, minPort int) (netip.Addr, string) {
	if msg := hostrule.HostPort(addr, minPort, true); msg != "" {
		return netip.Addr{}, msg
	}
	host, _, _ := net.SplitHostPort(addr)
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Sprintf("host must be an IP address (gossip binds and advertises addresses, not names), got %s", fielderr.Quote(host))
	}
	return ip.Unmap(), ""
}

// ParseKey decodes a base64 gossip key (as given in cluster.gossip_key or VFX_GOSSIP_KEY),
// surrounding spaces allowed, and checks it is an AES-128, -192 or -256 key. Its error never
// contains the key.
func ParseKey(s string) ([]byte, error) {
	if msg := keyProblem(s); msg != "" {
		return nil, fmt.Errorf("gossip key %s", msg)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	return key, nil
}

// keyProblem returns why s is not one base64 AES key of 16, 24 or 32 bytes, or "", without
// repeating s.
func keyProblem(s string) string {
	if strings.Contains(s, ",") {
		return "must be a single key; a comma-separated list of keys is not supported"
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return "is not standard base64"
	}
	if memberlist.ValidateKey(key) != nil {
		return fmt.Sprintf("decodes to %d bytes; an AES key is 16, 24 or 32 bytes", len(key))
	}
	return ""
}

// isLabelChar reports whether r may appear in a cluster label: [A-Za-z0-9._-].
func isLabelChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
