package main

import (
	"fmt"
	"slices"
	"time"

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
	// Healthy is what the proxy sees: the consensus calls it up, the passive checks have not
	// ejected it here and no operator drained it.
	Healthy bool `json:"healthy"`
	// Why says why the backend takes no traffic; "" when it does.
	Why       string    `json:"why,omitempty"`
	Drained   bool      `json:"drained"`
	Ejected   *ejection `json:"ejected,omitempty"`
	Consensus consensus `json:"consensus"`
	// Observers are every node's latest observation of the backend, voting or not.
	Observers []observerView `json:"observers"`
}

type ejection struct {
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"`
}

type consensus struct {
	Healthy    bool     `json:"healthy"`
	Probers    []string `json:"probers"`
	Quorum     int      `json:"quorum"`
	Standalone bool     `json:"standalone"`
	Why        string   `json:"why,omitempty"`
}

type observerView struct {
	Node        string    `json:"node"`
	Source      string    `json:"source"`
	Healthy     bool      `json:"healthy"`
	LastProbeOK bool      `json:"last_probe_ok"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
	Expires     time.Time `json:"expires,omitzero"`
	Fresh       bool      `json:"fresh"`
	Voting      bool      `json:"voting"`
}

// ejections are the backends the passive checks eject on this node now, by ID.
func (c controller) ejections() map[string]health.PassiveStatus {
	out := make(map[string]health.PassiveStatus)
	for _, s := range c.a.passive.Status() {
		if s.Ejected {
			out[s.ID] = s
		}
	}
	return out
}

func (c controller) Health() any {
	verdicts := make(map[string]health.BackendStatus)
	for _, s := range c.a.consensus.Status() {
		verdicts[s.ID] = s
	}
	ejected := c.ejections()
	out := []healthEntry{}
	for _, p := range c.a.proxy.Pools() {
		for _, b := range p.Backends {
			e := healthEntry{Backend: b.ID, Pool: p.Name, Healthy: b.Healthy, Drained: c.a.drains.Drained(b.ID),
				Consensus: consensus{Healthy: true}, Observers: []observerView{}}
			if v, ok := verdicts[b.ID]; ok {
				e.Consensus = consensus{Healthy: v.Healthy, Probers: v.Probers, Quorum: v.Quorum, Standalone: v.Standalone, Why: v.Why}
				for _, o := range v.Observers {
					e.Observers = append(e.Observers, observerView{Node: o.Node, Source: o.Source.String(), Healthy: o.Healthy,
						LastProbeOK: o.LastProbeOK, Reason: o.Reason, At: o.At, Expires: o.Expires, Fresh: o.Fresh, Voting: o.Voting})
				}
			}
			if x, ok := ejected[b.ID]; ok {
				e.Ejected = &ejection{Reason: x.Reason, Until: x.Until}
			}
			switch {
			case e.Drained:
				e.Why = "drained by an operator"
			case e.Ejected != nil:
				e.Why = "ejected by passive checks on this node: " + e.Ejected.Reason
			case !e.Consensus.Healthy:
				e.Why = e.Consensus.Why
			}
			out = append(out, e)
		}
	}
	return out
}
