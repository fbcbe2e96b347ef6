package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/acme"
	"github.com/veloflux/veloflux/certs"
	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
	"github.com/veloflux/veloflux/internal/backendtls"
	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/proxy"
)

// staticSnapshot turns the configured pools and routes into the static discovery snapshot.
// A static backend's ID is its address, unique within its pool.
func staticSnapshot(c *config.Config, pc *pace.Pacer) *discovery.Snapshot {
	s := &discovery.Snapshot{Source: "static", Pools: make([]discovery.Pool, 0, len(c.Pools)), Routes: make([]discovery.Route, 0, len(c.Routes))}
	for _, p := range c.Pools {
		pc.Step()
		// MaxConnsPerBackend is the pool's effective cap (Load wrote the global one into pools
		// without their own); Consul pools leave it 0, which means the proxy's global cap.
		dp := discovery.Pool{Name: p.Name, Algorithm: p.Algorithm, Sticky: p.StickySessions, MaxConnsPerBackend: p.MaxConnsPerBackend}
		scheme := p.Protocol
		if scheme == config.ProtocolHTTP {
			scheme = "" // the proxy's default
		}
		// Sized once: a Backend is large, and growing the slice for a pool of thousands
		// copied them over and over (a tenth of a reload's time with 10,000 backends).
		dp.Backends = make([]discovery.Backend, 0, len(p.Backends))
		tlsSettings := backendTLS(p)
		for _, b := range p.Backends {
			path := b.HealthCheck.Path
			if path == "" {
				path = p.HealthCheck.Path
			}
			dp.Backends = append(dp.Backends, discovery.Backend{
				ID: b.Address, Address: b.Address, Weight: b.Weight, HealthPath: path,
				Scheme: scheme, TLSSkipVerify: p.TLSSkipVerify || p.TLS.InsecureSkipVerify, TLS: tlsSettings, Region: b.Region,
				// The backend's own overrides; healthTargets falls back to the pool's.
				HealthCheck: discovery.HealthCheck{Method: b.HealthCheck.Method, Host: b.HealthCheck.Host, ExpectStatus: b.HealthCheck.ExpectStatus},
			})
		}
		s.Pools = append(s.Pools, dp)
	}
	for _, r := range c.Routes {
		s.Routes = append(s.Routes, discovery.Route{Host: r.Host, PathPrefix: r.PathPrefix, StripPrefix: r.StripPrefix, Pool: r.Pool, Geo: r.Geo})
	}
	return s
}

// backendTLS is a pool's tls section as the proxy and the health checks take it; zero when
// the pool asks for nothing but (perhaps) skipping verification, which TLSSkipVerify says.
func backendTLS(p config.Pool) backendtls.Settings {
	t := p.TLS
	s := backendtls.Settings{CAFile: t.CAFile, ServerName: t.ServerName, CertFile: t.CertFile, KeyFile: t.KeyFile}
	if s.IsZero() {
		return s
	}
	s.InsecureSkipVerify = p.TLSSkipVerify || t.InsecureSkipVerify
	return s
}

// newHealthChecks builds the active checker and the passive checks, wired to each other: an
// ejected backend whose time is up gets an immediate probe from the checker, and returns at
// its first successful one. Pools and targets come later, from routing.
func newHealthChecks(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*health.Checker, *health.Passive, error) {
	checker, err := health.NewChecker(cfg.Global.HealthCheck, nil, log.With("component", "health"), reg)
	if err != nil {
		return nil, nil, err
	}
	passive, err := health.NewPassive(checker, log.With("component", "health.passive"), reg)
	if err != nil {
		return nil, nil, err
	}
	checker.OnResult(passive.ObserveProbe)
	return checker, passive, nil
}

