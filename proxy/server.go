package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/veloflux/veloflux/proxy/h1"
	"github.com/veloflux/veloflux/proxy/h1fast"
	"github.com/veloflux/veloflux/proxy/h2guard"
)

// ServerConfig says where and how the proxy listens. Fixed for the life of a Server.
type ServerConfig struct {
	// Addr is the plain HTTP listen address. Empty: no plain listener.
	Addr string
	// TLSAddr is the HTTPS listen address (HTTP/1.1 and HTTP/2). Empty: no TLS listener.
	TLSAddr string
	// TLSConfig serves TLSAddr. Required when TLSAddr is set.
	TLSConfig *tls.Config
	// ReadHeaderTimeout bounds reading request headers (slowloris), and separately a TLS
	// handshake. Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; 0 means none. Upgraded
	// connections are exempt. Default 60s.
	ReadTimeout time.Duration
	// IdleTimeout closes kept-alive client connections idle this long. Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps an HTTP/1 request head (431 above it; 414 for a longer request
	// line) and the header list of an HTTP/2 request. Default 64 KiB.
	MaxHeaderBytes int
	// MaxHeaderCount caps the header fields of an HTTP/1 request (431 above it). Default 100.
	MaxHeaderCount int
	// H2MaxConcurrentStreams caps the streams one HTTP/2 client may have open. Default 100.
	H2MaxConcurrentStreams uint32
	// H2MaxFrameSize, H2StreamWindow and H2ConnWindow are the HTTP/2 frame size limit and
	// flow-control windows, in bytes. 0: net/http's defaults (16 KiB, 1 MiB, 1 MiB).
	H2MaxFrameSize, H2StreamWindow, H2ConnWindow int
	// MaxRequestsPerConn closes a client connection after this many requests (HTTP/1:
	// Connection: close on the last response; HTTP/2: GOAWAY, streams in flight finish).
	// 0 means unlimited. Default 0.
	MaxRequestsPerConn int64
	// MaxClientConns caps open client connections over all listeners; at the cap the
	// listeners stop accepting until one closes. 0: DefaultMaxClientConns().
	MaxClientConns int
	// H2Guard closes HTTP/2 connections that reset most streams right after opening them
	// (rapid reset), with GOAWAY ENHANCE_YOUR_CALM. Zero fields: h2guard.DefaultConfig().
	H2Guard h2guard.Config
	// H2C lets clients of the plain listener speak HTTP/2 with prior knowledge (no TLS, no
	// Upgrade), for internal callers such as gRPC clients behind another load balancer. Their
	// connections get the rapid-reset guard. Default false.
	H2C bool
	// HTTP3 serves HTTP/3 on the UDP side of TLSAddr (same port), announced by Alt-Svc on
	// the TLS listener's responses. Default false.
	HTTP3 bool
	// H3RetryAbove is how many QUIC handshakes per second from unvalidated addresses are
	// taken before clients must prove their address with a Retry (one more round trip, and
	// no reflection attacks); negative asks every client. 0: the default, 100.
	H3RetryAbove int
	// RedirectHTTPS answers every request on the plain listener with 308 to the same URL on
	// the TLS listener, except ACME HTTP-01 challenges. Needs TLSAddr. Default false.
	RedirectHTTPS bool
	// HSTS is the max-age in seconds of the Strict-Transport-Security header added to every
	// response on the TLS listener; 0 adds none. Default 0.
	HSTS int
	// HTTPChallenge answers ACME HTTP-01 challenge requests (/.well-known/acme-challenge/) on
	// the plain listener, before the redirect to https and the routes; it reports whether it
	// answered, and a request it leaves is handled as any other. nil: challenges are proxied.
	HTTPChallenge func(http.ResponseWriter, *http.Request) bool
	// HTTP1FastPath serves the plain listener's HTTP/1.1 with VeloFlux's own connection loop
	// (proxy/h1fast) instead of net/http's server: idle connections hold no goroutine and no
	// buffer, and a request costs less CPU. Ignored with H2C, whose connections need net/http's
	// HTTP/2 server. Default false here; the config file's global.http1_fast_path sets it.
	HTTP1FastPath bool
	// DrainTimeout is how long in-flight requests and WebSockets get to finish when the
	// server stops or is drained. Default 30s.
	DrainTimeout time.Duration
}

