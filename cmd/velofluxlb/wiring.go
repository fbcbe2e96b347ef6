package main

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/proxy"
	"github.com/veloflux/veloflux/proxy/ratelimit"
)

// checkRunnable reports settings that are valid YAML but that this build cannot serve.
func checkRunnable(c *config.Config) error {
	t := c.Global.TLS
	if t.AutoCert {
		return errors.New("global.tls.auto_cert: ACME certificates are not supported by this version; set global.tls.cert_file and key_file")
	}
	if c.Global.TLSBindAddress != "" && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("global.tls_bind_address: needs global.tls.cert_file and global.tls.key_file")
	}
	return checkRegions(c)
}

// staticSnapshot turns the configured pools and routes into the static discovery snapshot.
// A static backend's ID is its address, unique within its pool.
func staticSnapshot(c *config.Config) *discovery.Snapshot {
	s := &discovery.Snapshot{Source: "static"}
	for _, p := range c.Pools {
		dp := discovery.Pool{Name: p.Name, Algorithm: p.Algorithm, Sticky: p.StickySessions}
		scheme := p.Protocol
		if scheme == config.ProtocolHTTP {
			scheme = "" // the proxy's default
		}
		for _, b := range p.Backends {
			path := b.HealthCheck.Path
			if path == "" {
				path = p.HealthCheck.Path
			}
			dp.Backends = append(dp.Backends, discovery.Backend{
				ID: b.Address, Address: b.Address, Weight: b.Weight, HealthPath: path,
				Scheme: scheme, TLSSkipVerify: p.TLSSkipVerify, Region: b.Region,
			})
		}
		s.Pools = append(s.Pools, dp)
	}
	for _, r := range c.Routes {
		s.Routes = append(s.Routes, discovery.Route{Host: r.Host, PathPrefix: r.PathPrefix, StripPrefix: r.StripPrefix, Pool: r.Pool, Geo: r.Geo})
	}
	return s
}

func healthConfig(c *config.Config) health.Config {
	hc := health.DefaultConfig()
	hc.Interval = c.Global.HealthCheck.Interval
	hc.Timeout = c.Global.HealthCheck.Timeout
	hc.Fall = c.Global.HealthCheck.Retries
	return hc
}

// proxyConfig is the reloadable part of the proxy's settings.
func proxyConfig(c *config.Config) proxy.Config {
	pc := proxy.DefaultConfig()
	pc.TrustedProxies = c.Global.TrustedProxies
	pc.AccessLog = c.Global.AccessLog
	pc.Retry = proxy.RetryConfig{Attempts: c.Retry.Attempts, Timeout: c.Retry.Timeout}
	pc.Sticky = proxy.StickyConfig{
		CookieName: c.Sticky.CookieName,
		TTL:        c.Sticky.TTL,
		Secure:     c.Sticky.Secure,
		HTTPOnly:   c.Sticky.HTTPOnly,
		SameSite:   c.Sticky.SameSiteMode(),
		Secret:     []byte(c.Sticky.Secret),
	}
	rl := c.RateLimit
	pc.RateLimit = ratelimit.Config{
		RequestsPerSecond: rl.RequestsPerSecond,
		MaxClients:        rl.MaxClients,
		IPv6Prefix:        rl.IPv6Prefix,
	}
	if rl.RequestsPerSecond > 0 {
		pc.RateLimit.Burst = rl.EffectiveBurst()
	}
	for _, r := range rl.Rules {
		rule := ratelimit.Rule{Prefix: r.CIDR, RequestsPerSecond: r.RequestsPerSecond, Exempt: r.Exempt}
		if !r.Exempt {
			rule.Burst = r.EffectiveBurst()
		}
		pc.RateLimit.Rules = append(pc.RateLimit.Rules, rule)
	}
	return pc
}

func transportConfig(c *config.Config) proxy.TransportConfig {
	t := c.Global.Timeouts
	return proxy.TransportConfig{
		DialTimeout:           t.BackendDial,
		ResponseHeaderTimeout: t.BackendResponseHeader,
		IdleConnTimeout:       t.BackendIdle,
		MaxIdleConnsPerHost:   c.Global.Limits.MaxIdleConnsPerBackend,
		MaxConnsPerHost:       c.Global.Limits.MaxConnsPerBackend,
	}
}

func serverConfig(c *config.Config) (proxy.ServerConfig, error) {
	g := c.Global
	sc := proxy.ServerConfig{
		Addr:              g.BindAddress,
		TLSAddr:           g.TLSBindAddress,
		ReadHeaderTimeout: g.Timeouts.ReadHeader,
		ReadTimeout:       g.Timeouts.Read,
		IdleTimeout:       g.Timeouts.Idle,
		MaxHeaderBytes:    g.Limits.MaxHeaderBytes,
		DrainTimeout:      g.DrainTimeout,
	}
	if g.TLSBindAddress != "" {
		cert, err := tls.LoadX509KeyPair(g.TLS.CertFile, g.TLS.KeyFile)
		if err != nil {
			return sc, fmt.Errorf("global.tls: loading certificate: %w", err)
		}
		sc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return sc, nil
}
