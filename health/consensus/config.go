package consensus

import (
	"errors"
	"fmt"
	"time"

	"github.com/veloflux/veloflux/gossip"
)

// Config tunes how the cluster shares probing and decides together.
type Config struct {
	// NodeName is this node's gossip name (gossip.Config.Name): the observer written in its
	// observations and looked up in the member list. Required with a store; without one it only
	// names this node in Status (default "local").
	NodeName string
	// Probers is how many members probe each backend (k). Default 2: the smallest number where
	// no single node decides alone (quorum is a strict majority, so both must agree) and a
	// prober that dies leaves one vote standing while its share moves.
	Probers int
	// ObservationTTL is how long an observation counts after it was written; observations are
	// rewritten at half of it while the Checker keeps probing, so a prober that dies or whose
	// checks stop loses its vote on every node at the same moment. Default 0: max(10 × the
	// target's interval, 60s), as the Checker applies it, so a few slow probes never expire a
	// live vote. A set value is raised to 4 × the target's interval for the same reason.
	ObservationTTL time.Duration
	// MembershipPoll is how often the member list is read for joins, departures and region
	// changes, the delay before a dead prober's share moves. Default 1s: memberlist takes
	// seconds to declare a node dead, so polling faster gains nothing.
	MembershipPoll time.Duration
	// QueueSize bounds the store changes waiting for Run; more are dropped and counted (the
	// consensus is recomputed anyway, only Status may miss an expired observation). Default
	// 1024 changes.
	QueueSize int
}

// DefaultConfig returns the defaults documented on Config; NodeName stays empty.
func DefaultConfig() Config {
	return Config{
		Probers:        2,
		MembershipPoll: time.Second,
		QueueSize:      1024,
	}
}

// Validate returns every problem at once, each prefixed with its config key.
func (c Config) Validate() error {
	var errs []error
	if len(c.NodeName) > gossip.MaxNodeBytes {
		errs = append(errs, fmt.Errorf("cluster.name: %d bytes, max %d", len(c.NodeName), gossip.MaxNodeBytes))
	}
	if c.Probers < 1 {
		errs = append(errs, fmt.Errorf("cluster.health.probers: must be at least 1, got %d", c.Probers))
	}
	if c.ObservationTTL < 0 {
		errs = append(errs, fmt.Errorf("cluster.health.observation_ttl: must not be negative, got %s", c.ObservationTTL))
	}
	if c.MembershipPoll <= 0 {
		errs = append(errs, fmt.Errorf("cluster.health.membership_poll: must be positive, got %s", c.MembershipPoll))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("cluster.health.queue_size: must be at least 1, got %d", c.QueueSize))
	}
	return errors.Join(errs...)
}

// ttl is how long an observation lives for a target probed every interval.
func (c Config) ttl(interval time.Duration) time.Duration {
	if c.ObservationTTL > 0 {
		return max(c.ObservationTTL, 4*interval)
	}
	return max(10*interval, time.Minute)
}
