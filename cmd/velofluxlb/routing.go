package main

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/proxy"
)

// routing merges the snapshots of every discovery source (the static configuration first,
// so it wins name conflicts, then Consul) and feeds the result to the proxy's routing table,
// the health checks' targets and the passive checks' pools.
type routing struct {
	proxy     *proxy.Proxy
	consensus *consensus.View // hands this node's share of the targets to its checker
	passive   *health.Passive
	pace      *pace.Pacer // steps aside between the parts of an update; nil: never
	log       *slog.Logger
	// onHosts, when set, hears the route hosts of every table applied (the ACME names).
	onHosts func(hosts []string)

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
	r.cfg, r.static = cfg, staticSnapshot(cfg, r.pace)
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
	r.pace.Step()
	if err := r.proxy.Apply(merged); err != nil {
		return err
	}
	r.pace.Step()
	targets := healthTargets(merged, r.cfg, r.pace)
	r.pace.Step()
	r.consensus.SetTargets(targets)
	r.pace.Step()
	if r.onHosts != nil {
		r.onHosts(routeHosts(merged))
	}
	// After the checker, so a backend waiting for a probe finds its new check (or none).
	pools := passivePools(merged, r.cfg)
	r.pace.Step()
	r.passive.SetPools(pools)
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

// healthTargets lists what the checker probes: every backend with a health path, and every
// backend of a tcp check. A static pool's settings come from its configuration (already
// merged with global.health_check); a discovered backend's from its source (Consul tags),
// each setting it leaves out from global.health_check. A backend ID listed in several pools
// is probed once, with the first pool's settings.
func healthTargets(s *discovery.Snapshot, cfg *config.Config, pc *pace.Pacer) []health.Target {
	pools := make(map[string]config.Pool, len(cfg.Pools))
	for _, p := range cfg.Pools {
		pools[p.Name] = p
	}
	var out []health.Target
	seen := make(map[string]bool)
	for _, p := range s.Pools {
		pc.Step()
		for _, b := range p.Backends {
			if seen[b.ID] {
				continue
			}
			own := b.HealthCheck // the backend's own settings: overrides, or its source's (Consul tags)
			t := health.Target{
				ID: b.ID, Pool: p.Name, Address: b.Address, Path: b.HealthPath,
				Scheme: b.Scheme, TLSSkipVerify: b.TLSSkipVerify, TLS: b.TLS, Region: b.Region,
				Method: own.Method, Host: own.Host, ExpectStatus: own.ExpectStatus,
			}
			if cp, ok := pools[p.Name]; ok {
				hc := cp.HealthCheck.Config // global.health_check with the pool's keys on top
				t = hc.Fill(t)
				t.Interval, t.Timeout, t.MaxInterval = hc.Interval, hc.Timeout, hc.MaxInterval
				t.Fall, t.Rise = hc.Fall, hc.Rise
			} else {
				// Durations and counts left at 0 follow the checker's Config, which is
				// global.health_check, also across reloads.
				t.Type = own.Type
				t = cfg.Global.HealthCheck.Fill(t)
				t.Interval, t.Timeout, t.MaxInterval = own.Interval, own.Timeout, own.MaxInterval
				t.Fall, t.Rise = own.Fall, own.Rise
			}
			if !t.Checked() {
				continue // not actively checked
			}
			seen[b.ID] = true
			out = append(out, t)
		}
	}
	return out
}

// passivePools lists every pool for the passive checks, each with its configuration's
// passive settings (already merged with global.passive); discovered pools use global.passive.
func passivePools(s *discovery.Snapshot, cfg *config.Config) []health.PassivePool {
	settings := make(map[string]health.PassiveConfig, len(cfg.Pools))
	for _, p := range cfg.Pools {
		settings[p.Name] = p.Passive
	}
	out := make([]health.PassivePool, 0, len(s.Pools))
	for _, p := range s.Pools {
		ps, ok := settings[p.Name]
		if !ok {
			ps = cfg.Global.Passive
		}
		pp := health.PassivePool{Name: p.Name, Config: ps, Backends: make([]string, 0, len(p.Backends))}
		for _, b := range p.Backends {
			pp.Backends = append(pp.Backends, b.ID)
		}
		out = append(out, pp)
	}
	return out
}
