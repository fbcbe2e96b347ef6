package health

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/veloflux/veloflux/health/statusset"
	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/hostrule"
)

// Config tunes the active checks: the global.health_check section of the config file, and,
// with a path beside it, a pool's health_check (which inherits every key it leaves out from
// the global section). It can be changed while running with Checker.SetConfig.
type Config struct {
	// Interval is the time between the end of one probe of a target and the start of its
	// next one. Default 10s, > 0. Target.Interval overrides it.
	Interval time.Duration `koanf:"interval"`
	// Timeout bounds one probe: dial, request, response headers and the drained body.
	// Default 5s, > 0 and, in the file, <= Interval. Target.Timeout overrides it.
	Timeout time.Duration `koanf:"timeout"`
	// Fall is how many consecutive failed probes take a healthy target down (the file's
	// retries, and its name in the admin API's view of the configuration). Default 3, >= 1.
	// Target.Fall overrides it.
	Fall int `koanf:"retries" json:"Retries"`
	// Rise is how many consecutive successful probes bring a down target back. Default 2,
	// >= 1. Target.Rise overrides it.
	Rise int `koanf:"rise"`
	// MaxInterval caps the backoff of a down target: each failed probe after it went down
	// doubles the time to its next probe, up to MaxInterval; its first successful probe
	// brings it back to Interval. Default 60s. In the file >= Interval, and equal to it turns
	// backoff off; the Checker also takes 0 for that. Target.MaxInterval overrides it.
	MaxInterval time.Duration `koanf:"max_interval"`

	// Type, Method, Host and ExpectStatus are the probe's defaults for the targets that leave
	// them empty. They are part of what identifies a target, so the Checker does not apply
	// them itself: Fill writes them into a target before SetTargets.

	// Type is TypeHTTP or TypeTCP. Default http.
	Type string `koanf:"type"`
	// Method is the HTTP method of the probe, an RFC 9110 token such as GET or HEAD. Default
	// GET. Case-sensitive, as methods are.
	Method string `koanf:"method"`
	// Host is the Host header of the probe, host or host:port. Default "" = the target's
	// address.
	Host string `koanf:"host"`
	// ExpectStatus lists the statuses that pass, codes and ranges in statusset syntax
	// ("200-299,301"). Default statusset.Default, 200-399.
	ExpectStatus string `koanf:"expect_status"`
}

// DefaultConfig returns the settings used when the config file says nothing.
func DefaultConfig() Config {
	return Config{
		Interval: 10 * time.Second, // 3 misses take ~30s to notice a dead backend, cheap at 1000s of targets
		Timeout:  5 * time.Second,  // far above a healthy backend's latency: slower than this is broken for clients too
		Fall:     3,                // one dropped packet or GC pause must not take a backend out
		Rise:     2,                // a flapping backend has to prove itself twice before it gets traffic back
		// A dead backend costs one probe a minute instead of six, and one that comes back
		// is noticed within a minute at worst.
		MaxInterval:  60 * time.Second,
		Type:         TypeHTTP,
		Method:       http.MethodGet,
		ExpectStatus: statusset.Default,
	}
}

// Validate returns every problem with c at once, with paths relative to the health_check
// section. It holds the file's rules, which are stricter than what the Checker runs with
// (validateRun): a probe timeout above the interval would stretch the interval the operator
// wrote, and a max_interval below it reads as a typo rather than as no backoff.
func (c Config) Validate() error {
	e := c.validateCounts()
	if c.Timeout > 0 && c.Interval > 0 && c.Timeout > c.Interval {
		e.Add("timeout", "must not exceed interval (%s), got %s", c.Interval, c.Timeout)
	}
	if c.Interval > 0 && c.MaxInterval < c.Interval {
		e.Add("max_interval", "must be at least interval (%s), got %s", c.Interval, c.MaxInterval)
	}
	e.OneOf("type", c.Type, TypeHTTP, TypeTCP)
	if c.Method == "" {
		e.Add("method", "must be an HTTP method such as GET or HEAD, got %s", fielderr.Quote(c.Method))
	}
	if c.ExpectStatus == "" {
		_, err := statusset.Parse("")
		e.Add("expect_status", "%s", err)
	}
	e = append(e, ValidateProbe(c.Method, c.Host, c.ExpectStatus)...)
	return e.Err()
}

// validateRun is what NewChecker and SetConfig refuse: what the Checker cannot run with.
func (c Config) validateRun() error {
	e := c.validateCounts()
	if c.MaxInterval != 0 && c.MaxInterval < c.Interval {
		e.Add("max_interval", "must be 0 (no backoff) or at least interval (%s), got %s", c.Interval, c.MaxInterval)
	}
	return e.Err()
}

// validateCounts checks the durations and counts both rule sets share.
func (c Config) validateCounts() fielderr.Errors {
	var e fielderr.Errors
	e.Positive("interval", c.Interval)
	e.Positive("timeout", c.Timeout)
	e.AtLeast("retries", c.Fall, 1)
	e.AtLeast("rise", c.Rise, 1)
	return e
}

// ValidateProbe checks the HTTP probe settings that a pool or a backend may override, with
// paths relative to their health_check section; "" is valid for each (the default applies).
func ValidateProbe(method, host, expectStatus string) fielderr.Errors {
	var e fielderr.Errors
	if method != "" && !isToken(method) {
		e.Add("method", "must be an HTTP method such as GET or HEAD, got %s", fielderr.Quote(method))
	}
	if host != "" {
		// The Host header takes what a route host takes, less the wildcard.
		msg := hostrule.Route(host)
		if msg == "" && strings.HasPrefix(host, "*.") {
			msg = fmt.Sprintf("invalid host %s: a Host header cannot be a wildcard", fielderr.Quote(host))
		}
		if msg != "" {
			e.Add("host", "%s", msg)
		}
	}
	if expectStatus != "" {
		if _, err := statusset.Parse(expectStatus); err != nil {
			e.Add("expect_status", "%s", err)
		}
	}
	return e
}

// Fill returns t with the probe defaults of c (Type, Method, Host, ExpectStatus) written
// into the fields t leaves empty.
func (c Config) Fill(t Target) Target {
	t.Type = cmp.Or(t.Type, c.Type)
	t.Method = cmp.Or(t.Method, c.Method)
	t.Host = cmp.Or(t.Host, c.Host)
	t.ExpectStatus = cmp.Or(t.ExpectStatus, c.ExpectStatus)
	return t
}

// forTarget is c with t's overrides applied: the settings that schedule and judge t.
func (c Config) forTarget(t Target) Config {
	if t.Interval > 0 {
		c.Interval = t.Interval
	}
	if t.Timeout > 0 {
		c.Timeout = t.Timeout
	}
	if t.Fall > 0 {
		c.Fall = t.Fall
	}
	if t.Rise > 0 {
		c.Rise = t.Rise
	}
	if t.MaxInterval > 0 {
		c.MaxInterval = t.MaxInterval
	}
	// No backoff (0), or a target's own interval above the Checker's cap: the interval
	// stays as it is rather than being shortened to the cap.
	c.MaxInterval = max(c.MaxInterval, c.Interval)
	return c
}
