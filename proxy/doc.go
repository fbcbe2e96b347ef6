// Package proxy is VeloFlux's data plane: it matches each request to a route, picks a healthy
// backend of the route's pool (nearest region, sticky session, balancing policy), and
// forwards the request with one shared httputil.ReverseProxy (or, on the HTTP/1.1 fast path,
// with forward, which does the same without its copies), retrying safe failures and mapping
// the rest to 502/503/504. It also owns client identity (trusted proxies), rate
// limiting, geo redirects, WebSocket pass-through and graceful drain.
//
// The package imports only discovery types (and internal/localerr, which tells this node's
// exhaustion from a backend's failure, and internal/attempt, the outcome type it shares with
// the passive health checks). What it needs from elsewhere (health view, session store, client
// locator) it declares as small interfaces in interfaces.go; cmd wires concrete values in.
package proxy
