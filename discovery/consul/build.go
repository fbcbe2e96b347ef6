package consul

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery"
)

// defaultAlgorithm is what a pool uses when none of its instances names one.
const defaultAlgorithm = "round_robin"

// instance is one routed Consul service instance, parsed and ready to build a snapshot from.
type instance struct {
	ID      string // "<dc>/<node>/<serviceID>": unique across datacenters, stable across restarts
	Address string // host:port
	// Healthy is false when a check is not passing (or warning, with AcceptWarning). The
	// instance still lends its pool settings and routes, so a pool whose backends are all
	// failing stays routed and answers 503 rather than vanishing.
	Healthy  bool
	Settings settings // Pool is filled in
}

// entryFilter turns Consul health entries into instances.
type entryFilter struct {
	tags             tagParser
	exposedByDefault bool
	acceptWarning    bool
}

// instances converts the entries of one service in datacenter dc. Instances that opted out
// (enable=false, or no enable tag when not exposed by default) are skipped silently; those with
// a tag error that drops them are skipped with the error. Both results are sorted.
func (f entryFilter) instances(dc string, entries []*api.ServiceEntry) ([]instance, []TagError) {
	var out []instance
	var errs []TagError
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Node == nil {
			continue
		}
		svc := e.Service
		s, probs := f.tags.parse(svc.Tags, svc.Meta)
		if s.Enable == enableFalse || s.Enable == enableUnset && !f.exposedByDefault {
			continue
		}
		drop := false
		report := func(tag string, meta bool, msg string) {
			errs = append(errs, TagError{Service: svc.Service, Instance: svc.ID, Node: e.Node.Node,
				Datacenter: dc, Tag: tag, Meta: meta, Msg: msg})
		}
		for _, p := range probs {
			report(p.Tag, p.Meta, p.Msg)
			drop = drop || p.Drop
		}
		if s.Pool == "" {
			if err := checkPoolName(svc.Service); err != nil {
				report("", false, fmt.Sprintf("service name %v, as a pool name; set %s%s=<name>", err, f.tags.tagStart, keyPool))
				drop = true
			}
			s.Pool = svc.Service
		}
		if svc.Port < 1 || svc.Port > 65535 {
			report("", false, fmt.Sprintf("port %d: the instance has no usable port", svc.Port))
			drop = true
		}
		host := svc.Address
		if host == "" {
			host = e.Node.Address
		}
		if host == "" {
			report("", false, "neither the service nor its node has an address")
			drop = true
		}
		if drop {
			continue
		}
		if s.Region == "" {
			s.Region = dc
		}
		out = append(out, instance{
			ID:       dc + "/" + e.Node.Node + "/" + svc.ID,
			Address:  net.JoinHostPort(host, strconv.Itoa(svc.Port)),
			Healthy:  checksPass(e.Checks, f.acceptWarning),
			Settings: s,
		})
	}
	slices.SortFunc(out, func(a, b instance) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(errs, compareTagErrors)
	return out, errs
}

// checksPass reports whether an instance may take traffic: every check, node checks
// included, is passing (or warning, when accepted). Maintenance mode is a critical check
// (_node_maintenance, _service_maintenance), so it excludes the instance; an instance with
// no checks at all passes, as Consul's own ?passing filter treats it.
func checksPass(checks api.HealthChecks, acceptWarning bool) bool {
	for _, c := range checks {
		switch {
		case c == nil:
		case c.Status == api.HealthPassing:
		case c.Status == api.HealthWarning && acceptWarning:
		default:
			return false
		}
	}
	return true
}

