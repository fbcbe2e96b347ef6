package main

import (
	"github.com/veloflux/veloflux/gossip"
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
