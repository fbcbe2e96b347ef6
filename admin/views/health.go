package views

import (
	"time"

	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
)

// healthEntry is one backend in GET /admin/health.
type healthEntry struct {
	Backend string `json:"backend"`
	Pool    string `json:"pool"`
	// Healthy is what the proxy sees: the consensus calls it up, the passive checks have not
	// ejected it here and no operator drained it.
	Healthy bool `json:"healthy"`
	// Why says why the backend takes no traffic; "" when it does.
	Why       string        `json:"why,omitempty"`
	Drained   bool          `json:"drained"`
	Ejected   *ejection     `json:"ejected,omitempty"`
	Consensus consensusView `json:"consensus"`
	// Observers are every node's latest observation of the backend, voting or not.
	Observers []observerView `json:"observers"`
}

type ejection struct {
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"`
}

type consensusView struct {
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
func (c *Controller) ejections() map[string]health.PassiveStatus {
	out := make(map[string]health.PassiveStatus)
	for _, s := range c.p.Passive.Status() {
		if s.Ejected {
			out[s.ID] = s
		}
	}
	return out
}

// Health is GET /admin/health: per backend, whether it takes traffic and why not, with the
// consensus and every observer's latest observation.
func (c *Controller) Health() any {
	verdicts := make(map[string]consensus.BackendStatus)
	for _, s := range c.p.Consensus.Status() {
		verdicts[s.ID] = s
	}
	ejected := c.ejections()
	out := []healthEntry{}
	for _, p := range c.p.Proxy.Pools() {
		for _, b := range p.Backends {
			e := healthEntry{Backend: b.ID, Pool: p.Name, Healthy: b.Healthy, Drained: c.p.Drains.Drained(b.ID),
				Consensus: consensusView{Healthy: true}, Observers: []observerView{}}
			if v, ok := verdicts[b.ID]; ok {
				e.Consensus = consensusView{Healthy: v.Healthy, Probers: v.Probers, Quorum: v.Quorum, Standalone: v.Standalone, Why: v.Why}
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
