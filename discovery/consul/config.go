package consul

import (
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/hostrule"
)

// Config is the discovery.consul section of the config file: how to reach Consul, what to
// watch, and the registration of VeloFlux itself. The whole section is read once at startup.
type Config struct {
	// Enabled turns on the Consul catalog watch. Default false.
	Enabled bool `koanf:"enabled"`
	// Address is the agent's HTTP API, host:port. Default "127.0.0.1:8500". The config
	// loader fills it, and the scheme, token and tls keys, from Consul's own variables
	// (CONSUL_HTTP_ADDR, ...) when neither the file nor VFX_ sets them.
	Address string `koanf:"address"`
	// Scheme is http or https. Default http.
	Scheme string `koanf:"scheme"`
	// Token is the ACL token. Default "". Secret: redacted in logged copies and never echoed
	// in error messages.
	Token string `koanf:"token" redact:"true"`
	// TokenFile is a file holding the token, read at startup. Default "". Not with Token.
	TokenFile string `koanf:"token_file"`
	// Datacenter is the local datacenter. Default "" = the agent's own.
	Datacenter string `koanf:"datacenter"`
	// Datacenters are other datacenters whose instances join the same pools, as backends of
	// another region. Default none. Distinct, and none of them is Datacenter.
	Datacenters []string  `koanf:"datacenters"`
	TLS         TLSConfig `koanf:"tls"`
	// TagPrefix starts every VeloFlux tag and (with "_" for ".") meta key. Default
	// "veloflux"; [A-Za-z0-9_-]+.
	TagPrefix string `koanf:"tag_prefix"`
	// ExposedByDefault routes services without an enable tag. Default false: services opt in
	// with <prefix>.enable=true.
	ExposedByDefault bool `koanf:"exposed_by_default"`
	// AcceptWarning also routes instances whose checks are warning. Default false.
	AcceptWarning bool `koanf:"accept_warning"`
	// WaitTime is the longest a blocking query waits. Default 5m, 1s..10m: Consul cuts
	// blocking queries at 10m anyway.
	WaitTime time.Duration `koanf:"wait_time"`
	// Coalesce is how long the source waits for more changes before publishing one snapshot
	// for a burst. Default 50ms, 0..10s; above that a change would wait noticeably long.
	Coalesce time.Duration `koanf:"coalesce"`
	// MinBackoff is the first retry delay after a Consul error (exponential, with jitter,
	// reset on success). Default 250ms, > 0.
	MinBackoff time.Duration `koanf:"min_backoff"`
	// MaxBackoff caps the retry delay. Default 30s, >= MinBackoff.
	MaxBackoff time.Duration  `koanf:"max_backoff"`
	Register   RegisterConfig `koanf:"register"`
}

