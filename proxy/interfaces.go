package proxy

import "time"

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

// allHealthy is the HealthView used when none is given: every backend is up.
type allHealthy struct{}

func (allHealthy) Healthy(string) bool { return true }
