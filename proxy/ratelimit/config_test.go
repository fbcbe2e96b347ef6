package ratelimit_test

import (
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/proxy/ratelimit"
)

func TestNewValidates(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name string
		cfg  ratelimit.Config
		want []string // substrings the error must contain; none means New must succeed
	}{
		{"zero config is valid (limiting off; New reads 0 as the defaults)", ratelimit.Config{}, nil},
		{"defaults are valid", ratelimit.DefaultConfig(), nil},
		{"full config is valid", ratelimit.Config{
			RequestsPerSecond: 50, Burst: 100, MaxClients: 10, IPv6Prefix: 56,
			Rules: []ratelimit.Rule{
				{Prefix: pfx("10.0.0.0/8"), Exempt: true},
				{Prefix: pfx("2001:db8::/32"), RequestsPerSecond: 0.1},
			},
		}, nil},
		{"negative rate", ratelimit.Config{RequestsPerSecond: -1}, []string{"requests_per_second: must be a finite number >= 0, got -1"}},
		{"NaN rate", ratelimit.Config{RequestsPerSecond: math.NaN()}, []string{"got NaN"}},
		{"infinite rate", ratelimit.Config{RequestsPerSecond: math.Inf(1)}, []string{"got +Inf"}},
		{"rate above one per nanosecond", ratelimit.Config{RequestsPerSecond: 2e9}, []string{"requests_per_second: 2e+09 exceeds 1e+09"}},
		{"negative burst", ratelimit.Config{RequestsPerSecond: 1, Burst: -5}, []string{"burst: must be >= 0, got -5"}},
		{"refill time overflows", ratelimit.Config{RequestsPerSecond: 1e-9, Burst: 10}, []string{"burst: 10 requests at 1e-09 per second take more than 73 years to refill"}},
		{"negative max clients", ratelimit.Config{MaxClients: -1}, []string{"max_clients: must be between 1 and 16777216, got -1"}},
		{"too many max clients", ratelimit.Config{MaxClients: 1 << 30}, []string{"max_clients: must be between 1 and 16777216, got 1073741824"}},
		{"negative IPv6 prefix", ratelimit.Config{IPv6Prefix: -1}, []string{"ipv6_prefix: must be between 1 and 128, got -1"}},
		{"IPv6 prefix too long", ratelimit.Config{IPv6Prefix: 129}, []string{"ipv6_prefix: must be between 1 and 128, got 129"}},
		{"rule without prefix", ratelimit.Config{Rules: []ratelimit.Rule{{Exempt: true}}}, []string{"rules[0].cidr: required"}},
		{"rule with IPv4 prefix length over 32", ratelimit.Config{Rules: []ratelimit.Rule{
			{Prefix: pfx("10.0.0.0/8"), Exempt: true},
			{Prefix: netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33), Exempt: true},
		}}, []string{"rules[1].cidr: length out of range for 10.0.0.0"}},
		{"rule inside an earlier rule's range", ratelimit.Config{Rules: []ratelimit.Rule{
			{Prefix: pfx("10.0.0.0/8"), RequestsPerSecond: 1},
			{Prefix: pfx("10.1.0.0/16"), Exempt: true},
		}}, []string{"rules[1].cidr: never matches: rules[0] (10.0.0.0/8) comes first and covers 10.1.0.0/16"}},
		{"IPv4-mapped rule inside an earlier IPv4 rule", ratelimit.Config{Rules: []ratelimit.Rule{
			{Prefix: pfx("10.0.0.0/8"), Exempt: true},
			{Prefix: pfx("::ffff:10.1.0.0/112"), Exempt: true},
		}}, []string{"rules[1].cidr: never matches: rules[0] (10.0.0.0/8)"}},
		{"rule more general than an earlier one is kept", ratelimit.Config{Rules: []ratelimit.Rule{
			{Prefix: pfx("10.1.0.0/16"), Exempt: true},
			{Prefix: pfx("10.0.0.0/8"), RequestsPerSecond: 1},
		}}, nil},
		{"rule without rate", ratelimit.Config{Rules: []ratelimit.Rule{{Prefix: pfx("10.0.0.0/8")}}}, []string{"rules[0].requests_per_second: must be > 0 (set exempt to disable limiting)"}},
		{"rule with negative rate", ratelimit.Config{Rules: []ratelimit.Rule{{Prefix: pfx("10.0.0.0/8"), RequestsPerSecond: -2}}}, []string{"rules[0].requests_per_second: must be a finite number >= 0, got -2"}},
		{"rule with negative burst", ratelimit.Config{Rules: []ratelimit.Rule{{Prefix: pfx("10.0.0.0/8"), RequestsPerSecond: 1, Burst: -1}}}, []string{"rules[0].burst: must be >= 0, got -1"}},
		{"exempt rule with a rate", ratelimit.Config{Rules: []ratelimit.Rule{{Prefix: pfx("10.0.0.0/8"), Exempt: true, RequestsPerSecond: 3}}}, []string{"rules[0].exempt: must not be combined with requests_per_second or burst (got 3 and 0)"}},
		{"every problem is reported at once", ratelimit.Config{
			RequestsPerSecond: -1, MaxClients: -1, IPv6Prefix: 200,
			Rules: []ratelimit.Rule{{Prefix: pfx("10.0.0.0/8")}, {RequestsPerSecond: 1}},
		}, []string{"requests_per_second:", "max_clients:", "ipv6_prefix:", "rules[0].requests_per_second:", "rules[1].cidr: required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ratelimit.New(tc.cfg)
			if len(tc.want) == 0 {
				if err != nil || l == nil {
					t.Fatalf("New: %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if l != nil {
				t.Error("New returned a Limiter with its error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ratelimit: invalid config: ") {
				t.Errorf("error %q lacks the package context", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if verr := tc.cfg.Validate(); verr == nil {
				t.Error("Validate accepted what New rejected")
			}
		})
	}
}
