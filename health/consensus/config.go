package consensus

import (
	"time"

	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/internal/fielderr"
)

// Config tunes how the cluster shares probing and decides together: the cluster.health section
// of the config file, and the fields tagged koanf:"-" that the program sets.
type Config struct {
	// NodeName is this node's gossip name (gossip.Config.Name): the observer written in its
	// observations and looked up in the member list. Required with a store; without one it only
	// names this node in Status (default "local"). Set by the program.
	NodeName string `koanf:"-" json:"-"`
	// Probers is how many members probe each backend (k); a backend is down when a strict
	// majority of them say so. Default 2, 1..16: the smallest number where no single node
	// decides alone (both must agree) and a prober that dies leaves one vote standing while
	// its share moves.
	Probers int `koanf:"probers"`
	// ObservationTTL is how long an observation counts after it was written; observations are
	// rewritten at half of it while the Checker keeps probing, so a prober that dies or whose
	// checks stop loses its vote on every node at the same moment. Default 0 = max(10 × the
	// target's interval, 60s), so a few slow probes never expire a live vote; >= 0. A set
	// value is raised to 4 × the target's interval for the same reason.
	ObservationTTL time.Duration `koanf:"observation_ttl"`
	// MembershipPoll is how often the member list is read for joins, departures and region
	// changes, the delay before a dead prober's share moves. Default 1s: memberlist takes
	// seconds to declare a node dead, so polling faster gains nothing. Set by the program.
	MembershipPoll time.Duration `koanf:"-" json:"-"`
	// QueueSize bounds the store changes waiting for Run; more are dropped and counted (the
	// consensus is recomputed anyway, only Status may miss an expired observation). Default
	// 1024 changes. Set by the program.
	QueueSize int `koanf:"-" json:"-"`
}

// maxProbers bounds Probers: every prober's observation of every backend is gossiped.
const maxProbers = 16

// DefaultConfig returns the defaults documented on Config; NodeName stays empty.
func DefaultConfig() Config {
	return Config{
		Probers:        2,
		MembershipPoll: time.Second,
		QueueSize:      1024,
	}
}

// Validate returns every problem at once; the keys of the config file have paths relative to
// cluster.health ("probers").
func (c Config) Validate() error {
	var e fielderr.Errors
	if len(c.NodeName) > gossip.MaxNodeBytes {
		e.Add("", "node name: %d bytes, max %d", len(c.NodeName), gossip.MaxNodeBytes)
	}
	e.Between("probers", c.Probers, 1, maxProbers)
	if c.ObservationTTL < 0 {
		e.Add("observation_ttl", "must not be negative (0 picks it from the interval), got %s", c.ObservationTTL)
	}
	if c.MembershipPoll <= 0 {
		e.Add("", "membership poll: must be positive, got %s", c.MembershipPoll)
	}
	if c.QueueSize < 1 {
		e.Add("", "queue size: must be at least 1, got %d", c.QueueSize)
	}
	return e.Err()
}

// ttl is how long an observation lives for a target probed every interval.
func (c Config) ttl(interval time.Duration) time.Duration {
	if c.ObservationTTL > 0 {
		return max(c.ObservationTTL, 4*interval)
	}
	return max(10*interval, time.Minute)
}
