package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerConfig says where and how the proxy listens. Fixed for the life of a Server.
type ServerConfig struct {
	// Addr is the plain HTTP listen address. Empty: no plain listener.
	Addr string
	// TLSAddr is the HTTPS listen address (HTTP/1.1 and HTTP/2). Empty: no TLS listener.
	TLSAddr string
	// TLSConfig serves TLSAddr. Required when TLSAddr is set.
	TLSConfig *tls.Config
	// ReadHeaderTimeout bounds reading request headers (slowloris). Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; 0 means none. Upgraded
	// connections are exempt. Default 60s.
	ReadTimeout time.Duration
	// IdleTimeout closes kept-alive client connections idle this long. Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps request header size. Default 1 MiB.
	MaxHeaderBytes int
	// DrainTimeout is how long in-flight requests and WebSockets get to finish when the
	// server stops or is drained. Default 30s.
	DrainTimeout time.Duration
}

// DefaultServerConfig returns the defaults documented on each field, listening on :8080.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Addr:              ":8080",
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		DrainTimeout:      30 * time.Second,
	}
}

// Server runs the proxy's listeners and its drain.
type Server struct {
	cfg     ServerConfig
	proxy   *Proxy
	log     *slog.Logger
	servers []*http.Server
	lns     []net.Listener

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
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, proxy: p, log: logger}, nil
}

func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.proxy,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Listen binds the configured addresses, so Addrs is known before Serve.
func (s *Server) Listen() error {
	if s.cfg.Addr != "" {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
		}
		s.lns = append(s.lns, ln)
		s.servers = append(s.servers, s.newHTTPServer())
	}
	if s.cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen %s: %w", s.cfg.TLSAddr, err)
		}
		srv := s.newHTTPServer()
		srv.TLSConfig = s.cfg.TLSConfig.Clone()
		if len(srv.TLSConfig.NextProtos) == 0 {
			srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		}
		s.lns = append(s.lns, tls.NewListener(ln, srv.TLSConfig))
		s.servers = append(s.servers, srv)
	}
	return nil
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
	errc := make(chan error, len(s.servers))
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
	for range len(s.servers) - boolInt(serveErr != nil) {
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
	// Shutdown returns once every non-upgraded connection has finished its response (or the
	// deadline passed); upgraded connections are invisible to it but counted in flight.
	wg.Wait()
	s.waitIdle(dctx)
	left := s.proxy.InFlight()
	s.proxy.CloseUpgrades()
	for _, srv := range s.servers {
		_ = srv.Close()
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
