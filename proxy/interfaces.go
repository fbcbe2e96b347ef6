package proxy

import (
	"context"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/veloflux/veloflux/internal/attempt"
)

// HealthView tells whether a backend may receive traffic. Healthy is called on the request
// path for every candidate, so it must be cheap and must not block (read an immutable
// snapshot). Unknown IDs should be reported healthy.
type HealthView interface {
	Healthy(backendID string) bool
}

// PassiveHealth learns from real traffic: the proxy reports the outcome of every attempt to
// send a request to a backend, retries included, so failing backends can be ejected
// (*health.Passive, which cmd passes in as it is). Report is called on the request path for
// every attempt: it must not block, and should not allocate.
type PassiveHealth interface {
	Report(backendID string, o Outcome)
}

// Outcome is what one attempt to a backend came to. It is judged on the response head: a
// body that breaks off later is not reported again.
//
// It is an alias, not a type of this package: health.Outcome aliases the same attempt.Outcome,
// so the passive checks implement PassiveHealth without importing proxy and without an
// adapter in cmd (see internal/attempt).
type Outcome = attempt.Outcome

// The outcomes, as attempt declares them.
const (
	OutcomeSuccess        = attempt.Success        // a response below 500, a WebSocket upgrade included
	Outcome5xx            = attempt.Status5xx      // a 5xx response, passed on to the client or retried
	OutcomeConnectFailure = attempt.ConnectFailure // not opened, or broken before the response
	OutcomeTimeout        = attempt.Timeout        // a dial or response header timeout
)

// SessionStore maps sticky session IDs to the backend IDs they moved to. A session's cookie
// names its first backend, so the proxy writes only moves (its backend was down, drained or
// gone) and their renewals. The local store keeps them in this process; the gossip store
// shares them across nodes. Get and Put are called on the
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

// TraceSampler takes the TracerProvider's sampling decision for a request's server span
// before the span exists (tracing.HeadSampler of telemetry/tracing, over the provider's own
// sampler). Both methods are called on the request path and must not block.
type TraceSampler interface {
	// Sampled reports whether the TracerProvider records a server span named name in trace
	// id, under the span context in parent: the caller's, continued, or none
	// (context.Background()) for a new trace.
	Sampled(parent context.Context, id trace.TraceID, name string) bool
	// NewTrace returns ctx carrying id, so that a server span started in it without a
	// parent is the root of trace id: the trace Sampled decided to record.
	NewTrace(ctx context.Context, id trace.TraceID) context.Context
}

// allHealthy is the HealthView used when none is given: every backend is up.
type allHealthy struct{}

func (allHealthy) Healthy(string) bool { return true }

// noPassive is the PassiveHealth used when none is given: outcomes are dropped.
type noPassive struct{}

func (noPassive) Report(string, Outcome) {}
