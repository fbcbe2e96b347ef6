package ratelimit_test

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloflux/veloflux/proxy/ratelimit"
)

// t0 is an arbitrary wall-clock instant; tests move time by passing later instants.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// step sends n requests from ip at t0+at and expects allowed of them to pass. When fewer
// pass, the last one's retryAfter must equal retry.
type step struct {
	at      time.Duration
	ip      string // "" is the zero netip.Addr: a client whose address is unknown
	n       int
	allowed int
	retry   time.Duration
}

func addr(t testing.TB, s string) netip.Addr {
	t.Helper()
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return a
}

func runSteps(t *testing.T, cfg ratelimit.Config, steps []step, wantLen int) {
	t.Helper()
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i, s := range steps {
		ip := addr(t, s.ip)
		now := t0.Add(s.at)
		passed := 0
		var lastRetry time.Duration
		for range s.n {
			ok, retry := l.Allow(ip, now)
			if ok {
				passed++
				if retry != 0 {
					t.Errorf("step %d (%s at %v): allowed request has retryAfter %v, want 0", i, s.ip, s.at, retry)
				}
			}
			lastRetry = retry
		}
		if passed != s.allowed {
			t.Errorf("step %d (%s at %v): %d of %d allowed, want %d", i, s.ip, s.at, passed, s.n, s.allowed)
		}
		if passed < s.n && lastRetry != s.retry {
			t.Errorf("step %d (%s at %v): retryAfter %v, want %v", i, s.ip, s.at, lastRetry, s.retry)
		}
	}
	if got := l.Len(); got != wantLen {
		t.Errorf("Len() = %d, want %d", got, wantLen)
	}
}

func TestAllowBucket(t *testing.T) {
	const a, b = "192.0.2.1", "192.0.2.2"
	rate10 := ratelimit.Config{RequestsPerSecond: 10, Burst: 5}
	rate1 := ratelimit.Config{RequestsPerSecond: 1, Burst: 1}
	tests := []struct {
		name    string
		cfg     ratelimit.Config
		steps   []step
		wantLen int
	}{
		{"burst then reject with one interval to wait", rate10, []step{
			{at: 0, ip: a, n: 6, allowed: 5, retry: 100 * time.Millisecond},
		}, 1},
		{"rejected requests take no token", rate10, []step{
			{at: 0, ip: a, n: 5, allowed: 5},
			{at: 0, ip: a, n: 100, allowed: 0, retry: 100 * time.Millisecond},
			{at: 100 * time.Millisecond, ip: a, n: 2, allowed: 1, retry: 100 * time.Millisecond},
		}, 1},
		{"partial refill and retryAfter counts down", rate10, []step{
			{at: 0, ip: a, n: 5, allowed: 5},
			{at: 50 * time.Millisecond, ip: a, n: 1, allowed: 0, retry: 50 * time.Millisecond},
			{at: 250 * time.Millisecond, ip: a, n: 3, allowed: 2, retry: 50 * time.Millisecond},
		}, 1},
		{"long idle refills to burst, not beyond", rate10, []step{
			{at: 0, ip: a, n: 5, allowed: 5},
			{at: time.Hour, ip: a, n: 10, allowed: 5, retry: 100 * time.Millisecond},
		}, 1},
		{"steady rate is kept exactly", rate10, []step{
			{at: 0, ip: a, n: 5, allowed: 5},
			{at: 100 * time.Millisecond, ip: a, n: 3, allowed: 1, retry: 100 * time.Millisecond},
			{at: 200 * time.Millisecond, ip: a, n: 3, allowed: 1, retry: 100 * time.Millisecond},
			{at: 300 * time.Millisecond, ip: a, n: 3, allowed: 1, retry: 100 * time.Millisecond},
		}, 1},
		{"default burst is ceil of rate", ratelimit.Config{RequestsPerSecond: 2.5}, []step{
			{at: 0, ip: a, n: 4, allowed: 3, retry: 400 * time.Millisecond},
		}, 1},
		{"rate below one per second has burst one", ratelimit.Config{RequestsPerSecond: 0.5}, []step{
			{at: 0, ip: a, n: 2, allowed: 1, retry: 2 * time.Second},
			{at: time.Second, ip: a, n: 1, allowed: 0, retry: time.Second},
			{at: 2 * time.Second, ip: a, n: 2, allowed: 1, retry: 2 * time.Second},
		}, 1},
		{"clients have separate buckets", rate1, []step{
			{at: 0, ip: a, n: 1, allowed: 1},
			{at: 0, ip: b, n: 1, allowed: 1},
			{at: 0, ip: a, n: 1, allowed: 0, retry: time.Second},
		}, 2},
		{"clock stepping back costs at most one interval", rate1, []step{
			{at: time.Hour, ip: a, n: 1, allowed: 1},
			{at: 0, ip: a, n: 1, allowed: 0, retry: time.Second},
			{at: time.Second, ip: a, n: 1, allowed: 1},
		}, 1},
		{"unknown client address is limited as one client", rate1, []step{
			{at: 0, ip: "", n: 1, allowed: 1},
			{at: 0, ip: "", n: 1, allowed: 0, retry: time.Second},
			{at: 0, ip: "::", n: 1, allowed: 1},
		}, 2},
		{"zero rate disables limiting and tracking", ratelimit.Config{}, []step{
			{at: 0, ip: a, n: 1000, allowed: 1000},
			{at: 0, ip: "2001:db8::1", n: 1000, allowed: 1000},
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.steps, tc.wantLen) })
	}
}

