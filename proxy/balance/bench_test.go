package balance_test

import (
	"fmt"
	"testing"

	"github.com/veloflux/veloflux/proxy/balance"
)

// BenchmarkPick measures one Pick per iteration, as the proxy makes per request. Weights vary
// so ip_hash takes its weighted (logarithm) path; BenchmarkRendezvousEqualWeights covers the
// other.
func BenchmarkPick(b *testing.B) {
	for _, algo := range balance.Algorithms() {
		b.Run(algo, func(b *testing.B) {
			for _, n := range []int{2, 8, 64} {
				b.Run(fmt.Sprintf("cands=%d", n), func(b *testing.B) {
					p := mustNew(b, algo)
					weights := make([]int, n)
					for i := range weights {
						weights[i] = 1 + i%5
					}
					bs := newBackends(weights...)
					b.ReportAllocs()
					var key uint64
					for b.Loop() {
						key++
						p.Pick(bs, key)
					}
				})
			}
		})
	}
}

// BenchmarkPickParallel measures Pick under contention from all Ps, with the Acquire/Release
// pair the proxy wraps around each request.
func BenchmarkPickParallel(b *testing.B) {
	for _, algo := range balance.Algorithms() {
		b.Run(algo, func(b *testing.B) {
			p := mustNew(b, algo)
			bs := newBackends(1, 2, 3, 4, 5, 1, 2, 3)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var key uint64
				for pb.Next() {
					key++
					c := bs[p.Pick(bs, key)]
					c.Acquire()
					c.Release()
				}
			})
		})
	}
}

func BenchmarkRendezvousEqualWeights(b *testing.B) {
	for _, n := range []int{2, 8, 64} {
		b.Run(fmt.Sprintf("cands=%d", n), func(b *testing.B) {
			bs := make([]*balance.Backend, n)
			for i := range bs {
				bs[i] = new(balance.Backend)
				bs[i].Init(fmt.Sprintf("b%d", i), 1)
			}
			b.ReportAllocs()
			var key uint64
			for b.Loop() {
				key++
				balance.Rendezvous(bs, key)
			}
		})
	}
}
