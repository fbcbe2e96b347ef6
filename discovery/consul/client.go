package consul

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// NewClient returns a Consul API client for c. The token (or token file) is sent with every
// request and appears in no error this package returns.
func NewClient(c Config) (*api.Client, error) {
	if err := c.Validate(); err != nil {
		// Validate's paths are relative to the section; the caller's reader knows the file.
		return nil, fielderr.Prefix(sectionKey, err)
	}
	ac := api.DefaultNonPooledConfig() // our own transport: blocking queries hold connections for minutes
	ac.Address = c.Address
	ac.Scheme = c.Scheme
	ac.Datacenter = c.Datacenter
	ac.WaitTime = c.WaitTime
	// DefaultNonPooledConfig also read the process environment; only what c says counts.
	ac.Token, ac.TokenFile, ac.HttpAuth = c.Token, "", nil
	if c.Token == "" && c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("discovery.consul.token_file: %w", err)
		}
		ac.Token = strings.TrimSpace(string(b))
	}
	ac.TLSConfig = api.TLSConfig{
		Address:            c.TLS.ServerName,
		CAFile:             c.TLS.CAFile,
		CertFile:           c.TLS.CertFile,
		KeyFile:            c.TLS.KeyFile,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify,
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return client, nil
}