// TLSConfig is the client TLS setup for an https agent. Validation does not open the files.
type TLSConfig struct {
	// CAFile verifies the agent's certificate. Default "" = the system roots.
	CAFile string `koanf:"ca_file"`
	// CertFile is a client certificate, for agents that verify clients. Default "". Set
	// together with KeyFile.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default "". A path, not a secret.
	KeyFile string `koanf:"key_file"`
	// ServerName is the name checked in the agent's certificate. Default "" = the host of
	// Address.
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any agent certificate. Default false.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// RegisterConfig is discovery.consul.register: this node registered as a Consul service with a
// health check (see Registration, which adds what the program knows at start).
type RegisterConfig struct {
	// Enabled registers the node. Default false. Needs Config.Enabled, since the
	// registration uses that connection.
	Enabled bool `koanf:"enabled"`
	// Name is the Consul service name. Default "veloflux"; [A-Za-z0-9-]+ so that it is a
	// valid DNS label in Consul DNS.
	Name string `koanf:"name"`
	// ID is the service instance ID, unique on the agent. Default "" =
	// "<Name>-<hostname>-<Port>", stable across restarts so a restarted node replaces its own
	// entry instead of adding one. No "/", spaces or control characters: it goes into the
	// deregistration URL path.
	ID string `koanf:"id"`
	// Address is the advertised host or IP of the proxy listener, without port. Default "" =
	// the agent's node address.
	Address string `koanf:"address"`
	// Tags are added to the registration. Default none. Non-empty, no control characters.
	Tags []string `koanf:"tags"`
	// CheckInterval is how often Consul checks the node, and how often the registrar asks
	// the agent whether it still holds the registration. Default 5s, > 0. The agent raises
	// check intervals below 1s to 1s; the re-registration poll uses the value as given.
	CheckInterval time.Duration `koanf:"check_interval"`
	// DeregisterCriticalAfter removes the registration once its check has been critical this
	// long, so a crashed node does not linger in the catalog. Default 1m, >= 1m: Consul
	// silently raises shorter values to 1m, so accepting them would promise what never happens.
	DeregisterCriticalAfter time.Duration `koanf:"deregister_critical_after"`
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Address:    "127.0.0.1:8500",
		Scheme:     "http",
		TagPrefix:  "veloflux",
		WaitTime:   5 * time.Minute,
		Coalesce:   50 * time.Millisecond,
		MinBackoff: 250 * time.Millisecond,
		MaxBackoff: 30 * time.Second,
		Register: RegisterConfig{
			Name:                    defaultServiceName,
			CheckInterval:           defaultCheckInterval,
			DeregisterCriticalAfter: defaultDeregisterCriticalAfter,
		},
	}
}

// Limits of the section's durations.
const (
	// maxWaitTime is Consul's default max_query_time: a longer wait is cut to it anyway.
	maxWaitTime = 10 * time.Minute
	minWaitTime = time.Second
	// maxCoalesce keeps a backend change from waiting noticeably long before it is routed.
	maxCoalesce = 10 * time.Second
	// minDeregisterAfter is Consul's floor for deregister_critical_service_after.
	minDeregisterAfter = time.Minute
)

// Validate returns every problem of the section at once, with paths relative to it
// ("address", "register.tags[0]"), whether or not it is enabled, so that turning it on later
// never reveals an old mistake. The token is never shown.
func (c Config) Validate() error {
	var e fielderr.Errors
	switch {
	case c.Address == "":
		e.Add("address", "required")
	case strings.Contains(c.Address, "://"):
		e.Add("address", "must be host:port without a scheme, got %s; set discovery.consul.scheme instead", fielderr.Quote(c.Address))
	default:
		if msg := hostrule.HostPort(c.Address, 1, true); msg != "" {
			e.Add("address", "%s", msg)
		}
	}
	e.OneOf("scheme", c.Scheme, "http", "https")
	// The token goes into a request header.
	if strings.IndexFunc(c.Token, isSpaceOrControl) >= 0 {
		e.Add("token", "must not contain spaces or control characters (value not shown: it is secret)")
	}
	if c.Token != "" && c.TokenFile != "" {
		e.Add("token_file", "set either token or token_file, not both")
	}
	if c.Datacenter != "" && !isDatacenterName(c.Datacenter) {
		e.Add("datacenter", "invalid datacenter %s: Consul datacenter names are lower-case letters, digits, \"-\" and \"_\"", fielderr.Quote(c.Datacenter))
	}
	seen := make(map[string]int, len(c.Datacenters))
	for i, dc := range c.Datacenters {
		path := fielderr.Index("datacenters", i)
		switch j, dup := seen[dc]; {
		case dc == "":
			e.Add(path, "must not be empty")
		case !isDatacenterName(dc):
			e.Add(path, "invalid datacenter %s: Consul datacenter names are lower-case letters, digits, \"-\" and \"_\"", fielderr.Quote(dc))
		case dc == c.Datacenter:
			e.Add(path, "%s is discovery.consul.datacenter; list only other datacenters", fielderr.Quote(dc))
		case dup:
			e.Add(path, "duplicate datacenter %s, also datacenters[%d]", fielderr.Quote(dc), j)
		default:
			seen[dc] = i
		}
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		e.Add("tls.key_file", "required when cert_file is set")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		e.Add("tls.cert_file", "required when key_file is set")
	}
	if c.TLS.ServerName != "" {
		if msg := hostrule.HostOrIP(c.TLS.ServerName); msg != "" {
			e.Add("tls.server_name", "%s", msg)
		}
	}
	switch {
	case c.TagPrefix == "":
		e.Add("tag_prefix", "required")
	case strings.IndexFunc(c.TagPrefix, func(r rune) bool { return !isWordChar(r) }) >= 0:
		e.Add("tag_prefix", "invalid tag prefix %s: use letters, digits, \"_\" and \"-\" only", fielderr.Quote(c.TagPrefix))
	}
	if c.WaitTime < minWaitTime || c.WaitTime > maxWaitTime {
		e.Add("wait_time", "must be between 1s and 10m (Consul cuts longer waits to 10m), got %s", c.WaitTime)
	}
	if c.Coalesce < 0 || c.Coalesce > maxCoalesce {
		e.Add("coalesce", "must be between 0 and 10s, got %s", c.Coalesce)
	}
	e.Positive("min_backoff", c.MinBackoff)
	if c.MinBackoff > 0 && c.MaxBackoff < c.MinBackoff {
		e.Add("max_backoff", "must be >= min_backoff (%s), got %s", c.MinBackoff, c.MaxBackoff)
	}
	if c.Register.Enabled && !c.Enabled {
		e.Add("register.enabled", "requires discovery.consul.enabled: true")
	}
	e = append(e, fielderr.Prefix("register", c.Register.Validate())...)
	return e.Err()
}

