package proxy

import "github.com/veloflux/veloflux/discovery"

// BackendStatus is one backend as the admin API shows it.
type BackendStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Scheme is how the proxy reaches the backend: http, https or h2c.
	Scheme  string `json:"scheme"`
	Region  string `json:"region,omitempty"`
	Weight  int    `json:"weight"`
	Healthy bool   `json:"healthy"`
	Active  int64  `json:"active_connections"`
}

// PoolStatus is one pool as the admin API shows it.
type PoolStatus struct {
	Name      string          `json:"name"`
	Algorithm string          `json:"algorithm"`
	Sticky    bool            `json:"sticky_sessions"`
	Healthy   int             `json:"healthy_backends"`
	Backends  []BackendStatus `json:"backends"`
}

// Pools reports the pools of the table in use.
func (p *Proxy) Pools() []PoolStatus {
	t := p.table.Load()
	out := make([]PoolStatus, 0, len(t.pools))
	for _, pl := range t.pools {
		ps := PoolStatus{Name: pl.name, Algorithm: pl.algorithm, Sticky: pl.sticky, Backends: make([]BackendStatus, 0, len(pl.backends))}
		for _, u := range pl.backends {
			up := p.health.Healthy(u.id)
			if up {
				ps.Healthy++
			}
			ps.Backends = append(ps.Backends, BackendStatus{
				ID: u.id, Address: u.address, Scheme: u.scheme.String(), Region: u.Region(), Weight: u.lb.Weight(), Healthy: up, Active: u.lb.Active(),
			})
		}
		out = append(out, ps)
	}
	return out
}

// Routes reports the routes of the table in use, in configuration order.
func (p *Proxy) Routes() []discovery.Route {
	return append([]discovery.Route(nil), p.table.Load().routes...)
}

// TableVersion is the version of the table in use; it grows by one with every Apply.
func (p *Proxy) TableVersion() uint64 { return p.table.Load().version }
