package h2guard

import (
	"errors"
	"fmt"
	"time"
)

// Config sets when a client counts as abusive. A zero field means its default.
type Config struct {
	// MinStreams is how many streams a client must have opened on the connection before it
	// can be judged. Default 500 (Envoy's premature_reset_total_stream_count): below that a
	// ratio of resets says little, and a browser cancelling a page's requests is not closed.
	MinStreams int
	// PrematureWindow: a client's reset of a stream counts as premature when it arrives less
	// than this after the HEADERS frame that opened the stream. Default 1s (Envoy's
	// premature_reset_min_stream_lifetime_seconds): time for a backend request to start,
	// short enough that a user giving up on a slow response is not counted.
	PrematureWindow time.Duration
}

const (
	defaultMinStreams      = 500
	defaultPrematureWindow = time.Second
)

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{MinStreams: defaultMinStreams, PrematureWindow: defaultPrematureWindow}
}

// Validate reports every problem in c at once, each prefixed with its field's key.
func (c Config) Validate() error {
	var errs []error
	if c.MinStreams < 0 {
		errs = append(errs, fmt.Errorf("min_streams: must be >= 0 (0 means %d), got %d", defaultMinStreams, c.MinStreams))
	}
	if c.PrematureWindow < 0 {
		errs = append(errs, fmt.Errorf("premature_window: must be >= 0 (0 means %v), got %v", defaultPrematureWindow, c.PrematureWindow))
	}
	return errors.Join(errs...)
}

// withDefaults replaces fields that are zero, or negative and so rejected by Validate, with
// their defaults: Wrap has no error to return, and a guard must not run without limits.
func (c Config) withDefaults() Config {
	if c.MinStreams <= 0 {
		c.MinStreams = defaultMinStreams
	}
	if c.PrematureWindow <= 0 {
		c.PrematureWindow = defaultPrematureWindow
	}
	return c
}
