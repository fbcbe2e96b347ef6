package ratelimit

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// checkShard fails unless every tracked key is found where it sits, keys are unique and
// count matches the occupied slots: what find relies on after backward-shift deletions.
func checkShard(t *testing.T, s *shard, seed maphash.Seed) {
	t.Helper()
	seen := make(map[key]bool)
	occupied := 0
	for i, sl := range s.slots {
		if sl.tat == emptyTAT {
			continue
		}
		occupied++
		if seen[sl.key] {
			t.Fatalf("key %x tracked twice", sl.key)
		}
		seen[sl.key] = true
		if j, ok := s.find(sl.key, maphash.Comparable(seed, sl.key)); !ok || j != i {
			t.Fatalf("key %x at slot %d: find returned (%d, %v)", sl.key, i, j, ok)
		}
	}
	if occupied != s.count || s.count > s.limit {
		t.Fatalf("%d occupied slots, count %d, limit %d", occupied, s.count, s.limit)
	}
}

func TestShardStaysConsistentUnderEviction(t *testing.T) {
	p := params{interval: 10, window: 30}
	for _, limit := range []int{1, 2, 3, 5, 8, 33, 200} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			seed := maphash.MakeSeed()
			rng := rand.New(rand.NewPCG(uint64(limit), 1))
			var s shard
			s.init(limit)
			// Keys from a small space so the same clients come back, found or after
			// eviction; times move mostly forward with some buckets refilling to full.
			var now int64
			for i := range 20000 {
				now += rng.Int64N(5)
				k := key{lo: rng.Uint64N(uint64(3 * limit))}
				s.allow(k, maphash.Comparable(seed, k), now, p, seed)
				if i%500 == 0 {
					checkShard(t, &s, seed)
				}
			}
			checkShard(t, &s, seed)
			if s.count != limit {
				t.Errorf("count %d after 20000 requests over %d keys, want the limit %d", s.count, 3*limit, limit)
			}
		})
	}
}
