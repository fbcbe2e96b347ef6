package geo

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
)

// cacheWays is the associativity of addrCache. Four ways keep the miss rate close to an
// LRU's at the same size while a lookup still reads one 64-byte cache line of pointers.
const cacheWays = 4

// addrCache maps client addresses to their answer. It is a fixed table of buckets of
// cacheWays atomic pointers: a hit takes no lock, does not allocate and never contends with
// other readers, which an LRU (a mutex and a list move per hit) cannot offer on the request
// path. Memory is fixed by the size at creation; a full bucket replaces its ways in turn.
// Reloading the database drops the whole table rather than clearing it, so a lookup that
// raced the swap can only write into the discarded one.
type addrCache struct {
	buckets []cacheBucket
	mask    uint64
}

type cacheBucket struct {
	ways [cacheWays]atomic.Pointer[cacheSlot]
	next atomic.Uint32 // the way the next insert into a full bucket replaces
}

// cacheSlot is replaced, never modified, so readers see addr and entry together.
type cacheSlot struct {
	addr  netip.Addr
	entry *locEntry
}

// newAddrCache returns a cache for at least size addresses (rounded up to a power of two),
// or nil, which caches nothing, when size < 1.
func newAddrCache(size int) *addrCache {
	if size < 1 {
		return nil
	}
	n := 1
	for n*cacheWays < size {
		n <<= 1
	}
	return &addrCache{buckets: make([]cacheBucket, n), mask: uint64(n - 1)}
}

func (c *addrCache) get(addr netip.Addr) *locEntry {
	if c == nil {
		return nil
	}
	b := &c.buckets[hashAddr(addr)&c.mask]
	for i := range b.ways {
		if s := b.ways[i].Load(); s != nil && s.addr == addr {
			return s.entry
		}
	}
	return nil
}

func (c *addrCache) put(addr netip.Addr, e *locEntry) {
	if c == nil {
		return
	}
	b := &c.buckets[hashAddr(addr)&c.mask]
	slot := &cacheSlot{addr: addr, entry: e}
	for i := range b.ways {
		cur := b.ways[i].Load()
		if cur == nil {
			if b.ways[i].CompareAndSwap(nil, slot) {
				return
			}
			continue
		}
		if cur.addr == addr {
			b.ways[i].Store(slot)
			return
		}
	}
	// Two racing inserts of one address may both land here and fill two ways; both hold the
	// same answer, and the extra one is replaced in turn like any other.
	b.ways[b.next.Add(1)%cacheWays].Store(slot)
}

// hashAddr mixes all 128 bits (IPv4 as its mapped form) with the splitmix64 finalizer, so
// that neighbouring addresses, the common case behind one ISP, spread over all buckets.
func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[8:]) ^ binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
