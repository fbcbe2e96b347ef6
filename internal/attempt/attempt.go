// Package attempt names what one attempt to send a request to a backend came to: the
// vocabulary shared by the proxy, which reports every attempt, and the passive health checks,
// which eject a backend whose attempts keep failing.
//
// It exists so that the two speak one type without importing each other. proxy declares the
// interface it reports through (proxy.PassiveHealth: Report(backendID string, o proxy.Outcome)),
// and *health.Passive should satisfy it as it is. Go interfaces are satisfied structurally, but
// a method's parameter types must be identical, not merely alike: two enums, one per package,
// would need an adapter in cmd that maps one onto the other (and silently drops a value added
// to one and not to the other). So proxy.Outcome and health.Outcome are both aliases of
// Outcome, declared here, in a leaf that imports nothing.
package attempt

// Outcome is what one attempt to a backend came to. It is judged on the response head: a
// body that breaks off later is not reported again.
type Outcome uint8

const (
	// Success is any response below 500 (a 404 is the backend answering), a WebSocket
	// upgrade included.
	Success Outcome = iota
	// Status5xx is a response with a 5xx status, passed on to the client or retried.
	Status5xx
	// ConnectFailure is a connection that could not be opened, or that broke before the
	// response: refused, reset, closed by the backend.
	ConnectFailure
	// Timeout is a dial or response header timeout.
	Timeout

	// NumOutcomes counts the outcomes above; a new one goes before it, and the passive
	// checks' tests fail until they know what to call it.
	NumOutcomes
)