// Validate returns every problem of discovery.consul.register, with paths relative to it.
func (r RegisterConfig) Validate() error {
	var e fielderr.Errors
	switch {
	case r.Name == "":
		e.Add("name", "required")
	case strings.IndexFunc(r.Name, func(ch rune) bool { return !isWordChar(ch) || ch == '_' }) >= 0:
		e.Add("name", "invalid service name %s: use letters, digits and \"-\" only (Consul DNS needs a DNS label)", fielderr.Quote(r.Name))
	}
	if strings.ContainsRune(r.ID, '/') || strings.IndexFunc(r.ID, isSpaceOrControl) >= 0 {
		e.Add("id", "must not contain \"/\", spaces or control characters, got %s", fielderr.Quote(r.ID))
	}
	if r.Address != "" {
		if msg := hostrule.HostOrIP(r.Address); msg != "" {
			e.Add("address", "%s", msg)
		} else if a, err := netip.ParseAddr(r.Address); err == nil && a.IsUnspecified() {
			// The agent refuses it, and no client could dial it.
			e.Add("address", "%s is not an address clients can reach; advertise one of the node's addresses", r.Address)
		}
	}
	for i, tag := range r.Tags {
		switch {
		case tag == "":
			e.Add(fielderr.Index("tags", i), "must not be empty")
		case strings.IndexFunc(tag, unicode.IsControl) >= 0:
			e.Add(fielderr.Index("tags", i), "must not contain control characters, got %s", fielderr.Quote(tag))
		}
	}
	e.Positive("check_interval", r.CheckInterval)
	if r.DeregisterCriticalAfter < minDeregisterAfter {
		e.Add("deregister_critical_after", "must be at least 1m (Consul raises shorter values to 1m), got %s", r.DeregisterCriticalAfter)
	}
	return e.Err()
}

// isWordChar reports whether r may appear in a tag prefix: [A-Za-z0-9_-].
func isWordChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// isDatacenterName reports whether s is a valid Consul datacenter name. Consul lower-cases the
// agent's datacenter and accepts only [a-z0-9_-], and a query for any other spelling finds no
// datacenter at runtime, so the mistake is caught before.
func isDatacenterName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !isWordChar(r) || unicode.IsUpper(r) }) < 0
}
