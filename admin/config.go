package admin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Config configures the admin API. Start from DefaultConfig; New rejects a Config that fails
// Validate. Only Address is a config-file key; the credentials come from the environment and
// the lockout and shutdown settings are fixed by cmd, so Validate names those by field.
type Config struct {
	// Address is the TCP listen address. Default "127.0.0.1:9000": the API can drain the node,
	// so by default only the host itself can reach it. Config key: global.admin_address.
	Address string
	// User and Password are the basic-auth credentials; both set or both empty. Both empty
	// turns authentication off, which is allowed only on a loopback Address. cmd fills them
	// from VF_ADMIN_USER and VF_ADMIN_PASS so they never sit in the config file. Default empty.
	User, Password string
	// MaxFailures is how many bad-credential attempts one client IP may make before it is
	// locked out. Requests without credentials are not attempts and do not count. Default 5.
	MaxFailures int
	// Lockout is how long the first lockout lasts; each further bad attempt after it doubles
	// the lockout, up to MaxLockout. Default 1s.
	Lockout time.Duration
	// MaxLockout caps the doubling. Default 5m.
	MaxLockout time.Duration
	// TrackedClients bounds the failure table; beyond it the client least recently heard
	// from is forgotten, lockout included. Default 10000.
	TrackedClients int
	// ShutdownTimeout bounds how long Serve waits for in-flight requests after its context
	// ends before it closes their connections. Default 5s.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the settings used when the config file says nothing.
func DefaultConfig() Config {
	return Config{
		Address:         "127.0.0.1:9000", // loopback: no credentials needed, nothing exposed
		MaxFailures:     5,                // room for a few typos before anyone is locked out
		Lockout:         time.Second,      // a typo costs a second; a guesser's cost doubles from there
		MaxLockout:      5 * time.Minute,  // caps guessing at ~12 tries an hour without locking an operator out for long
		TrackedClients:  10000,            // a few MB at most; an attacker with more IPs than this can outrun any per-IP table
		ShutdownTimeout: 5 * time.Second,  // admin requests are small; anything slower is stuck
	}
}

// Validate returns every problem with c at once, each prefixed with the config key,
// environment variable or field it is about.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("global.admin_address: %w", err))
	}
	hasUser, hasPass := c.User != "", c.Password != ""
	switch {
	case hasUser && !hasPass:
		errs = append(errs, errors.New("VF_ADMIN_PASS: empty while VF_ADMIN_USER is set; set both or neither"))
	case hasPass && !hasUser:
		errs = append(errs, errors.New("VF_ADMIN_USER: empty while VF_ADMIN_PASS is set; set both or neither"))
	case !hasUser && !hasPass && !isLoopbackAddress(c.Address):
		errs = append(errs, fmt.Errorf("global.admin_address: %q is not a loopback address; set VF_ADMIN_USER and VF_ADMIN_PASS to serve the admin API beyond this host", c.Address))
	}
	if c.MaxFailures < 1 {
		errs = append(errs, fmt.Errorf("admin.MaxFailures: must be at least 1, got %d", c.MaxFailures))
	}
	if c.Lockout <= 0 {
		errs = append(errs, fmt.Errorf("admin.Lockout: must be positive, got %s", c.Lockout))
	}
	if c.MaxLockout < c.Lockout {
		errs = append(errs, fmt.Errorf("admin.MaxLockout: must be at least admin.Lockout (%s), got %s", c.Lockout, c.MaxLockout))
	}
	if c.TrackedClients < 1 {
		errs = append(errs, fmt.Errorf("admin.TrackedClients: must be at least 1, got %d", c.TrackedClients))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("admin.ShutdownTimeout: must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// isLoopbackAddress reports whether a listen address binds to loopback only. An empty host
// binds every interface, and a hostname other than localhost could resolve anywhere, so both
// count as exposed.
func isLoopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return isLoopbackHost(host)
}

// isLoopbackHost reports whether host (no port, no brackets) names this machine's loopback.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