func TestAllowAddressGrouping(t *testing.T) {
	rate1 := ratelimit.Config{RequestsPerSecond: 1, Burst: 1}
	withPrefix := func(bits int) ratelimit.Config { c := rate1; c.IPv6Prefix = bits; return c }
	tests := []struct {
		name    string
		cfg     ratelimit.Config
		steps   []step
		wantLen int
	}{
		{"IPv6 addresses in one /64 share a bucket", rate1, []step{
			{ip: "2001:db8:1:2::1", n: 1, allowed: 1},
			{ip: "2001:db8:1:2:ffff:ffff:ffff:fffe", n: 1, allowed: 0, retry: time.Second},
		}, 1},
		{"IPv6 addresses in different /64s do not", rate1, []step{
			{ip: "2001:db8:1:2::1", n: 1, allowed: 1},
			{ip: "2001:db8:1:3::1", n: 1, allowed: 1},
		}, 2},
		{"IPv6Prefix 128 limits each address", withPrefix(128), []step{
			{ip: "2001:db8::1", n: 1, allowed: 1},
			{ip: "2001:db8::2", n: 1, allowed: 1},
			{ip: "2001:db8::1", n: 1, allowed: 0, retry: time.Second},
		}, 2},
		{"IPv6Prefix 48 shares across /64s", withPrefix(48), []step{
			{ip: "2001:db8:1:2::1", n: 1, allowed: 1},
			{ip: "2001:db8:1:3::1", n: 1, allowed: 0, retry: time.Second},
			{ip: "2001:db8:2::1", n: 1, allowed: 1},
		}, 2},
		{"IPv6Prefix 72 splits a /64", withPrefix(72), []step{
			{ip: "2001:db8:1:2:aa00::1", n: 1, allowed: 1},
			{ip: "2001:db8:1:2:aaff::1", n: 1, allowed: 0, retry: time.Second},
			{ip: "2001:db8:1:2:ab00::1", n: 1, allowed: 1},
		}, 2},
		{"IPv4 addresses are never grouped", rate1, []step{
			{ip: "192.0.2.1", n: 1, allowed: 1},
			{ip: "192.0.2.2", n: 1, allowed: 1},
		}, 2},
		{"IPv4-mapped address counts as the IPv4 address", rate1, []step{
			{ip: "192.0.2.1", n: 1, allowed: 1},
			{ip: "::ffff:192.0.2.1", n: 1, allowed: 0, retry: time.Second},
		}, 1},
		{"IPv4 address counts as the IPv4-mapped address", rate1, []step{
			{ip: "::ffff:192.0.2.1", n: 1, allowed: 1},
			{ip: "192.0.2.1", n: 1, allowed: 0, retry: time.Second},
		}, 1},
		{"IPv4-mapped address is not grouped like IPv6", rate1, []step{
			{ip: "::ffff:192.0.2.1", n: 1, allowed: 1},
			{ip: "::ffff:192.0.2.2", n: 1, allowed: 1},
		}, 2},
		{"zone does not make a new client", withPrefix(128), []step{
			{ip: "fe80::1%eth0", n: 1, allowed: 1},
			{ip: "fe80::1%eth1", n: 1, allowed: 0, retry: time.Second},
			{ip: "fe80::1", n: 1, allowed: 0, retry: time.Second},
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.steps, tc.wantLen) })
	}
}

