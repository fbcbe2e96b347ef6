package main

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/proxy"
)

// routing merges the snapshots of every discovery source (the static configuration first,
// so it wins name conflicts, then Consul) and feeds the result to the proxy's routing table
// and the health checker's targets.
type routing struct {
	proxy   *proxy.Proxy
	checker *health.Checker
	log     *slog.Logger

	mu        sync.Mutex
	cfg       *config.Config
	static    *discovery.Snapshot
	consul    *discovery.Snapshot
	conflicts []string // last reported, to log a conflict once, not on every change
	// geoEnabled says the proxy has a locator; without one, geo routes are balanced over
	// every region, which is logged once.
	geoEnabled bool
	warnedGeo  bool
}

// setStatic applies a new configuration's static pools. On error nothing changed.
func (r *routing) setStatic(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	prevCfg, prevStatic := r.cfg, r.static
	r.cfg, r.static = cfg, staticSnapshot(cfg)
	if err := r.applyLocked(); err != nil {
		r.cfg, r.static = prevCfg, prevStatic
		return err
	}
	return nil
}

// setConsul is the Consul source's publish callback.
func (r *routing) setConsul(s *discovery.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.consul
	r.consul = s
	if err := r.applyLocked(); err != nil {
		r.consul = prev
		r.log.Error("consul snapshot rejected; the previous routing table keeps serving", "error", err.Error())
	}
}

func (r *routing) applyLocked() error {
	merged, conflicts := discovery.Merge(r.static, r.consul)
	if err := r.proxy.Apply(merged); err != nil {
		return err
	}
	r.checker.SetTargets(healthTargets(merged, r.cfg))
	if !r.geoEnabled && !r.warnedGeo {
		for _, rt := range merged.Routes {
			if rt.Geo != "" && rt.Geo != "off" {
				r.log.Warn("a route asks for geo routing but geo.database is not set: it is balanced over all regions", "pool", rt.Pool, "geo", rt.Geo)
				r.warnedGeo = true
				break
			}
		}
	}
	var msgs []string
	for _, c := range conflicts {
		msgs = append(msgs, c.String())
	}
	if !slices.Equal(msgs, r.conflicts) {
		for _, m := range msgs {
			r.log.Warn("pool defined by several sources", "conflict", m)
		}
		r.conflicts = msgs
	}
	return nil
}

// conflictsNow returns the pool-name conflicts between sources of the table in use.
func (r *routing) conflictsNow() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.conflicts...)
}

// healthTargets lists what the checker probes: every backend with a health path. A static
// pool's health check settings come from its configuration; other pools use the global ones.
// A backend ID listed in several pools is probed once, with the first pool's settings.
func healthTargets(s *discovery.Snapshot, cfg *config.Config) []health.Target {
	pools := make(map[string]config.Pool, len(cfg.Pools))
	for _, p := range cfg.Pools {
		pools[p.Name] = p
	}
	var out []health.Target
	seen := make(map[string]bool)
	for _, p := range s.Pools {
		for _, b := range p.Backends {
			if b.HealthPath == "" || seen[b.ID] {
				continue
			}
			seen[b.ID] = true
			t := health.Target{
				ID: b.ID, Pool: p.Name, Address: b.Address, Path: b.HealthPath,
				Scheme: b.Scheme, TLSSkipVerify: b.TLSSkipVerify, Region: b.Region,
			}
			if cp, ok := pools[p.Name]; ok {
				t.Interval, t.Timeout, t.Fall = cp.HealthCheck.Interval, cp.HealthCheck.Timeout, cp.HealthCheck.Retries
			}
			out = append(out, t)
		}
	}
	return out
}
