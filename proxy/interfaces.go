package proxy

import (
	"net/netip"
	"time"
)

// HealthView tells whether a backend may receive traffic. Healthy is called on the request
// path for every candidate, so it must be cheap and must not block (read an immutable
// snapshot). Unknown IDs should be reported healthy.
type HealthView interface {
	Healthy(backendID string) bool
}

// SessionStore maps sticky session IDs to backend IDs. The local store keeps them in this
// process; the gossip store (issue 4) shares them across nodes. Get and Put are called on the
// request path and must not block on the network.
type SessionStore interface {
	// Get returns the backend pinned to session and when the pin expires.
	Get(session string) (backendID string, expires time.Time, ok bool)
	// Put pins session to backendID until expires.
	Put(session, backendID string, expires time.Time)
}

// Locator places clients on the map for routes with geo routing (discovery.Route.Geo).
// Order is called once per request on such routes, with the client address the proxy trusts
// (never one a client can choose), so it must answer from memory and must not block.
// NodeRegion is read once, by New.
type Locator interface {
	// Order returns region names nearest first for the client (shared, immutable; must not
	// be modified) and the client's ISO country ("" unknown). Unknown clients get the node's
	// region first.
	Order(client netip.Addr) (regions []string, country string)
	// NodeRegion is the region this node runs in. Backends without a region count as in it.
	NodeRegion() string
}

// allHealthy is the HealthView used when none is given: every backend is up.
type allHealthy struct{}

func (allHealthy) Healthy(string) bool { return true }
