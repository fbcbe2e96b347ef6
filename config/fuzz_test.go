package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary files and one arbitrary environment entry to Parse. It must never
// panic; a config it returns must be valid; a failure must be a YAML error or a non-empty
// Errors whose entries all say something.
func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "VFX_LOG_LEVEL=debug")
	f.Add([]byte(minimal), "VFX_GLOBAL__TRUSTED_PROXIES=10.0.0.0/8,::1")
	f.Add([]byte("global:\n  drain_timeout: 0\n  health_check: {interval: 1s}\n"), "VFX_GLOBAL__HEALTH_CHECK__TIMEOUT=2s")
	f.Add([]byte("pools: [{name: a, backends: [{address: \"[::1]:1\", weight: 3}]}]\nroutes: [{host: \"*.A.b:9\", pool: a}]\n"), "VFX_POOLS=x")
	f.Add([]byte("rate_limit: {requests_per_second: .nan, rules: [{cidr: \"::ffff:1.2.3.4/120\"}]}\n"), "VFX_=")
	f.Add([]byte("a: &x [*x]\n"), "VFX_STICKY_SECRET=0123456789abcdef0123456789abcdef")
	f.Add([]byte("global: {1: 2, \"a.b\": [], null: ~}\n---\n"), "VFX_GLOBAL__TLS=1")
	f.Add([]byte("discovery:\n  consul: {enabled: true, token: 12e3, datacenters: [dc1, DC2, dc1], register: {enabled: true, tags: [\"\"]}}\npools: [{name: a, protocol: h2c, tls_skip_verify: true}]\n"), "VFX_CONSUL_TOKEN=a b")
	f.Add([]byte("discovery: {consul: {datacenter: dc1, wait_time: 10m, coalesce: 0}}\n"), "VFX_DISCOVERY__CONSUL__DATACENTERS=dc2,,dc1")
	f.Add([]byte("geo:\n  database: /g.mmdb\n  node_region: eu\n  country_regions: {DE: eu, de: ~, 1: [x]}\n  continent_regions: {EU: eu}\n  regions: [{name: eu, lat: .nan, redirect_host: \"[::1]:8443\"}, {name: eu, lon: 181}]\npools: [{name: p, backends: [{address: a:1, region: US}]}]\nroutes: [{pool: p, geo: redirect}, {pool: p, host: b, geo: nearest}]\n"), "VFX_GEO__COUNTRY_REGIONS__DE=eu")
	f.Add([]byte("geo: {cache_size: 0, response_header: \"X Region\", regions: [{name: a, lat: 1, lon: 2, redirect_host: \"https://a/\"}]}\n"), "VFX_GEO__CACHE_SIZE=10")
	f.Add([]byte("cluster:\n  enabled: true\n  bind_address: \"0.0.0.0:7946\"\n  advertise_address: \"[::]:0\"\n  preset: WAN\n  gossip_key: \"a2V5a2V5a2V5a2V5a2V5a2V5\"\n  label: \"a b\"\n  seeds: [\"x:1\", \"\", \"[::1:2\"]\n  join_consul: true\n  queue_size: 0\n  push_pull_max_bytes: 1023\n  tombstone_ttl: -1s\n"), "VFX_GOSSIP_KEY=a2V5,a2V5")
	f.Add([]byte("cluster: {bind_address: \"10.0.0.1:7946\", allow_insecure: true, gossip_key: 123, max_entries_per_kind: 10000001}\n"), "VFX_CLUSTER__SEEDS=a:1,,b")
	f.Fuzz(func(t *testing.T, data []byte, envEntry string) {
		c, err := Parse(data, []string{envEntry})
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", verr)
			}
			return
		}
		if c != nil {
			t.Fatal("Parse returned a config along with an error")
		}
		var errs Errors
		if !errors.As(err, &errs) {
			return // a YAML error
		}
		if len(errs) == 0 {
			t.Fatal("Parse returned empty Errors")
		}
		for _, e := range errs {
			if e.Msg == "" {
				t.Fatalf("problem at %q has no message", e.Path)
			}
		}
	})
}
