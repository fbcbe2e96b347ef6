package consul

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Config says how to reach Consul and what to watch. Fields are filled from the config file
// by cmd, which also applies the standard CONSUL_HTTP_* environment (see FromEnv).
type Config struct {
	// Address is the agent's HTTP API, host:port. Default "127.0.0.1:8500".
	Address string
	// Scheme is http or https. Default http.
	Scheme string
	// Token is the ACL token. Secret: never logged, never shown. Default "".
	Token string
	// TokenFile is read for the token when Token is empty. Default "".
	TokenFile string
	// Datacenter is the local datacenter; "" means the agent's own.
	Datacenter string
	// Datacenters are other datacenters whose instances join the same pools, as backends of
	// another region. Default none.
	Datacenters []string
	// TLS configures https to the agent.
	TLS TLSConfig
	// TagPrefix starts every VeloFlux tag and (with "_" for ".") meta key. Default "veloflux".
	TagPrefix string
	// ExposedByDefault routes services without an enable tag. Default false: services opt in
	// with <prefix>.enable=true.
	ExposedByDefault bool
	// AcceptWarning also routes instances whose checks are warning. Default false.
	AcceptWarning bool
	// WaitTime is the longest a blocking query waits. Default 5m.
	WaitTime time.Duration
	// Coalesce is how long the source waits for more changes before publishing one
	// snapshot for a burst. Default 50ms.
	Coalesce time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after errors (exponential, with
	// jitter, reset on success). Defaults 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
}

// TLSConfig is the client TLS setup for an https agent.
type TLSConfig struct {
	CAFile, CertFile, KeyFile, ServerName string
	InsecureSkipVerify                    bool
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
	}
}

// FromEnv applies the standard Consul client variables to c where c leaves a field at its
// default: CONSUL_HTTP_ADDR (with an optional http:// or https:// scheme), CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT,
// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME and CONSUL_HTTP_SSL_VERIFY. environ is in
// os.Environ form; values in the file win over the environment.
func (c Config) FromEnv(environ []string) Config {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CONSUL_") {
			env[k] = v
		}
	}
	d := DefaultConfig()
	if v := env["CONSUL_HTTP_ADDR"]; v != "" && c.Address == d.Address {
		switch {
		case strings.HasPrefix(v, "https://"):
			c.Scheme, v = "https", strings.TrimPrefix(v, "https://")
		case strings.HasPrefix(v, "http://"):
			v = strings.TrimPrefix(v, "http://")
		}
		c.Address = v
	}
	if v := env["CONSUL_HTTP_SSL"]; (v == "true" || v == "1") && c.Scheme == d.Scheme {
		c.Scheme = "https"
	}
	if c.Token == "" && c.TokenFile == "" {
		c.Token, c.TokenFile = env["CONSUL_HTTP_TOKEN"], env["CONSUL_HTTP_TOKEN_FILE"]
	}
	set := func(dst *string, key string) {
		if *dst == "" {
			*dst = env[key]
		}
	}
	set(&c.TLS.CAFile, "CONSUL_CACERT")
	set(&c.TLS.CertFile, "CONSUL_CLIENT_CERT")
	set(&c.TLS.KeyFile, "CONSUL_CLIENT_KEY")
	set(&c.TLS.ServerName, "CONSUL_TLS_SERVER_NAME")
	if v := env["CONSUL_HTTP_SSL_VERIFY"]; v == "false" || v == "0" {
		c.TLS.InsecureSkipVerify = true
	}
	return c
}

// Validate returns every problem at once, each with its config key.
func (c Config) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("discovery.consul.address: required"))
	}
	if c.Scheme != "http" && c.Scheme != "https" {
		errs = append(errs, fmt.Errorf("discovery.consul.scheme: must be http or https, got %q", c.Scheme))
	}
	if c.Token != "" && c.TokenFile != "" {
		errs = append(errs, errors.New("discovery.consul.token_file: set either token or token_file, not both"))
	}
	if c.TagPrefix == "" || strings.ContainsAny(c.TagPrefix, "=. ") {
		errs = append(errs, fmt.Errorf("discovery.consul.tag_prefix: must be a non-empty word without '=', '.' or spaces, got %q", c.TagPrefix))
	}
	for i, dc := range c.Datacenters {
		if dc == "" || dc == c.Datacenter {
			errs = append(errs, fmt.Errorf("discovery.consul.datacenters[%d]: must name another datacenter, got %q", i, dc))
		}
	}
	if c.WaitTime <= 0 || c.Coalesce < 0 || c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("discovery.consul: wait_time and min_backoff must be > 0, coalesce >= 0, max_backoff >= min_backoff"))
	}
	return errors.Join(errs...)
}

// NewClient returns a Consul API client for c. The token (or token file) is sent with every
// request and appears in no error this package returns.
func NewClient(c Config) (*api.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ac := api.DefaultNonPooledConfig() // our own transport: blocking queries hold connections for minutes
	ac.Address = c.Address
	ac.Scheme = c.Scheme
	ac.Datacenter = c.Datacenter
	ac.WaitTime = c.WaitTime
	// DefaultNonPooledConfig also read the process environment; only what c says counts.
	ac.Token, ac.TokenFile, ac.HttpAuth = c.Token, "", nil
	if c.Token == "" && c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("discovery.consul.token_file: %w", err)
		}
		ac.Token = strings.TrimSpace(string(b))
	}
	ac.TLSConfig = api.TLSConfig{
		Address:            c.TLS.ServerName,
		CAFile:             c.TLS.CAFile,
		CertFile:           c.TLS.CertFile,
		KeyFile:            c.TLS.KeyFile,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify,
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return client, nil
}