func TestAllowRules(t *testing.T) {
	pfx := netip.MustParsePrefix
	exempt := func(p string) ratelimit.Rule { return ratelimit.Rule{Prefix: pfx(p), Exempt: true} }
	limited := func(p string, rate float64, burst int) ratelimit.Rule {
		return ratelimit.Rule{Prefix: pfx(p), RequestsPerSecond: rate, Burst: burst}
	}
	withRules := func(rate float64, rules ...ratelimit.Rule) ratelimit.Config {
		return ratelimit.Config{RequestsPerSecond: rate, Burst: 1, Rules: rules}
	}
	tests := []struct {
		name    string
		cfg     ratelimit.Config
		steps   []step
		wantLen int
	}{
		{"exempt clients are never limited nor tracked", withRules(1, exempt("10.0.0.0/8")), []step{
			{ip: "10.1.2.3", n: 100, allowed: 100},
			{ip: "192.0.2.1", n: 2, allowed: 1, retry: time.Second},
		}, 1},
		{"rule rate applies to each client it matches", withRules(1, limited("10.0.0.0/8", 10, 3)), []step{
			{ip: "10.0.0.1", n: 4, allowed: 3, retry: 100 * time.Millisecond},
			{ip: "10.0.0.2", n: 4, allowed: 3, retry: 100 * time.Millisecond},
			{ip: "192.0.2.1", n: 2, allowed: 1, retry: time.Second},
		}, 3},
		{"rule burst defaults to ceil of its rate", withRules(1, limited("10.0.0.0/8", 4, 0)), []step{
			{ip: "10.0.0.1", n: 5, allowed: 4, retry: 250 * time.Millisecond},
		}, 1},
		{"first match wins: exempt listed first", withRules(1, exempt("10.1.0.0/16"), limited("10.0.0.0/8", 1, 1)), []step{
			{ip: "10.1.0.1", n: 10, allowed: 10},
			{ip: "10.2.0.1", n: 2, allowed: 1, retry: time.Second},
		}, 1},
		{"first match wins between two rates", withRules(0, limited("10.1.0.0/16", 2, 2), limited("10.0.0.0/8", 1, 1)), []step{
			{ip: "10.1.0.1", n: 3, allowed: 2, retry: 500 * time.Millisecond},
			{ip: "10.2.0.1", n: 2, allowed: 1, retry: time.Second},
		}, 2},
		{"rule limits while the default is off", withRules(0, limited("198.51.100.0/24", 1, 2)), []step{
			{ip: "198.51.100.7", n: 3, allowed: 2, retry: time.Second},
			{ip: "203.0.113.1", n: 100, allowed: 100},
		}, 1},
		{"IPv4 rule matches IPv4-mapped client", withRules(1, exempt("10.0.0.0/8")), []step{
			{ip: "::ffff:10.0.0.1", n: 5, allowed: 5},
		}, 0},
		{"IPv4-mapped rule matches IPv4 client", withRules(1, exempt("::ffff:10.0.0.0/104")), []step{
			{ip: "10.9.9.9", n: 5, allowed: 5},
			{ip: "11.0.0.1", n: 2, allowed: 1, retry: time.Second},
		}, 1},
		{"IPv6 rule", withRules(1, exempt("2001:db8::/32")), []step{
			{ip: "2001:db8::1", n: 5, allowed: 5},
			{ip: "2001:db9::1", n: 2, allowed: 1, retry: time.Second},
		}, 1},
		{"IPv6 ::/0 rule does not match IPv4 clients", withRules(1, exempt("::/0")), []step{
			{ip: "2001:db8::1", n: 5, allowed: 5},
			{ip: "192.0.2.1", n: 2, allowed: 1, retry: time.Second},
		}, 1},
		{"zoned client matches rule", withRules(1, exempt("fe80::/10")), []step{
			{ip: "fe80::1%eth0", n: 5, allowed: 5},
		}, 0},
		{"rule prefix with host bits set matches its network", withRules(1, exempt("10.1.2.3/8")), []step{
			{ip: "10.200.0.1", n: 5, allowed: 5},
		}, 0},
		{"unknown client address matches no rule", withRules(1, exempt("0.0.0.0/0"), exempt("::/0")), []step{
			{ip: "", n: 2, allowed: 1, retry: time.Second},
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.steps, tc.wantLen) })
	}
}

// v4 returns a distinct IPv4 address per i.
func v4(i uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// v6 returns an address in a distinct /64 per i.
func v6(i uint32) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
}

