package config_test

import (
	"testing"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery/consul"
)

// TestConsulDefaultsMatchClient keeps discovery.consul's defaults equal to the Consul client's
// own, so a key left out of the file means what the consul package documents. It lives in an
// external test package because config must not import the Consul client, and consul may one
// day import config.
func TestConsulDefaultsMatchClient(t *testing.T) {
	got := config.Default().Discovery.Consul
	want := consul.DefaultConfig()
	tests := []struct {
		key       string
		got, want any
	}{
		{"address", got.Address, want.Address},
		{"scheme", got.Scheme, want.Scheme},
		{"token", got.Token, want.Token},
		{"token_file", got.TokenFile, want.TokenFile},
		{"datacenter", got.Datacenter, want.Datacenter},
		{"datacenters", len(got.Datacenters), len(want.Datacenters)},
		{"tls.ca_file", got.TLS.CAFile, want.TLS.CAFile},
		{"tls.cert_file", got.TLS.CertFile, want.TLS.CertFile},
		{"tls.key_file", got.TLS.KeyFile, want.TLS.KeyFile},
		{"tls.server_name", got.TLS.ServerName, want.TLS.ServerName},
		{"tls.insecure_skip_verify", got.TLS.InsecureSkipVerify, want.TLS.InsecureSkipVerify},
		{"tag_prefix", got.TagPrefix, want.TagPrefix},
		{"exposed_by_default", got.ExposedByDefault, want.ExposedByDefault},
		{"accept_warning", got.AcceptWarning, want.AcceptWarning},
		{"wait_time", got.WaitTime, want.WaitTime},
		{"coalesce", got.Coalesce, want.Coalesce},
		{"min_backoff", got.MinBackoff, want.MinBackoff},
		{"max_backoff", got.MaxBackoff, want.MaxBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("discovery.consul.%s default = %#v, consul.DefaultConfig() has %#v", tt.key, tt.got, tt.want)
			}
		})
	}
}