// DefaultServerConfig returns the defaults documented on each field, listening on :8080.
func DefaultServerConfig() ServerConfig {
	lim := h1.DefaultLimits()
	return ServerConfig{
		Addr:                   ":8080",
		ReadHeaderTimeout:      10 * time.Second,
		ReadTimeout:            60 * time.Second,
		IdleTimeout:            120 * time.Second,
		MaxHeaderBytes:         lim.MaxHeaderBytes,
		MaxHeaderCount:         lim.MaxHeaderCount,
		H2MaxConcurrentStreams: 100,
		H3RetryAbove:           100,
		DrainTimeout:           30 * time.Second,
	}
}

// Server runs the proxy's listeners and its drain.
type Server struct {
	cfg     ServerConfig
	proxy   *Proxy
	log     *slog.Logger
	guard   *h1.Guard
	slots   chan struct{}
	servers []httpServer
	lns     []net.Listener
	tls     *tlsListener // nil without a TLS listener
	h3      *h3          // nil without HTTP/3
	// listenTCP binds the TLS listener's TCP socket; nil is net.Listen. The tests hand it a
	// port whose UDP side they hold.
	listenTCP func(network, address string) (net.Listener, error)

	mu         sync.Mutex
	drainTimer *time.Timer
}

// NewServer prepares listeners for p; call Listen, then Serve.
func NewServer(cfg ServerConfig, p *Proxy, logger *slog.Logger) (*Server, error) {
	if cfg.Addr == "" && cfg.TLSAddr == "" {
		return nil, errors.New("proxy server: no listen address")
	}
	if cfg.TLSAddr != "" && cfg.TLSConfig == nil {
		return nil, errors.New("proxy server: TLS address without TLS config")
	}
	if cfg.DrainTimeout <= 0 {
		return nil, fmt.Errorf("proxy server: drain timeout %v: want > 0", cfg.DrainTimeout)
	}
	if cfg.RedirectHTTPS && (cfg.Addr == "" || cfg.TLSAddr == "") {
		return nil, errors.New("proxy server: redirecting to https needs a plain and a TLS listener")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := DefaultServerConfig()
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if cfg.MaxHeaderCount <= 0 {
		cfg.MaxHeaderCount = d.MaxHeaderCount
	}
	if cfg.H2MaxConcurrentStreams == 0 {
		cfg.H2MaxConcurrentStreams = d.H2MaxConcurrentStreams
	}
	if cfg.H3RetryAbove == 0 {
		cfg.H3RetryAbove = d.H3RetryAbove
	}
	if cfg.MaxClientConns <= 0 {
		cfg.MaxClientConns = DefaultMaxClientConns()
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	s := &Server{cfg: cfg, proxy: p, log: logger, slots: make(chan struct{}, cfg.MaxClientConns)}
	m := p.metrics
	var h2c func(net.Conn) net.Conn
	if cfg.H2C {
		h2c = s.wrapH2
	}
	s.guard = h1.NewGuard(h1.Limits{MaxHeaderBytes: cfg.MaxHeaderBytes, MaxHeaderCount: cfg.MaxHeaderCount},
		func(r h1.Rejection) { m.rejections.WithLabelValues("http1", r.Reason).Inc() }, h2c)
	m.connLimit.Set(float64(cfg.MaxClientConns))
	return s, nil
}

// httpServer is what the drain needs of a listener's server: net/http's, or the fast path's.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
	SetKeepAlivesEnabled(bool)
}

// connContext gives every connection's requests the connInfo the proxy's handler reads.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	cc := &connCtx{Context: ctx}
	cc.ci.h1, cc.ci.maxRequests = h1.From(c), s.cfg.MaxRequestsPerConn
	if h, ok := c.(*h2Conn); ok {
		cc.ci.tls = h.state
	}
	return cc
}

// newFastServer returns the fast-path server of the plain listener.
func (s *Server) newFastServer() *h1fast.Server {
	return &h1fast.Server{
		Handler:           s.plainHandler(),
		Guard:             s.guard,
		ConnContext:       s.connContext,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ReturnMemoryEvery: returnMemoryEvery,
		Logger:            s.log,
	}
}

// returnMemoryEvery bounds how often the fast path returns a burst's freed memory to the
// system: each return is a forced collection.
const returnMemoryEvery = 10 * time.Second

