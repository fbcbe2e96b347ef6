package main

import (
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
)

// healthView is what the proxy asks about every candidate backend (proxy.HealthView): it takes
// traffic when no operator drained it, the passive checks have not ejected it here and the
// consensus calls it up. All three answer from immutable snapshots. This is not an adapter but
// the one place that composes them; each part stays ignorant of the others.
type healthView struct {
	drains    *gossip.Drains
	passive   *health.Passive
	consensus *consensus.View
}

func (v healthView) Healthy(id string) bool {
	return !v.drains.Drained(id) && !v.passive.Ejected(id) && v.consensus.Healthy(id)
}

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
