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

// Locator places a client in a region, for routing it to backends near it. It is called
// once per request with the client address the proxy trusts and must not block (answer from
// memory). ok=false means unknown: the client is then balanced over every region.
//
// Today the proxy prefers backends whose region equals the client's and falls back to all
// healthy backends; ordering the other regions by distance arrives with geo routing.
type Locator interface {
	Region(client netip.Addr) (region string, ok bool)
}

// allHealthy is the HealthView used when none is given: every backend is up.
type allHealthy struct{}

func (allHealthy) Healthy(string) bool { return true }
