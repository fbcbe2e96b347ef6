package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/backendtls"
	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/proxy/balance"
)

// upstream is the long-lived state of one backend of one pool. It is keyed by pool and
// backend ID and survives table rebuilds, so connection counts and balancing state are not
// reset by a reload or a discovery change. How it is reached (address, scheme, TLS
// verification) is read by requests without locks, so it never changes: a change under the
// same ID makes a new upstream.
type upstream struct {
	lb         balance.Backend // must not be copied
	key        string          // pool + "/" + id
	id         string
	pool       string
	address    string
	scheme     scheme
	skipVerify bool                // https only: accept any certificate
	tls        backendtls.Settings // https only: the pool's tls settings
	// custom is the transport of an https backend with tls settings beyond skipVerify; nil
	// for the shared transports.
	custom *http.Transport
	region atomic.Pointer[regionName] // may change with discovery; read by status and geo routing
	conns  connSlots                  // bounds the requests in flight to it; must not be copied
	// maxConns is the pool's discovery.Pool.MaxConnsPerBackend, 0 for Config's. Written and
	// read under Proxy.mu only: requests read the cap from conns.
	maxConns int
	tags     tagCache // its sticky-cookie tag under the current cookie signer
}

// connLimit is the cap of a backend whose pool asks for poolMax (0: none) under a proxy whose
// Config says global.
func connLimit(poolMax, global int) int {
	if poolMax > 0 {
		return poolMax
	}
	return global
}

// Region returns the backend's region, "" when none was given (the node's region).
func (u *upstream) Region() string {
	if r := u.region.Load(); r != nil {
		return r.name
	}
	return ""
}

// pool is a compiled discovery.Pool. Immutable once in a table.
type pool struct {
	name      string
	algorithm string
	policy    balance.Policy
	sticky    bool
	backends  []*upstream
	series    atomic.Pointer[poolSeriesCache] // metrics.observePool's
}

// table is the routing table the request path reads through an atomic pointer.
type table struct {
	version uint64
	router  router
	pools   []*pool
	routes  []discovery.Route
}

// ErrInvalidSnapshot wraps every problem Apply finds in a snapshot.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// samePool reports whether a and b compile to the same pool.
func samePool(a, b *discovery.Pool) bool {
	return a.Name == b.Name && a.Algorithm == b.Algorithm && a.Sticky == b.Sticky &&
		a.MaxConnsPerBackend == b.MaxConnsPerBackend && slices.Equal(a.Backends, b.Backends)
}

// buildTable compiles snap, reusing upstream state from prev (keyed by pool/backend ID) and
// policies by pool name when the algorithm is unchanged; maxConns is Config.MaxConnsPerBackend,
// the cap of backends whose pool sets none. It does not modify prev or policies; the caller
// commits the returned maps only when it swaps the table in.
func buildTable(snap *discovery.Snapshot, prev map[string]*upstream, policies map[string]*pool, specs map[string]*discovery.Pool, maxConns int, tlsTransport func(backendtls.Settings) (*http.Transport, error), pc *pace.Pacer) (*table, map[string]*upstream, error) {
	var problems []error
	t := &table{routes: append([]discovery.Route(nil), snap.Routes...)}
	ups := make(map[string]*upstream, len(prev))
	byName := make(map[string]*pool, len(snap.Pools))
	for _, sp := range snap.Pools {
		pc.Step()
		if _, dup := byName[sp.Name]; dup {
			problems = append(problems, fmt.Errorf("pool %q defined twice", sp.Name))
			continue
		}
		algo := sp.Algorithm
		if algo == "" {
			algo = "round_robin"
		}
		if old, ok := policies[sp.Name]; ok && old.algorithm == algo && specs[sp.Name] != nil && samePool(specs[sp.Name], &sp) {
			// Unchanged: the compiled pool is immutable, so the new table shares it, and its
			// upstreams are the ones prev has under their keys.
			for _, u := range old.backends {
				ups[u.key] = u
			}
			byName[sp.Name] = old
			t.pools = append(t.pools, old)
			continue
		}
		pl := &pool{name: sp.Name, algorithm: algo, sticky: sp.Sticky}
		if old, ok := policies[sp.Name]; ok && old.algorithm == algo {
			pl.policy = old.policy
		} else {
			pol, err := balance.New(algo)
			if err != nil {
				problems = append(problems, fmt.Errorf("pool %q: %w", sp.Name, err))
				continue
			}
			pl.policy = pol
		}
		pl.backends = make([]*upstream, 0, len(sp.Backends))
		for _, b := range sp.Backends {
			key := sp.Name + "/" + b.ID
			if _, dup := ups[key]; dup {
				problems = append(problems, fmt.Errorf("pool %q: backend %q listed twice", sp.Name, b.ID))
				continue
			}
			sch, ok := parseScheme(b.Scheme)
			if !ok {
				problems = append(problems, fmt.Errorf("pool %q: backend %q: unknown scheme %q", sp.Name, b.ID, b.Scheme))
				continue
			}
			// Verification only exists for https; ignoring the flag elsewhere keeps a pool-wide
			// setting from churning the upstreams of its plain backends.
			skip := sch == schemeHTTPS && b.TLSSkipVerify
			var ts backendtls.Settings
			if sch == schemeHTTPS {
				ts = b.TLS
			}
			u, ok := prev[key]
			if !ok || u.address != b.Address || u.scheme != sch || u.skipVerify != skip || u.tls != ts {
				u = &upstream{key: key, id: b.ID, pool: sp.Name, address: b.Address, scheme: sch, skipVerify: skip, tls: ts}
				if !ts.IsZero() {
					tr, err := tlsTransport(ts)
					if err != nil {
						problems = append(problems, fmt.Errorf("pool %q: backend %q: tls: %w", sp.Name, b.ID, err))
						continue
					}
					u.custom = tr
				}
				u.lb.Init(b.ID, b.Weight)
			}
			ups[key] = u
			pl.backends = append(pl.backends, u)
		}
		byName[sp.Name] = pl
		t.pools = append(t.pools, pl)
	}
	compiled := make([]*route, 0, len(snap.Routes))
	for i, sr := range snap.Routes {
		pl, ok := byName[sr.Pool]
		if !ok {
			problems = append(problems, fmt.Errorf("route %d (%s%s): unknown pool %q", i, sr.Host, sr.PathPrefix, sr.Pool))
			continue
		}
		mode, ok := parseGeoMode(sr.Geo)
		if !ok {
			problems = append(problems, fmt.Errorf("route %d (%s%s): unknown geo mode %q (want off, nearest or redirect)", i, sr.Host, sr.PathPrefix, sr.Geo))
			continue
		}
		compiled = append(compiled, &route{spec: sr, prefix: normalizePrefix(sr.PathPrefix), pool: pl, geo: mode})
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidSnapshot, errors.Join(problems...))
	}
	// Shared per-backend values change in place only once the table is known to be good.
	// Without problems, t.pools and their backends are snap's, one for one.
	for i, sp := range snap.Pools {
		for j, b := range sp.Backends {
			u := t.pools[i].backends[j]
			u.lb.SetWeight(b.Weight)
			u.maxConns = sp.MaxConnsPerBackend
			u.conns.setLimit(connLimit(sp.MaxConnsPerBackend, maxConns))
			if u.Region() != b.Region {
				var r *regionName // nil for no region: most backends have none
				if b.Region != "" {
					r = newRegionName(b.Region)
				}
				u.region.Store(r)
			}
		}
	}
	t.router = newRouter(compiled)
	return t, ups, nil
}
