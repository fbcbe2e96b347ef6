package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
)

// shard is a fixed-capacity open-addressing hash table (linear probing, backward-shift
// deletion, so no tombstones ever force a rebuild) from client key to GCRA state. All its
// memory is allocated in init; Allow never allocates.
type shard struct {
	mu    sync.Mutex
	slots []slot
	count int // occupied slots
	limit int // most clients this shard may hold; fewer than len(slots)
	hand  int // where the next eviction starts sampling

	// Keeps each shard's lock and counters on their own cache line, so cores working on
	// different shards do not slow each other down.
	_ [64]byte
}

// slot holds one client. tat is the GCRA theoretical arrival time, in nanoseconds since the
// Limiter's epoch: the bucket is full when tat <= now and empty when tat >= now + window.
type slot struct {
	key key
	tat int64
}

// emptyTAT marks a free slot. Stored times are at least -maxWindow, so it never collides.
const emptyTAT = math.MinInt64

// evictSample is how many tracked clients an eviction compares. Eight finds a bucket nearly
// as full as the fullest in the shard while touching only a few cache lines.
const evictSample = 8

func (s *shard) init(limit int) {
	// A load factor of 3/4 keeps the average probe short (about 2.5 slots for a hit) at
	// 32 bytes per client, and guarantees an empty slot that ends every probe.
	s.slots = make([]slot, limit+limit/3+1)
	for i := range s.slots {
		s.slots[i].tat = emptyTAT
	}
	s.limit = limit
}

// home maps a hash onto a slot index without a division. It uses the low 32 bits, which the
// shard choice (the top bits) leaves independent.
func (s *shard) home(h uint64) int {
	return int(uint64(uint32(h)) * uint64(len(s.slots)) >> 32)
}

// find returns the slot holding k, or the free slot where k belongs.
func (s *shard) find(k key, h uint64) (int, bool) {
	i := s.home(h)
	for {
		sl := &s.slots[i]
		if sl.tat == emptyTAT {
			return i, false
		}
		if sl.key == k {
			return i, true
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// allow runs GCRA for client k at time t (see slot). It returns whether the request may pass
// and, if not, the nanoseconds until it would.
func (s *shard) allow(k key, h uint64, t int64, p params, seed maphash.Seed) (bool, int64) {
	i, found := s.find(k, h)
	if !found {
		// An untracked client has a full bucket, so this request passes and takes one token.
		if s.count == s.limit {
			s.evict(t, seed)
			i, _ = s.find(k, h) // the eviction may have moved k's free slot
		}
		s.slots[i] = slot{key: k, tat: t + p.interval}
		s.count++
		return true, 0
	}
	sl := &s.slots[i]
	tat := max(sl.tat, t)
	// A tat beyond one window from now cannot come from this rate at a clock that only moves
	// forward. It appears if the caller's clock stepped back, or if clients matching rules
	// with different rates share an IPv6 network. Storing the bucket as just empty bounds
	// the wait to one interval instead of however far the clock jumped.
	if limit := t + p.window; tat > limit {
		tat = limit
		sl.tat = limit
	}
	next := tat + p.interval
	if allowAt := next - p.window; allowAt > t {
		return false, allowAt - t
	}
	sl.tat = next
	return true, 0
}

// evict forgets the client, among up to evictSample tracked from the hand onwards, whose
// bucket is fullest (lowest tat), stopping early at a bucket already full, which holds no
// information at all. Forgetting a client only ever refills its bucket, so the error is on
// the lenient side, and the clients that keep it busiest are forgotten last.
func (s *shard) evict(t int64, seed maphash.Seed) {
	victim, vtat := -1, int64(0)
	i := s.hand
	for seen := 0; seen < min(evictSample, s.count); {
		if tat := s.slots[i].tat; tat != emptyTAT {
			if tat <= t {
				victim = i
				break
			}
			if victim < 0 || tat < vtat {
				victim, vtat = i, tat
			}
			seen++
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
	s.hand = i
	s.remove(victim, seed)
}

// remove frees slot i and shifts later entries of the same probe run back into the hole, so
// that every entry stays reachable from its home slot without tombstones.
func (s *shard) remove(i int, seed maphash.Seed) {
	n := len(s.slots)
	j := i
	for {
		if j++; j == n {
			j = 0
		}
		if s.slots[j].tat == emptyTAT {
			break
		}
		k := s.home(maphash.Comparable(seed, s.slots[j].key))
		// The entry at j may fill the hole at i unless its home lies cyclically in (i, j]:
		// then i is before its home and a lookup would never reach it there.
		var homeBetween bool
		if i <= j {
			homeBetween = i < k && k <= j
		} else {
			homeBetween = i < k || k <= j
		}
		if !homeBetween {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i].tat = emptyTAT
	s.count--
}