// newConsensus builds the health view shared with the cluster: each backend is probed by
// cluster.health.probers nodes and judged by their consensus; without a cluster this node
// probes everything and decides alone. A passive ejection seen here takes effect here at once
// (healthView) and is shared with the peers as an observation, for their admin views.
// cl nil means no cluster.
func newConsensus(cfg *config.Config, cl *cluster, checker *health.Checker, passive *health.Passive, log *slog.Logger, reg prometheus.Registerer) (*consensus.View, error) {
	cc := cfg.Cluster.Health
	var g consensus.Gossip
	if cl != nil {
		cc.NodeName = cl.name
		g = consensus.Gossip{Store: cl.store, Broadcaster: cl.node, Members: cl.node}
	}
	// The component keeps the name it had while the consensus lived in package health, so
	// operators' log filters still match.
	v, err := consensus.New(cc, checker, g, log.With("component", "health.cluster"), reg)
	if err != nil {
		return nil, err
	}
	passive.OnChange(v.ReportLocal)
	return v, nil
}

// proxyConfig is the reloadable part of the proxy's settings.
func proxyConfig(c *config.Config) proxy.Config {
	pc := proxy.DefaultConfig()
	pc.TrustedProxies = c.Global.TrustedProxies
	pc.AccessLog = c.Global.AccessLog
	pc.Retry = c.Retry
	pc.MaxConnsPerBackend = c.Global.Limits.MaxConnsPerBackend
	pc.BackendQueueTimeout = c.Global.Limits.BackendQueueTimeout
	pc.Sticky = c.Sticky
	pc.RateLimit = c.RateLimit
	return pc
}

func transportConfig(c *config.Config) proxy.TransportConfig {
	t := c.Global.Timeouts
	return proxy.TransportConfig{
		DialTimeout:           t.BackendDial,
		ResponseHeaderTimeout: t.BackendResponseHeader,
		IdleConnTimeout:       t.BackendIdle,
		MaxIdleConnsPerHost:   c.Global.Limits.MaxIdleConnsPerBackend,
		FastHTTP1:             c.Global.HTTP1FastPath,
	}
}

// serverConfig is the proxy server's configuration; its TLS listener serves the
// certificates of store (files) or of mgr (ACME, which also answers challenges).
func serverConfig(c *config.Config, store *certs.Store, mgr *acme.Manager) (proxy.ServerConfig, error) {
	g := c.Global
	sc := proxy.ServerConfig{
		Addr:              g.BindAddress,
		TLSAddr:           g.TLSBindAddress,
		ReadHeaderTimeout: g.Timeouts.ReadHeader,
		ReadTimeout:       g.Timeouts.Read,
		IdleTimeout:       g.Timeouts.Idle,
		MaxHeaderBytes:    g.Limits.MaxHeaderBytes,
		DrainTimeout:      g.DrainTimeout,

		MaxHeaderCount:         g.Limits.MaxHeaderCount,
		H2MaxConcurrentStreams: uint32(g.Limits.H2MaxConcurrentStreams),
		MaxRequestsPerConn:     int64(g.Limits.MaxRequestsPerConn),
		MaxClientConns:         g.Limits.MaxClientConns,
		H2C:                    g.H2C,
		HTTP1FastPath:          g.HTTP1FastPath,
		H2MaxFrameSize:         g.Limits.H2MaxFrameSize,
		H2StreamWindow:         g.Limits.H2StreamWindow,
		H2ConnWindow:           g.Limits.H2ConnWindow,
	}
	if g.TLSBindAddress != "" {
		switch {
		case mgr != nil:
			sc.TLSConfig = mgr.TLSConfig()
			sc.HTTPChallenge = mgr.HandleHTTPChallenge
		case store != nil:
			sc.TLSConfig = &tls.Config{GetCertificate: store.GetCertificate, MinVersion: tls.VersionTLS12}
		default:
			return sc, errors.New("global.tls_bind_address: no certificates")
		}
		sc.RedirectHTTPS = g.TLS.RedirectHTTP
		sc.HSTS = g.TLS.HSTS
		sc.HTTP3 = g.HTTP3
	}
	return sc, nil
}

// newCertStore loads the certificate files of the TLS listener; nil without one.
func newCertStore(c *config.Config, log *slog.Logger, reg prometheus.Registerer) (*certs.Store, error) {
	if c.Global.TLSBindAddress == "" || c.Global.TLS.AutoCert {
		return nil, nil
	}
	s, err := certs.New(certs.Config{Pairs: c.Global.TLS.CertificatePairs()}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("global.tls: %w", err)
	}
	return s, nil
}
