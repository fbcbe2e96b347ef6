package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/veloflux/veloflux/internal/backendtls"
	"github.com/veloflux/veloflux/proxy/h1client"
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
	fast     *h1client.Transport // scheme http with TransportConfig.FastHTTP1; nil otherwise
	http     *http.Transport     // scheme http
	https    *http.Transport     // scheme https, certificates verified against the system roots
	insecure *http.Transport     // scheme https with TLSSkipVerify
	h2c      *http.Transport     // scheme h2c

	cfg    TransportConfig
	dialer *net.Dialer
	mu     sync.Mutex
	// custom are the transports of https backends with pool tls settings, one per distinct
	// settings, their files read when the settings first appear.
	custom map[backendtls.Settings]*http.Transport
}

func newTransports(c TransportConfig) *transports {
	dialer := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}
	var fast *h1client.Transport
	if c.FastHTTP1 {
		fast = h1client.New(h1client.Options{
			DialTimeout:           c.DialTimeout,
			ResponseHeaderTimeout: c.ResponseHeaderTimeout,
			IdleTimeout:           c.IdleConnTimeout,
			MaxIdlePerHost:        c.MaxIdleConnsPerHost,
			ExpectContinueTimeout: time.Second, // as the net/http transport below
		})
		fast.Got1xxResponse = passInterim
	}
	return &transports{
		cfg: c, dialer: dialer, custom: map[backendtls.Settings]*http.Transport{},
		fast: fast,
		http: newHTTPTransport(c, dialer),
		// ServerName stays empty in both TLS configs: the transport then uses the host of
		// each request's URL, which rewrite sets to the backend's address, so one transport
		// verifies every backend against its own name.
		https:    newTLSTransport(c, dialer, &tls.Config{MinVersion: tls.VersionTLS12}),
		insecure: newTLSTransport(c, dialer, &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}),
		h2c:      newH2CTransport(c, dialer),
	}
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

// newH2CTransport speaks HTTP/2 with prior knowledge over plain TCP: with unencrypted HTTP/2
// as its only protocol, the transport sends http URLs as HTTP/2 on a plain connection, with
// the tuned settings (ResponseHeaderTimeout, IdleConnTimeout, DisableCompression) of the
// other transports. HTTP2 is nil: the HTTP/2 defaults, as for https backends.
func newH2CTransport(c TransportConfig, dialer *net.Dialer) *http.Transport {
	t := newHTTPTransport(c, dialer)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	t.Protocols = &protos
	return t
}

// forSettings returns the transport of https backends with the tls settings s, built (and
// its files read) the first time s is asked for.
func (ts *transports) forSettings(s backendtls.Settings) (*http.Transport, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.custom[s]; ok {
		return t, nil
	}
	cfg, err := s.Config()
	if err != nil {
		return nil, err
	}
	t := newTLSTransport(ts.cfg, ts.dialer, cfg)
	ts.custom[s] = t
	return t, nil
}

// roundTrip sends one try of req to st.backend over the transport of its scheme.
func (ts *transports) roundTrip(st *reqState, req *http.Request) (*http.Response, error) {
	u := st.backend
	if u.scheme != schemeHTTP || ts.fast == nil {
		st.traceFields(req, false)
	}
	switch u.scheme {
	case schemeHTTPS:
		if u.custom != nil {
			return u.custom.RoundTrip(req)
		}
		if u.skipVerify {
			return ts.insecure.RoundTrip(req)
		}
		return ts.https.RoundTrip(req)
	case schemeH2C:
		// HTTP/2 has no Upgrade mechanism (RFC 9113 section 8.6) and the HTTP/2 transport
		// refuses the headers; WebSocket over HTTP/2 (RFC 8441) would need the backend to
		// announce extended CONNECT, which the transport does not speak. Refuse before sending.
		if st.upgrade {
			return nil, errNoWebSocket
		}
		return ts.h2c.RoundTrip(req)
	}
	if ts.fast != nil {
		return ts.fast.RoundTripWith(req, st.traceFields(req, true))
	}
	return ts.http.RoundTrip(req)
}

// closeIdle closes the idle connections of every transport.
func (ts *transports) closeIdle() {
	if ts.fast != nil {
		ts.fast.CloseIdleConnections()
	}
	ts.http.CloseIdleConnections()
	ts.https.CloseIdleConnections()
	ts.insecure.CloseIdleConnections()
	ts.h2c.CloseIdleConnections()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.custom {
		t.CloseIdleConnections()
	}
}
