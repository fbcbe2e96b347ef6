package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/proxy/ratelimit"
)

// Config is the part of the proxy's settings that can change while it runs (Reconfigure).
type Config struct {
	// TrustedProxies are the networks whose X-Forwarded-For, X-Forwarded-Proto,
	// X-Forwarded-Host and X-Request-ID are believed. Default none.
	TrustedProxies []netip.Prefix
	// Retry bounds how failed requests are tried again on another backend.
	Retry RetryConfig
	// Sticky shapes sticky-session cookies for pools that use them.
	Sticky StickyConfig
	// RateLimit limits requests per client IP. Zero RequestsPerSecond and no rules: off.
	RateLimit ratelimit.Config
	// AccessLog logs one line per request at info level. Default true.
	AccessLog bool
	// MaxConnsPerBackend caps the requests in flight to one backend of a pool, and with them
	// the connections it is sent; discovery.Pool.MaxConnsPerBackend overrides it per pool.
	// Requests beyond it wait for a free slot (see BackendQueueTimeout). 0 means no cap.
	// Default 1024, Envoy's default circuit-breaker limit of connections and of requests per
	// cluster: far above what one healthy backend serves at once, low enough that a backend
	// gone slow cannot take every file descriptor of the node with it.
	MaxConnsPerBackend int
	// BackendQueueTimeout is how long a request waits for a free slot of its backend before it
	// is answered 503 (or retried on another backend); the wait also ends with the request.
	// Default 5s: as long as the default backend dial timeout, so a queue never makes a client
	// wait longer than an unreachable backend would.
	BackendQueueTimeout time.Duration
}

// RetryConfig bounds retrying a failed request on another backend: the retry section of the
// config file.
type RetryConfig struct {
	// Attempts is the number of tries per request, the first included. Default 2, 1..10.
	Attempts int `koanf:"attempts"`
	// Timeout: no new attempt starts once this much time has passed since the first began.
	// Default 10s, > 0.
	Timeout time.Duration `koanf:"timeout"`
}

// Validate reports every problem at once, with paths relative to the retry section.
func (r RetryConfig) Validate() error {
	var e fielderr.Errors
	e.Between("attempts", r.Attempts, 1, maxAttempts)
	e.Positive("timeout", r.Timeout)
	return e.Err()
}

// maxAttempts caps Attempts so the per-request record of tried backends stays fixed-size.
const maxAttempts = 10

// TransportConfig tunes the connection pools to backends (one per backend scheme). Fixed
// at New.
type TransportConfig struct {
	// DialTimeout bounds TCP connects to a backend, and separately the TLS handshake with
	// an https backend. Default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a backend's response headers once the request
	// is written; past it the client gets 504 (on the fast client, a connection reused within
	// a 32nd of it keeps the previous head's bound, at least 31/32 of it). Default 30s.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes pooled backend connections idle this long. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost keeps this many idle connections per backend. Default 64.
	MaxIdleConnsPerHost int
	// FastHTTP1 sends requests to plain http backends through proxy/h1client, a pooled
	// HTTP/1.1 client that writes and reads on the request's goroutine, instead of net/http's
	// Transport. https and h2c backends keep net/http's. Default false here; the config file's
	// global.http1_fast_path sets it.
	FastHTTP1 bool
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Retry: RetryConfig{Attempts: 2, Timeout: 10 * time.Second},
		Sticky: StickyConfig{
			CookieName: "vf_session",
			TTL:        time.Hour,
			HTTPOnly:   true,
			SameSite:   SameSiteLax,
		},
		RateLimit:           ratelimit.DefaultConfig(),
		AccessLog:           true,
		MaxConnsPerBackend:  1024,
		BackendQueueTimeout: 5 * time.Second,
	}
}

// withDefaults fills zero fields with their defaults.
func (c TransportConfig) withDefaults() TransportConfig {
	d := DefaultTransportConfig()
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.ResponseHeaderTimeout <= 0 {
		c.ResponseHeaderTimeout = d.ResponseHeaderTimeout
	}
	if c.IdleConnTimeout <= 0 {
		c.IdleConnTimeout = d.IdleConnTimeout
	}
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = d.MaxIdleConnsPerHost
	}
	return c
}

// DefaultTransportConfig returns the defaults documented on each field.
func DefaultTransportConfig() TransportConfig {
	return TransportConfig{
		DialTimeout:           5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   64,
	}
}

// validate checks what the proxy cannot work without. The config package reports the
// same problems with key paths; this guards programmatic use.
func (c Config) validate() error {
	var errs []error
	for _, fe := range fielderr.Prefix("retry", c.Retry.Validate()) {
		errs = append(errs, fe)
	}
	for _, fe := range fielderr.Prefix("sticky", c.Sticky.Validate()) {
		errs = append(errs, fe)
	}
	if c.MaxConnsPerBackend < 0 {
		errs = append(errs, fmt.Errorf("max conns per backend %d: want >= 0", c.MaxConnsPerBackend))
	}
	if c.BackendQueueTimeout <= 0 {
		errs = append(errs, fmt.Errorf("backend queue timeout %v: want > 0", c.BackendQueueTimeout))
	}
	return errors.Join(errs...)
}

func (c Config) rateLimited() bool {
	if c.RateLimit.RequestsPerSecond > 0 {
		return true
	}
	for _, r := range c.RateLimit.Rules {
		if !r.Exempt && r.RequestsPerSecond > 0 {
			return true
		}
	}
	return false
}
