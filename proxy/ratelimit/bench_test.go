package ratelimit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/veloflux/veloflux/proxy/ratelimit"
)

func BenchmarkAllow(b *testing.B) {
	const known = 4096
	addrs := make([]netip.Addr, known)
	for i := range addrs {
		addrs[i] = v4(0x0B000000 + uint32(i)*7919)
		if i%2 == 1 {
			addrs[i] = v6(uint32(i))
		}
	}
	rules := []ratelimit.Rule{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Exempt: true},
		{Prefix: netip.MustParsePrefix("2001:db8:ffff::/48"), RequestsPerSecond: 1000},
	}

	b.Run("hit", func(b *testing.B) {
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 100, Rules: rules})
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range addrs {
			l.Allow(a, t0)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.Allow(addrs[i%known], t0.Add(time.Duration(i)*time.Microsecond))
			i++
		}
	})

	b.Run("hit-parallel", func(b *testing.B) {
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 100, Rules: rules})
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range addrs {
			l.Allow(a, t0)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				l.Allow(addrs[i%known], t0.Add(time.Duration(i)*time.Microsecond))
				i++
			}
		})
	})

	b.Run("miss-evict", func(b *testing.B) {
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 100, MaxClients: known, Rules: rules})
		if err != nil {
			b.Fatal(err)
		}
		for i := range uint32(known) {
			l.Allow(v6(i), t0)
		}
		b.ReportAllocs()
		i := uint32(known)
		for b.Loop() {
			l.Allow(v6(i), t0.Add(time.Duration(i)*time.Microsecond))
			i++
		}
	})

	b.Run("exempt", func(b *testing.B) {
		l, err := ratelimit.New(ratelimit.Config{RequestsPerSecond: 100, Rules: rules})
		if err != nil {
			b.Fatal(err)
		}
		ip := netip.MustParseAddr("10.1.2.3")
		b.ReportAllocs()
		for b.Loop() {
			l.Allow(ip, t0)
		}
	})
}
