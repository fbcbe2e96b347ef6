package health

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the active checks. It can be changed while running with Checker.SetConfig.
type Config struct {
	// Interval is the time between the end of one probe of a target and the start of its
	// next one. Default 10s. Config key: global.health_check.interval; Target.Interval
	// overrides it (pools[].health_check.interval).
	Interval time.Duration
	// Timeout bounds one probe: dial, request, response headers and the drained body.
	// Default 5s. Config key: global.health_check.timeout; Target.Timeout overrides it
	// (pools[].health_check.timeout).
	Timeout time.Duration
	// Fall is how many consecutive failed probes take a healthy target down. Default 3.
	// Config key: global.health_check.retries; Target.Fall overrides it
	// (pools[].health_check.retries).
	Fall int
	// Rise is how many consecutive successful probes bring a down target back. Default 2.
	// Config key: global.health_check.rise; Target.Rise overrides it (pools[].health_check.rise).
	Rise int
	// MaxInterval caps the backoff of a down target: each failed probe after it went down
	// doubles the time to its next probe, up to MaxInterval; its first successful probe
	// brings it back to Interval. Default 60s; 0 turns backoff off, anything else must be
	// >= Interval. Config key: global.health_check.max_interval; Target.MaxInterval
	// overrides it (pools[].health_check.max_interval).
	MaxInterval time.Duration
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
		MaxInterval: 60 * time.Second,
	}
}

// Validate returns every problem with c at once, each prefixed with its config key.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("global.health_check.interval: must be positive, got %s", c.Interval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("global.health_check.timeout: must be positive, got %s", c.Timeout))
	}
	if c.Fall < 1 {
		errs = append(errs, fmt.Errorf("global.health_check.retries: must be at least 1, got %d", c.Fall))
	}
	if c.Rise < 1 {
		errs = append(errs, fmt.Errorf("global.health_check.rise: must be at least 1, got %d", c.Rise))
	}
	if c.MaxInterval != 0 && c.MaxInterval < c.Interval {
		errs = append(errs, fmt.Errorf("global.health_check.max_interval: must be 0 (no backoff) or at least interval (%s), got %s", c.Interval, c.MaxInterval))
	}
	return errors.Join(errs...)
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
