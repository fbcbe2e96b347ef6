package ratelimit

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// Rule gives the clients inside Prefix their own rate, or exempts them from limiting.
type Rule struct {
	// Prefix selects clients by address. An IPv4-mapped prefix of /96 or longer
	// (::ffff:10.0.0.0/104) means the IPv4 prefix it maps (10.0.0.0/8). Other IPv6 prefixes,
	// ::/0 included, never match IPv4 clients: add an IPv4 rule for those.
	Prefix netip.Prefix `koanf:"cidr"`
	// RequestsPerSecond is the sustained rate for each client in Prefix (each address for
	// IPv4, each Config.IPv6Prefix network for IPv6). Required (> 0) unless Exempt. Where
	// one IPv6 network holds clients of different rules, they share its bucket and each
	// request is measured against its own rule.
	RequestsPerSecond float64 `koanf:"requests_per_second"`
	// Burst is the bucket size in requests. Default 0 = ceil(RequestsPerSecond), at least 1.
	Burst int `koanf:"burst"`
	// Exempt clients are never limited and never tracked. RequestsPerSecond and Burst must
	// then be 0, so a rule cannot look rate-limited while it is not.
	Exempt bool `koanf:"exempt"`
}

// Config sets the limits: the rate_limit section of the config file. Rules are checked in the given order and the first whose Prefix
// contains the client wins, so list the most specific prefixes first.
type Config struct {
	// RequestsPerSecond is the sustained rate per client that no rule matches.
	// 0 (the default) disables limiting for those clients.
	RequestsPerSecond float64 `koanf:"requests_per_second"`
	// Burst is the bucket size in requests: how many a client may send at once after being
	// idle. Default 0 = ceil(RequestsPerSecond), at least 1.
	Burst int `koanf:"burst"`
	// MaxClients bounds the buckets tracked at once, and so the memory: 32 bytes each,
	// allocated in New. Default 100000 (3.2 MB), 1..1<<24; New reads 0 as the default.
	MaxClients int `koanf:"max_clients"`
	// IPv6Prefix is the prefix length, in bits, of the network that IPv6 clients share one
	// bucket per. Default 64: ISPs hand a /64 or more to one customer. 1..128;
	// New reads 0 as the default. IPv4 clients are always limited per address.
	IPv6Prefix int `koanf:"ipv6_prefix"`
	// Rules override the default rate for the clients they match; see Rule. A rule inside
	// the range of an earlier one could never match, and is refused.
	Rules []Rule `koanf:"rules"`
}

const (
	defaultMaxClients = 100000 // about what a busy edge node sees in a few minutes; 3.2 MB
	defaultIPv6Prefix = 64     // the smallest network an ISP assigns to one customer
	maxMaxClients     = 1 << 24
	maxRate           = 1e9 // one request per nanosecond: the clock's resolution
	// maxWindow bounds burst/rate (the time to refill an empty bucket) and the time offsets
	// the limiter stores, so that no sum of two of them can overflow an int64 of nanoseconds.
	maxWindow = int64(1) << 61 // about 73 years
)

// DefaultConfig returns the defaults: limiting off (RequestsPerSecond 0, because no rate suits
// every site, and a wrong guess rejects real users behind shared NAT), up to 100000 tracked
// clients, IPv6 clients grouped per /64.
func DefaultConfig() Config {
	return Config{MaxClients: defaultMaxClients, IPv6Prefix: defaultIPv6Prefix}
}

// Validate reports every problem in c at once, with paths relative to the rate_limit section
// of the config file (a rule's Prefix is its cidr).
func (c Config) Validate() error {
	var e fielderr.Errors
	checkRate(&e, "", c.RequestsPerSecond, c.Burst, false)
	e.Between("max_clients", c.MaxClients, 1, maxMaxClients)
	e.Between("ipv6_prefix", c.IPv6Prefix, 1, 128)
	for i, r := range c.Rules {
		path := fmt.Sprintf("rules[%d].", i)
		switch a := r.Prefix.Addr(); {
		case !a.IsValid():
			e.Add(path+"cidr", "required")
		case !r.Prefix.IsValid():
			e.Add(path+"cidr", "length out of range for %s (0-32 for IPv4, 0-128 for IPv6)", a)
		default:
			// First match wins, so a rule inside an earlier rule's range can never apply.
			p := normalizePrefix(r.Prefix)
			for j, prev := range c.Rules[:i] {
				if q := normalizePrefix(prev.Prefix); q.IsValid() && q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
					e.Add(path+"cidr", "never matches: rules[%d] (%s) comes first and covers %s", j, prev.Prefix, r.Prefix)
					break
				}
			}
		}
		if r.Exempt {
			if r.RequestsPerSecond != 0 || r.Burst != 0 {
				e.Add(path+"exempt", "must not be combined with requests_per_second or burst (got %g and %d)", r.RequestsPerSecond, r.Burst)
			}
			continue
		}
		checkRate(&e, path, r.RequestsPerSecond, r.Burst, true)
	}
	return e.Err()
}

// checkRate validates a rate and burst pair whose keys are named with the path prefix.
// required says whether a zero rate is an error (rules) rather than "off" (the default).
func checkRate(e *fielderr.Errors, path string, rate float64, burst int, required bool) {
	rateOK := false
	switch {
	case math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0:
		e.Add(path+"requests_per_second", "must be a finite number >= 0, got %g", rate)
	case rate > maxRate:
		e.Add(path+"requests_per_second", "%g exceeds %g", rate, float64(maxRate))
	case rate == 0 && required:
		e.Add(path+"requests_per_second", "must be > 0 (set exempt to disable limiting)")
	default:
		rateOK = true
	}
	switch {
	case burst < 0:
		e.Add(path+"burst", "must be >= 0, got %d", burst)
	case rateOK && rate > 0:
		if _, err := paramsFor(rate, burst); err != nil {
			e.Add(path+"burst", "%v", err)
		}
	}
}

// params is a compiled rate: interval is the time one token takes to refill and window the
// time a whole bucket takes (burst × interval), both in nanoseconds. interval 0 means
// unlimited.
type params struct {
	interval int64
	window   int64
}

func paramsFor(rate float64, burst int) (params, error) {
	if rate == 0 {
		return params{}, nil
	}
	if burst == 0 {
		burst = int(math.Max(1, math.Ceil(rate)))
	}
	ns := math.Round(1e9 / rate)
	if ns > float64(maxWindow) || ns*float64(burst) > float64(maxWindow) {
		return params{}, fmt.Errorf("%d requests at %g per second take more than 73 years to refill", burst, rate)
	}
	interval := max(int64(ns), 1)
	return params{interval: interval, window: interval * int64(burst)}, nil
}
