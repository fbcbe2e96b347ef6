package consul

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery"
)

// TestParseHealthTags covers the veloflux.health.* keys beyond path: each good value lands in
// settings.Health, each bad one is skipped with its default kept and a message naming it,
// and none of them drops the instance.
func TestParseHealthTags(t *testing.T) {
	p := newTagParser("veloflux")
	tests := []struct {
		name string
		tags []string
		meta map[string]string
		want discovery.HealthCheck
		msgs []string // problem messages, in order
	}{
		{
			name: "every key",
			tags: []string{
				"veloflux.health.type=http", "veloflux.health.method=HEAD", "veloflux.health.host=Svc.Internal:8443",
				"veloflux.health.expect_status=200-299, 301", "veloflux.health.interval=2s", "veloflux.health.timeout=500ms",
				"veloflux.health.max_interval=1m", "veloflux.health.rise=3", "veloflux.health.retries=4",
			},
			want: discovery.HealthCheck{
				Type: "http", Method: "HEAD", Host: "Svc.Internal:8443", ExpectStatus: "200-299,301",
				Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, MaxInterval: time.Minute, Rise: 3, Fall: 4,
			},
		},
		{name: "tcp", tags: []string{"veloflux.health.type=tcp"}, want: discovery.HealthCheck{Type: "tcp"}},
		{
			name: "from meta",
			meta: map[string]string{"veloflux_health_type": "tcp", "veloflux_health_expect_status": "204", "veloflux_health_retries": "2"},
			want: discovery.HealthCheck{Type: "tcp", ExpectStatus: "204", Fall: 2},
		},
		{
			name: "tags win over meta",
			tags: []string{"veloflux.health.method=HEAD"},
			meta: map[string]string{"veloflux_health_method": "OPTIONS"},
			want: discovery.HealthCheck{Method: "HEAD"},
		},
		{name: "bad type", tags: []string{"veloflux.health.type=udp"}, msgs: []string{`health.type must be http or tcp, got "udp"`}},
		{name: "bad method", tags: []string{"veloflux.health.method=GE T"}, msgs: []string{`health.method must be an HTTP method such as GET or HEAD, got "GE T"`}},
		{name: "wildcard host", tags: []string{"veloflux.health.host=*.example.com"}, msgs: []string{`health.host "*.example.com": a Host header cannot be a wildcard`}},
		{name: "bad host", tags: []string{"veloflux.health.host=a b"}, msgs: []string{`health.host "a b": invalid host "a b": invalid character ' ' (internationalized names must be written in punycode)`}},
		{name: "bad expect_status", tags: []string{"veloflux.health.expect_status=2xx"}, msgs: []string{`health.expect_status "2xx": not a status code`}},
		{name: "duration without unit", tags: []string{"veloflux.health.interval=10"}, msgs: []string{`health.interval must be a duration from 1ms to 24h such as 10s, got "10"`}},
		{name: "zero timeout", tags: []string{"veloflux.health.timeout=0s"}, msgs: []string{`health.timeout must be a duration from 1ms to 24h such as 10s, got "0s"`}},
		{name: "huge max_interval", tags: []string{"veloflux.health.max_interval=1000h"}, msgs: []string{`health.max_interval must be a duration from 1ms to 24h such as 10s, got "1000h"`}},
		{name: "zero rise", tags: []string{"veloflux.health.rise=0"}, msgs: []string{`health.rise must be 1..1000, got "0"`}},
		{name: "text retries", tags: []string{"veloflux.health.retries=three"}, msgs: []string{`health.retries must be 1..1000, got "three"`}},
		{
			name: "a bad key keeps the good ones",
			tags: []string{"veloflux.health.type=tcp", "veloflux.health.rise=-1", "veloflux.health.interval=5s"},
			want: discovery.HealthCheck{Type: "tcp", Interval: 5 * time.Second},
			msgs: []string{`health.rise must be 1..1000, got "-1"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, probs := p.parse(tt.tags, tt.meta)
			if s.Health != tt.want {
				t.Errorf("Health = %+v, want %+v", s.Health, tt.want)
			}
			var msgs []string
			for _, pr := range probs {
				if pr.Drop {
					t.Errorf("problem %+v drops the instance; a health key never does", pr)
				}
				msgs = append(msgs, pr.Msg)
			}
			if !reflect.DeepEqual(msgs, tt.msgs) {
				t.Errorf("problems %q, want %q", msgs, tt.msgs)
			}
		})
	}
}

// TestBuildCarriesHealthTags checks that an instance's health settings reach its backend, and
// that an instance whose checks are critical in Consul is no backend at all, whatever its
// own health tags ask for: Consul's verdict wins.
func TestBuildCarriesHealthTags(t *testing.T) {
	tags := []string{"veloflux.enable=true", "veloflux.route=/", "veloflux.health.type=tcp", "veloflux.health.interval=3s"}
	entries := []*api.ServiceEntry{
		entry("n1", "10.0.0.1", "web-1", "web", "", 80, tags, nil, api.HealthPassing),
		entry("n2", "10.0.0.2", "web-2", "web", "", 80, tags, nil, api.HealthCritical),
	}
	insts, errs := entryFilter{tags: newTagParser("veloflux")}.instances("dc1", entries)
	if len(errs) != 0 {
		t.Fatalf("tag errors %v", errs)
	}
	snap, _ := buildSnapshot(insts)
	pool, ok := snap.Pool("web")
	if !ok {
		t.Fatal("no pool web")
	}
	want := []discovery.Backend{{
		ID: "dc1/n1/web-1", Address: "10.0.0.1:80", Weight: 1, Region: "dc1",
		HealthCheck: discovery.HealthCheck{Type: "tcp", Interval: 3 * time.Second},
	}}
	if !reflect.DeepEqual(pool.Backends, want) {
		t.Fatalf("backends\n got %+v\nwant %+v", pool.Backends, want)
	}
}