// newHTTPServer returns the server of one listener. The TLS listener's server also speaks
// HTTP/2, in what net/http calls its unencrypted mode: the TLS listener has done the handshake
// and hands over the plaintext side of connections that negotiated h2.
func (s *Server) newHTTPServer(h2 bool) *http.Server {
	m := s.proxy.metrics
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(h2 || s.cfg.H2C)
	handler := s.plainHandler()
	if h2 {
		handler = s.tlsHandler()
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// The guard enforces the limit first, with the status it documents; net/http's own
		// check (this plus 4 KiB) never fires on what the guard let through. For HTTP/2 it
		// bounds the header list.
		MaxHeaderBytes: s.cfg.MaxHeaderBytes,
		Protocols:      &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(s.cfg.H2MaxConcurrentStreams),
			MaxReadFrameSize:              s.cfg.H2MaxFrameSize,
			MaxReceiveBufferPerStream:     s.cfg.H2StreamWindow,
			MaxReceiveBufferPerConnection: s.cfg.H2ConnWindow,
			// The HTTP/2 server's own early-reset defence (more streams queued for a handler
			// than four times the stream limit) reports "conn_<CODE>_too_many_early_resets".
			CountError: func(errType string) {
				if strings.HasSuffix(errType, "_too_many_early_resets") {
					m.rejections.WithLabelValues("http2", "rapid reset").Inc()
				}
			},
		},
		ConnContext: s.connContext,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return srv
}

// tlsHandler is the handler of the TLS listener and of HTTP/3: the proxy, with HSTS and the
// Alt-Svc that announces HTTP/3 when configured. s.h3 is set before any request arrives.
func (s *Server) tlsHandler() http.Handler {
	if s.cfg.HSTS <= 0 && !s.cfg.HTTP3 {
		return s.proxy
	}
	sts := ""
	if s.cfg.HSTS > 0 {
		sts = "max-age=" + strconv.Itoa(s.cfg.HSTS)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if sts != "" {
			h.Set("Strict-Transport-Security", sts)
		}
		if s.h3 != nil && r.ProtoMajor < 3 {
			h.Set("Alt-Svc", s.h3.altSvc())
		}
		s.proxy.ServeHTTP(w, r)
	})
}

