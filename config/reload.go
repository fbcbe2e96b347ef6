package config

import "reflect"

// RestartNeeded lists the keys ("global.timeouts.idle") whose value differs in next and that
// only take effect after a restart. A reload applies next anyway and cmd logs these as a
// warning, so a changed listener never blocks a route change. Both configs must be non-nil.
func (c *Config) RestartNeeded(next *Config) []string {
	var out []string
	// The per-backend connection cap and its queue timeout are the proxy's reloadable settings:
	// raising a cap that turns out too low must not wait for a restart.
	oldG, newG := c.Global, next.Global
	oldG.Limits.MaxConnsPerBackend, oldG.Limits.BackendQueueTimeout = 0, 0
	newG.Limits.MaxConnsPerBackend, newG.Limits.BackendQueueTimeout = 0, 0
	old, nw := reflect.ValueOf(oldG), reflect.ValueOf(newG)
	// Read only at startup: listeners are bound, and the servers and transports that
	// timeouts, limits, TLS and the protocol switches (HTTP/3's UDP listener, h2c and the
	// fast path on the plain one) configure are built, once.
	for _, key := range []string{
		"bind_address", "tls_bind_address", "metrics_address", "admin_address",
		"drain_timeout", "tls", "http3", "h2c", "http1_fast_path", "gc_min_heap", "timeouts", "limits",
	} {
		f, _, _ := lookupKey(old.Type(), key)
		diffPaths(keyPath("global", key), old.FieldByIndex(f.index), nw.FieldByIndex(f.index), &out)
	}
	// cmd starts the Consul watch and the registration once, with this section; restarting
	// them on reload would drop the blocking-query state and briefly deregister the node.
	// pools[].protocol and tls_skip_verify are not here: the proxy picks a transport per
	// backend from the routing table, which every reload replaces.
	diffPaths("discovery", reflect.ValueOf(c.Discovery), reflect.ValueOf(next.Discovery), &out)
	// cmd opens the GeoIP database and builds the region table and lookup cache once.
	// routes[].geo and pools[].backends[].region are not here: they are part of the routing
	// table, which every reload replaces.
	diffPaths("geo", reflect.ValueOf(c.Geo), reflect.ValueOf(next.Geo), &out)
	// cmd creates the gossip node once: its listener, label and queue are fixed for its life,
	// and leaving and rejoining on reload would drop shared sessions and health state.
	// The keys are the exception: cmd applies them to the running keyring (rotation).
	oldC, newC := c.Cluster, next.Cluster
	oldC.GossipKey, oldC.GossipKeys = "", nil
	newC.GossipKey, newC.GossipKeys = "", nil
	diffPaths("cluster", reflect.ValueOf(oldC), reflect.ValueOf(newC), &out)
	// cmd builds the tracer provider and its exporter once and hands it to the proxy.
	diffPaths("tracing", reflect.ValueOf(c.Tracing), reflect.ValueOf(next.Tracing), &out)
	return out
}

// diffPaths appends the leaf key paths under path whose values differ.
func diffPaths(path string, a, b reflect.Value, out *[]string) {
	if isSection(a.Type()) {
		for _, f := range keysOf(a.Type()) {
			diffPaths(keyPath(path, f.key), a.FieldByIndex(f.index), b.FieldByIndex(f.index), out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path)
	}
}