func TestEviction(t *testing.T) {
	t.Run("evicted client comes back with a full bucket", func(t *testing.T) {
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 1, Burst: 2, MaxClients: 1})
		if err != nil {
			t.Fatal(err)
		}
		a, b := v4(1), v4(2)
		for range 2 {
			l.Allow(a, t0)
		}
		if ok, _ := l.Allow(a, t0); ok {
			t.Fatal("a allowed past its burst")
		}
		if ok, _ := l.Allow(b, t0); !ok {
			t.Fatal("new client b rejected")
		}
		if got := l.Len(); got != 1 {
			t.Fatalf("Len() = %d, want 1", got)
		}
		if ok, _ := l.Allow(a, t0); !ok {
			t.Fatal("a still limited after b evicted it")
		}
	})

	t.Run("a flood of new addresses does not free a throttled client", func(t *testing.T) {
		const maxClients = 1000
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 1, Burst: 10, MaxClients: maxClients})
		if err != nil {
			t.Fatal(err)
		}
		abusers := []netip.Addr{v4(0xC0000201), v4(0xC0000202), v6(0xABCDEF)}
		for _, a := range abusers {
			for range 10 {
				l.Allow(a, t0)
			}
		}
		// Each flooding address sends one request and so holds the fullest buckets; the
		// abusers' empty buckets must outlive 200 generations of them.
		for i := range uint32(200 * maxClients) {
			now := t0.Add(time.Duration(i) * time.Microsecond)
			if i%2 == 0 {
				l.Allow(v4(0x0B000000+i), now)
			} else {
				l.Allow(v6(i), now)
			}
			if i%50000 == 0 {
				if got := l.Len(); got > maxClients {
					t.Fatalf("Len() = %d after %d new clients, want <= %d", got, i, maxClients)
				}
			}
		}
		end := t0.Add(200 * maxClients * time.Microsecond)
		for _, a := range abusers {
			if ok, retry := l.Allow(a, end); ok {
				t.Errorf("%v allowed: the flood evicted its empty bucket", a)
			} else if retry <= 0 || retry > time.Second {
				t.Errorf("%v retryAfter %v, want in (0, 1s]", a, retry)
			}
		}
	})

	t.Run("Len is bounded by MaxClients and reaches it", func(t *testing.T) {
		for _, maxClients := range []int{1, 3, 63, 64, 65, 1000, 4099} {
			l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 1, MaxClients: maxClients})
			if err != nil {
				t.Fatal(err)
			}
			for i := range uint32(50 * maxClients) {
				if ok, _ := l.Allow(v4(i), t0); !ok {
					t.Fatalf("MaxClients %d: new client %v rejected", maxClients, v4(i))
				}
				if i%97 == 0 {
					if got := l.Len(); got > maxClients {
						t.Fatalf("MaxClients %d: Len() = %d", maxClients, got)
					}
				}
			}
			// Every shard has seen ~50 times its capacity in keys, so all are full: the
			// shard capacities must add up to MaxClients exactly.
			if got := l.Len(); got != maxClients {
				t.Errorf("MaxClients %d: Len() = %d after overfilling, want %d", maxClients, got, maxClients)
			}
		}
	})
}

func TestAllowConcurrent(t *testing.T) {
	t.Run("one client across goroutines gets exactly its burst", func(t *testing.T) {
		const burst, workers, each = 500, 8, 1000
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 1, Burst: burst})
		if err != nil {
			t.Fatal(err)
		}
		ip := netip.MustParseAddr("2001:db8::7")
		var passed atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					if ok, _ := l.Allow(ip, t0); ok {
						passed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := passed.Load(); got != burst {
			t.Errorf("%d requests allowed, want exactly the burst %d", got, burst)
		}
	})

	t.Run("many clients with eviction stay bounded", func(t *testing.T) {
		const maxClients, workers, each = 256, 8, 5000
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 100, MaxClients: maxClients})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range uint32(workers) {
			wg.Go(func() {
				for i := range uint32(each) {
					now := t0.Add(time.Duration(i) * time.Millisecond)
					// A few hot clients shared by all workers, the rest unique per worker.
					if i%4 == 0 {
						l.Allow(v4(i%16), now)
					} else {
						l.Allow(v6(w<<24|i), now)
					}
					if i%500 == 0 {
						if got := l.Len(); got > maxClients {
							t.Errorf("Len() = %d, want <= %d", got, maxClients)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if got := l.Len(); got > maxClients || got == 0 {
			t.Errorf("Len() = %d, want in (0, %d]", got, maxClients)
		}
	})
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{
		RequestsPerSecond: 10,
		MaxClients:        128,
		Rules:             []ratelimit.Rule{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	zoned := netip.MustParseAddr("fe80::1%eth0")
	l.Allow(zoned, t0)
	var n uint32
	tests := []struct {
		name string
		f    func()
	}{
		{"tracked client", func() { l.Allow(zoned, t0) }},
		{"new client evicting another", func() { n++; l.Allow(v6(n), t0) }},
		{"exempt client", func() { l.Allow(v4(0x0A000001), t0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if allocs := testing.AllocsPerRun(1000, tc.f); allocs != 0 {
				t.Errorf("%v allocations per Allow, want 0", allocs)
			}
		})
	}
}