// plainHandler is the handler of the plain listener: ACME HTTP-01 answers when configured,
// then the redirect to https when configured, else the proxy.
func (s *Server) plainHandler() http.Handler {
	var next http.Handler = s.proxy
	if s.cfg.RedirectHTTPS {
		next = http.HandlerFunc(s.redirectHTTPS)
	}
	answer := s.cfg.HTTPChallenge
	if answer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, acmeChallengePrefix) && !s.rejected(r) && answer(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rejected reports whether the HTTP/1 guard refused r's head; the proxy then answers with the
// rejection.
func (s *Server) rejected(r *http.Request) bool {
	if ci := connFrom(r.Context()); ci != nil && ci.h1 != nil {
		_, ok := ci.h1.Rejected(r.RequestURI)
		return ok
	}
	return false
}

// acmeChallengePrefix is where ACME HTTP-01 challenges are asked for (RFC 8555 section 8.3):
// they must be answered over plain HTTP.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// redirectHTTPS sends a plain-HTTP client to the same URL on the TLS listener with 308, which
// keeps the method and body. A head the HTTP/1 guard refused still gets its rejection.
func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	if s.rejected(r) || strings.HasPrefix(r.URL.Path, acmeChallengePrefix) {
		s.proxy.ServeHTTP(w, r)
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		http.Error(w, "400 Bad Request: no Host to redirect to https", http.StatusBadRequest)
		return
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := s.tlsPort(); port != "443" {
		host += ":" + port
	}
	s.proxy.metrics.redirects.Inc()
	w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
	w.WriteHeader(http.StatusPermanentRedirect)
}

// tlsPort is the port the TLS listener is bound to.
func (s *Server) tlsPort() string {
	_, port, _ := net.SplitHostPort(s.tls.Addr().String())
	return port
}

// h2Conn is a TLS connection that negotiated h2, handed to net/http as plaintext HTTP/2. It
// must not have a ConnectionState method, or net/http would take it for TLS and speak HTTP/1;
// the proxy gets the TLS state from connInfo instead.
//
// net/http serves a connection without the HTTP/2 preface as HTTP/1, and this one bypasses the
// HTTP/1 guard: so Read ends the connection at the first byte that differs from the preface.
type h2Conn struct {
	net.Conn
	state   *tls.ConnectionState
	checked int // bytes of the client preface seen so far
}

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// errNoPreface ends a connection that negotiated h2 but does not start with its preface.
var errNoPreface = errors.New("connection negotiated h2 but sent no HTTP/2 preface")

func (c *h2Conn) Read(p []byte) (int, error) {
	if c.checked == len(http2Preface) {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p[:min(len(p), len(http2Preface)-c.checked)])
	if string(p[:n]) != http2Preface[c.checked:c.checked+n] {
		_ = c.Conn.Close()
		return 0, errNoPreface
	}
	c.checked += n
	return n, err
}

// wrapH2 puts an HTTP/2 connection behind the rapid-reset guard. The result has no
// ConnectionState method, so net/http serves it as HTTP/2 without TLS (see h2Conn).
func (s *Server) wrapH2(c net.Conn) net.Conn {
	m := s.proxy.metrics
	return hideTLS{h2guard.Wrap(c, s.cfg.H2Guard, func() { m.rejections.WithLabelValues("http2", "rapid reset").Inc() })}
}

// hideTLS leaves only net.Conn's methods.
type hideTLS struct{ net.Conn }

// wrapTLS puts a handshaken TLS connection behind the guard of its protocol.
func (s *Server) wrapTLS(tc *tls.Conn) net.Conn {
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "h2" {
		return &h2Conn{Conn: s.wrapH2(tc), state: &state}
	}
	return s.guard.Wrap(tc)
}

// Listen binds the configured addresses, so Addrs is known before Serve.
func (s *Server) Listen() error {
	alog := &acceptLog{log: s.log}
	if s.cfg.Addr != "" {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
		}
		ll := newLimitListener(ln, "http", s.slots, alog, s.proxy.metrics.acceptErrors.WithLabelValues("http"), s.proxy.metrics.clientConns.WithLabelValues("http"))
		s.lns = append(s.lns, guardedListener{ll, s.guard})
		if s.cfg.HTTP1FastPath && !s.cfg.H2C {
			s.servers = append(s.servers, s.newFastServer())
		} else {
			s.servers = append(s.servers, s.newHTTPServer(false))
		}
	}
	if s.cfg.TLSAddr != "" {
		tlsCfg := s.cfg.TLSConfig.Clone()
		if len(tlsCfg.NextProtos) == 0 {
			tlsCfg.NextProtos = []string{"h2", "http/1.1"}
		}
		if tlsCfg.MinVersion == 0 {
			tlsCfg.MinVersion = tls.VersionTLS12
		}
		ln, h, err := s.listenTLS(tlsCfg)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.h3 = h
		srv := s.newHTTPServer(true)
		ll := newLimitListener(ln, "https", s.slots, alog, s.proxy.metrics.acceptErrors.WithLabelValues("https"), s.proxy.metrics.clientConns.WithLabelValues("https"))
		s.tls = newTLSListener(ll, tlsCfg, s.cfg.ReadHeaderTimeout, s.wrapTLS, s.log)
		s.lns = append(s.lns, s.tls)
		s.servers = append(s.servers, srv)
	}
	return nil
}

// listenTLS binds the TLS listener's TCP socket and, with HTTP/3, the UDP socket of the same
// port. When the kernel picks the port (port 0), that port may be free for TCP and held by
// another UDP socket: the pair is then bound again on another port, up to eight times.
func (s *Server) listenTLS(tlsCfg *tls.Config) (net.Listener, *h3, error) {
	_, port, _ := net.SplitHostPort(s.cfg.TLSAddr)
	listen := s.listenTCP
	if listen == nil {
		listen = net.Listen
	}
	for try := 1; ; try++ {
		ln, err := listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: %w", s.cfg.TLSAddr, err)
		}
		if !s.cfg.HTTP3 {
			return ln, nil, nil
		}
		h, err := newH3(ln.Addr(), tlsCfg, s.tlsHandler(), s.cfg)
		if err == nil {
			return ln, h, nil
		}
		_ = ln.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || try == 8 {
			return nil, nil, err
		}
	}
}

// guardedListener puts the HTTP/1 guard on every accepted plain connection.
type guardedListener struct {
	*limitListener
	guard *h1.Guard
}

func (l guardedListener) Accept() (net.Conn, error) {
	c, err := l.limitListener.Accept()
	if err != nil {
		return nil, err
	}
	return l.guard.Wrap(c), nil
}

