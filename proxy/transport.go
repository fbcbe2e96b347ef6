package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// scheme is how the proxy talks to one backend, parsed from discovery.Backend.Scheme.
type scheme uint8

const (
	schemeHTTP  scheme = iota // HTTP/1.1 over TCP
	schemeHTTPS               // HTTP/1.1 or HTTP/2 (ALPN) over TLS
	schemeH2C                 // HTTP/2 over TCP with prior knowledge
)

// parseScheme reads a discovery scheme; empty means http.
func parseScheme(s string) (scheme, bool) {
	switch s {
	case "", "http":
		return schemeHTTP, true
	case "https":
		return schemeHTTPS, true
	case "h2c":
		return schemeH2C, true
	}
	return 0, false
}

func (s scheme) String() string {
	switch s {
	case schemeHTTPS:
		return "https"
	case schemeH2C:
		return "h2c"
	}
	return "http"
}

// urlScheme is the scheme of the outbound URL: h2c is plain "http" on the wire, the
// transport chosen for the backend decides the protocol.
func (s scheme) urlScheme() string {
	if s == schemeHTTPS {
		return "https"
	}
	return "http"
}

// transports are the connection pools to backends, one per way of reaching them. Each keeps
// its own idle connections, so a backend's pool is never shared with another protocol.
type transports struct {
	http     *http.Transport  // scheme http
	https    *http.Transport  // scheme https, certificates verified against the system roots
	insecure *http.Transport  // scheme https with TLSSkipVerify
	h2c      *http2.Transport // scheme h2c
}

func newTransports(c TransportConfig) (*transports, error) {
	dialer := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}
	h2c, err := newH2CTransport(c, dialer)
	if err != nil {
		return nil, err
	}
	return &transports{
		http: newHTTPTransport(c, dialer),
		// ServerName stays empty in both TLS configs: the transport then uses the host of
		// each request's URL, which rewrite sets to the backend's address, so one transport
		// verifies every backend against its own name.
		https:    newTLSTransport(c, dialer, &tls.Config{MinVersion: tls.VersionTLS12}),
		insecure: newTLSTransport(c, dialer, &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}),
		h2c:      h2c,
	}, nil
}

func newHTTPTransport(c TransportConfig, dialer *net.Dialer) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // never send backend traffic through an environment proxy
		DialContext:         dialer.DialContext,
		MaxIdleConns:        0, // bounded per host instead
		MaxIdleConnsPerHost: c.MaxIdleConnsPerHost,
		// No MaxConnsPerHost: the proxy's slots (Config.MaxConnsPerBackend) bound the requests
		// in flight to a backend, and so the connections in use, since an HTTP/1.1 connection
		// carries one request at a time. They apply to h2c backends too, and a request that
		// waits for one gives up after BackendQueueTimeout, where the transport's own cap would
		// queue it for as long as its context lasts and hide the wait from metrics.
		MaxConnsPerHost:       0,
		IdleConnTimeout:       c.IdleConnTimeout,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false, // plain http backends speak HTTP/1.1; h2c has its own transport
		DisableCompression:    true,  // pass bodies through untouched
	}
}

// newTLSTransport is the http transport over TLS. A handshake is part of connecting, so
// it gets the dial timeout as its own bound; without one a backend that accepts and never
// answers the handshake would hold the request until the client gives up.
func newTLSTransport(c TransportConfig, dialer *net.Dialer, cfg *tls.Config) *http.Transport {
	t := newHTTPTransport(c, dialer)
	t.TLSClientConfig = cfg
	t.TLSHandshakeTimeout = c.DialTimeout
	// A custom TLS config turns HTTP/2 off unless forced. WebSocket upgrades still get an
	// HTTP/1.1 connection: the transport offers only http/1.1 in ALPN for them.
	t.ForceAttemptHTTP2 = true
	return t
}

// newH2CTransport speaks HTTP/2 with prior knowledge over plain TCP. A bare http2.Transport
// has no response header timeout, so it is linked to an http.Transport carrying the tuned
// settings (ResponseHeaderTimeout, IdleConnTimeout, DisableCompression), which it reads;
// that http.Transport itself never carries a request.
func newH2CTransport(c TransportConfig, dialer *net.Dialer) (*http2.Transport, error) {
	t2, err := http2.ConfigureTransports(newHTTPTransport(c, dialer))
	if err != nil {
		return nil, fmt.Errorf("h2c transport: %w", err)
	}
	// ConfigureTransports leaves t2 with a pool that only adopts connections the linked
	// http.Transport upgraded and never dials; nil restores the default pool, which dials
	// through DialTLSContext.
	t2.ConnPool = nil
	t2.AllowHTTP = true
	// Named "TLS" because that is the hook http2.Transport calls for every connection; with
	// AllowHTTP an http URL gets this plain TCP connection and no handshake.
	t2.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	return t2, nil
}

// roundTrip sends one try of req to st.backend over the transport of its scheme.
func (ts *transports) roundTrip(st *reqState, req *http.Request) (*http.Response, error) {
	u := st.backend
	switch u.scheme {
	case schemeHTTPS:
		if u.skipVerify {
			return ts.insecure.RoundTrip(req)
		}
		return ts.https.RoundTrip(req)
	case schemeH2C:
		// HTTP/2 has no Upgrade mechanism (RFC 9113 section 8.6) and http2.Transport refuses
		// the headers; WebSocket over HTTP/2 (RFC 8441) would need the backend to announce
		// extended CONNECT, which http2.Transport does not speak. Refuse before sending.
		if st.upgrade {
			return nil, errNoWebSocket
		}
		return ts.h2c.RoundTrip(req)
	}
	return ts.http.RoundTrip(req)
}

// closeIdle closes the idle connections of every transport.
func (ts *transports) closeIdle() {
	ts.http.CloseIdleConnections()
	ts.https.CloseIdleConnections()
	ts.insecure.CloseIdleConnections()
	ts.h2c.CloseIdleConnections()
}