// buildSnapshot forms pools and routes from the instances of every datacenter. The result
// depends only on the set of instances, not their order, so equal catalogs give DeepEqual
// snapshots. conflicts lists settings that lost, sorted.
func buildSnapshot(insts []instance) (snap *discovery.Snapshot, conflicts []string) {
	sorted := slices.Clone(insts)
	slices.SortStableFunc(sorted, func(a, b instance) int { return cmp.Compare(a.ID, b.ID) })

	// routeOwner is the instance with the lowest ID among those declaring a route in a pool:
	// its strip_prefix and geo are the route's.
	type routeOwner struct {
		strip bool
		geo   string
		id    string
	}
	type poolAcc struct {
		pool   discovery.Pool
		first  string // ID of the instance whose settings the pool uses
		routes map[routeSpec]routeOwner
	}
	pools := make(map[string]*poolAcc)
	for i, in := range sorted {
		if i > 0 && sorted[i-1].ID == in.ID {
			continue // the same datacenter reached twice (its name also in Datacenters)
		}
		s := in.Settings
		algo := cmp.Or(s.Algorithm, defaultAlgorithm)
		acc := pools[s.Pool]
		if acc == nil {
			acc = &poolAcc{
				pool:   discovery.Pool{Name: s.Pool, Algorithm: algo, Sticky: s.Sticky},
				first:  in.ID,
				routes: make(map[routeSpec]routeOwner),
			}
			pools[s.Pool] = acc
		} else {
			if algo != acc.pool.Algorithm {
				conflicts = append(conflicts, fmt.Sprintf("pool %q: algorithm %q of %s differs from %q of %s, which wins",
					s.Pool, algo, in.ID, acc.pool.Algorithm, acc.first))
			}
			if s.Sticky != acc.pool.Sticky {
				conflicts = append(conflicts, fmt.Sprintf("pool %q: sticky %t of %s differs from %t of %s, which wins",
					s.Pool, s.Sticky, in.ID, acc.pool.Sticky, acc.first))
			}
		}
		for _, r := range s.Routes {
			o, ok := acc.routes[r]
			if !ok {
				acc.routes[r] = routeOwner{strip: s.StripPrefix, geo: s.Geo, id: in.ID}
				continue
			}
			if o.strip != s.StripPrefix {
				conflicts = append(conflicts, fmt.Sprintf("pool %q: strip_prefix %t of %s for route %q differs from %t of %s, which wins",
					s.Pool, s.StripPrefix, in.ID, r.String(), o.strip, o.id))
			}
			if o.geo != s.Geo {
				conflicts = append(conflicts, fmt.Sprintf("pool %q: geo %q of %s for route %q differs from %q of %s, which wins",
					s.Pool, geoName(s.Geo), in.ID, r.String(), geoName(o.geo), o.id))
			}
		}
		if in.Healthy {
			acc.pool.Backends = append(acc.pool.Backends, discovery.Backend{
				ID:          in.ID,
				Address:     in.Address,
				Weight:      s.Weight,
				Region:      s.Region,
				HealthPath:  s.HealthPath,
				HealthCheck: s.Health,
				Scheme:      s.Protocol,
			})
		}
	}

	snap = &discovery.Snapshot{Source: "consul"}
	names := make([]string, 0, len(pools))
	for name := range pools {
		names = append(names, name)
	}
	slices.Sort(names)
	claimed := make(map[routeSpec]string)
	for _, name := range names {
		acc := pools[name]
		snap.Pools = append(snap.Pools, acc.pool)
		keys := make([]routeSpec, 0, len(acc.routes))
		for r := range acc.routes {
			keys = append(keys, r)
		}
		slices.SortFunc(keys, compareRoutes)
		for _, r := range keys {
			if other, ok := claimed[r]; ok {
				conflicts = append(conflicts, fmt.Sprintf("route %q: claimed by pools %q and %q; %q wins", r.String(), other, name, other))
				continue
			}
			claimed[r] = name
			o := acc.routes[r]
			snap.Routes = append(snap.Routes, discovery.Route{
				Host: r.Host, PathPrefix: r.PathPrefix, StripPrefix: o.strip, Pool: name, Geo: o.geo,
			})
		}
	}
	slices.SortFunc(snap.Routes, func(a, b discovery.Route) int {
		return compareRoutes(routeSpec{a.Host, a.PathPrefix}, routeSpec{b.Host, b.PathPrefix})
	})
	slices.Sort(conflicts)
	return snap, conflicts
}

// geoName is how a conflict message names a geo mode: "off" rather than the "" it is stored as.
func geoName(g string) string { return cmp.Or(g, "off") }

func compareRoutes(a, b routeSpec) int {
	return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.PathPrefix, b.PathPrefix))
}