// Close releases the listeners of a server that bound them (Listen) but will not Serve, for
// a start-up that failed after Listen. A served server closes them itself when Serve returns.
func (s *Server) Close() {
	s.closeListeners()
	if s.tls != nil {
		s.tls.closeConns()
	}
	if s.h3 != nil {
		s.h3.close()
	}
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	s.lns = nil
}

// Addrs returns the bound addresses, plain listener first.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Serve serves until ctx ends, then drains: new requests get 503 and Connection: close,
// listeners close, in-flight requests and upgraded connections get DrainTimeout to finish,
// and whatever is left is cut. It returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context) error {
	if len(s.lns) == 0 {
		return errors.New("proxy server: Serve before Listen")
	}
	errc := make(chan error, len(s.servers)+1)
	if s.h3 != nil {
		go func() { errc <- s.h3.serve() }()
	}
	for i, srv := range s.servers {
		go func() {
			if err := srv.Serve(s.lns[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.shutdown()
	for range len(s.servers) + boolInt(s.h3 != nil) - boolInt(serveErr != nil) {
		if err := <-errc; err != nil && serveErr == nil {
			serveErr = err
		}
	}
	return serveErr
}

func (s *Server) shutdown() {
	s.proxy.Drain()
	s.log.Info("draining", "timeout", s.cfg.DrainTimeout.String(), "inflight", s.proxy.InFlight())
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		srv.SetKeepAlivesEnabled(false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Shutdown(dctx) // closes listeners and idle connections, waits for active ones
		}()
	}
	if s.h3 != nil {
		wg.Go(func() { s.h3.shutdown(dctx) }) // GOAWAY, then waits for requests in flight
	}
	// Shutdown returns once every non-upgraded connection has finished its response (or the
	// deadline passed); upgraded connections are invisible to it but counted in flight.
	wg.Wait()
	s.waitIdle(dctx)
	left := s.proxy.InFlight()
	s.proxy.CloseUpgrades()
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	if s.tls != nil {
		s.tls.closeConns()
	}
	if s.h3 != nil {
		s.h3.close()
	}
	s.proxy.Close()
	s.log.Info("drained", "cut", left)
}

// waitIdle returns when nothing is in flight or ctx ends. Polling keeps the request path free
// of any signalling; drains are rare and 20 ms is far below any drain timeout.
func (s *Server) waitIdle(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.proxy.InFlight() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Drain puts the node out of service without stopping it (admin API): new requests get 503,
// kept-alive clients are told to close, and upgraded connections still open after
// DrainTimeout are closed. Undrain reverses it.
func (s *Server) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proxy.Draining() {
		return
	}
	s.proxy.Drain()
	for _, srv := range s.servers {
		srv.SetKeepAlivesEnabled(false)
	}
	s.drainTimer = time.AfterFunc(s.cfg.DrainTimeout, s.proxy.CloseUpgrades)
	s.log.Info("drained by admin request", "timeout", s.cfg.DrainTimeout.String())
}

// Undrain puts a drained node back in service.
func (s *Server) Undrain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drainTimer != nil {
		s.drainTimer.Stop()
		s.drainTimer = nil
	}
	for _, srv := range s.servers {
		srv.SetKeepAlivesEnabled(true)
	}
	s.proxy.Undrain()
	s.log.Info("undrained by admin request")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// connInfo is what the proxy's handler learns about the client connection a request came on.
type connInfo struct {
	h1          *h1.Conn             // the HTTP/1 guard; nil on HTTP/2
	tls         *tls.ConnectionState // set on HTTP/2, where net/http leaves Request.TLS nil
	maxRequests int64                // 0: unlimited
	requests    atomic.Int64
}

type connKey struct{}

// connCtx is a connection's base context carrying its connInfo: one allocation, where
// context.WithValue over a separate connInfo took two, held by every idle connection.
type connCtx struct {
	context.Context
	ci connInfo
}

func (c *connCtx) Value(key any) any {
	if key == (connKey{}) {
		return &c.ci
	}
	return c.Context.Value(key)
}

func withConn(ctx context.Context, ci *connInfo) context.Context {
	return context.WithValue(ctx, connKey{}, ci)
}

// connFrom returns the request's connInfo; nil when the handler runs under another server
// (tests with httptest).
func connFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	return ci
}

// lastRequest counts a request on the connection and reports whether the connection should
// close after it.
func (ci *connInfo) lastRequest() bool {
	return ci.maxRequests > 0 && ci.requests.Add(1) >= ci.maxRequests
}
