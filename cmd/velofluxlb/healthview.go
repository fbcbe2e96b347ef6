package main

import (
	"fmt"
	"slices"

	"github.com/veloflux/veloflux/admin"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/proxy"
)

// healthView is what the proxy asks about every candidate backend: it takes traffic when the
// health checks call it up and no operator drained it. Both parts read immutable snapshots.
type healthView struct {
	checks proxy.HealthView
	drains *gossip.Drains
}

func (v healthView) Healthy(id string) bool { return !v.drains.Drained(id) && v.checks.Healthy(id) }

// newDrains keeps backend drains in the cluster's replicated store, so a drain through any
// node holds on all of them; a node without a cluster keeps them in a store of its own.
func newDrains(c *cluster) (*gossip.Drains, error) {
	if c != nil {
		return gossip.NewDrains(c.store, c.node), nil
	}
	sc := gossip.DefaultStoreConfig()
	sc.NodeName = "local"
	st, err := gossip.NewStore(sc, gossip.NewClock(nil, 0))
	if err != nil {
		return nil, err
	}
	return gossip.NewDrains(st, nil), nil
}

// DrainBackend drains or undrains a backend that some pool of the routing table has.
func (c controller) DrainBackend(id string, drained bool) error {
	known := false
	for _, p := range c.a.proxy.Pools() {
		if slices.ContainsFunc(p.Backends, func(b proxy.BackendStatus) bool { return b.ID == id }) {
			known = true
			break
		}
	}
	if !known && drained {
		// Undraining an ID no pool has is allowed: it cleans up after a removed backend.
		return fmt.Errorf("drain %q: %w", id, admin.ErrUnknownBackend)
	}
	return c.a.drains.SetBackend(id, drained)
}

// healthEntry is one backend in GET /admin/health.
type healthEntry struct {
	Backend string `json:"backend"`
	Pool    string `json:"pool"`
	Healthy bool   `json:"healthy"` // what the proxy sees: checks up and not drained
	Drained bool   `json:"drained"`
	// Why says why the backend takes no traffic; "" when it does.
	Why       string `json:"why,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

func (c controller) Health() any {
	out := []healthEntry{}
	checks := c.a.checker.Status()
	for _, p := range c.a.proxy.Pools() {
		for _, b := range p.Backends {
			e := healthEntry{Backend: b.ID, Pool: p.Name, Healthy: b.Healthy, Drained: c.a.drains.Drained(b.ID)}
			if i := slices.IndexFunc(checks, func(s health.TargetStatus) bool { return s.ID == b.ID }); i >= 0 {
				e.LastError = checks[i].LastError
			}
			switch {
			case e.Drained:
				e.Why = "drained by an operator"
			case !e.Healthy:
				e.Why = "failing health checks: " + e.LastError
			}
			out = append(out, e)
		}
	}
	return out
}
