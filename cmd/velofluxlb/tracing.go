package main

import (
	"context"
	"os"
	"strings"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/proxy"
	"github.com/veloflux/veloflux/telemetry/tracing"
)

// newTracing builds the tracer provider when tracing is enabled, nil otherwise. It opens
// nothing: the exporter connects when it first sends.
func (a *app) newTracing(cfg *config.Config) (*tracing.Provider, error) {
	if !cfg.Tracing.Enabled {
		return nil, nil
	}
	node := cfg.Cluster.Name
	if node == "" {
		node, _ = os.Hostname() // only a label: a node without a host name goes without it
	}
	return tracing.New(context.Background(), cfg.Tracing, tracing.Options{
		Version:    version,
		Node:       node,
		Region:     cfg.Geo.NodeRegion,
		Logger:     a.log.With("component", "tracing"),
		Registerer: a.reg,
		LookupEnv:  func(k string) (string, bool) { return lookupEnv(a.environ, k) },
	})
}

// traceTrust maps tracing.trust_incoming to the proxy's setting.
func traceTrust(mode string) proxy.TraceTrust {
	switch mode {
	case tracing.TrustAll:
		return proxy.TraceTrustAll
	case tracing.TrustNone:
		return proxy.TraceTrustNone
	}
	return proxy.TraceTrustTrusted
}

// lookupEnv is os.LookupEnv over environ; the last of repeated variables wins.
func lookupEnv(environ []string, key string) (string, bool) {
	v, found := "", false
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v, found = val, true
		}
	}
	return v, found
}
