package main

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/acme"
	"github.com/veloflux/veloflux/acme/consulkv"
	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/discovery/consul"
)

// newACME builds the ACME manager of a node with global.tls.auto_cert, its state in Consul
// KV or under cert_dir as Config.ACMEStorage says; nil without auto_cert.
func newACME(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*acme.Manager, error) {
	t := cfg.Global.TLS
	if !t.AutoCert {
		return nil, nil
	}
	ac := acme.DefaultConfig()
	ac.Directory, ac.CARootFile, ac.Email = t.ACMEDirectory, t.ACMECARoot, t.ACMEEmail
	ac.DisableHTTPChallenge = !slices.Contains(t.ACMEChallenges, config.ACMEChallengeHTTP01)
	ac.DisableTLSALPNChallenge = !slices.Contains(t.ACMEChallenges, config.ACMEChallengeTLSALPN01)
	switch cfg.ACMEStorage() {
	case config.ACMEStorageConsul:
		client, err := consul.NewClient(cfg.Discovery.Consul)
		if err != nil {
			return nil, err
		}
		if ac.Storage, err = consulkv.New(client, t.Config, log); err != nil {
			return nil, fmt.Errorf("global.tls: %w", err)
		}
	default:
		ac.Storage = &certmagic.FileStorage{Path: t.CertDir}
	}
	m, err := acme.New(ac, log, reg)
	if err != nil {
		return nil, fmt.Errorf("global.tls: %w", err)
	}
	return m, nil
}

// routeHosts lists the hosts of a routing table's routes, for the ACME manager, which keeps
// the names it can certify.
func routeHosts(s *discovery.Snapshot) []string {
	hosts := make([]string, 0, len(s.Routes))
	for _, r := range s.Routes {
		hosts = append(hosts, r.Host)
	}
	return hosts
}
