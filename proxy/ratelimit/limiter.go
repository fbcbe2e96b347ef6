package ratelimit

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"time"
)

// Limiter tracks one bucket per client and answers Allow. It is safe for concurrent use.
type Limiter struct {
	def   params // for clients no rule matches
	rules []rule

	// v6Hi and v6Lo mask an IPv6 address down to its Config.IPv6Prefix network.
	v6Hi, v6Lo uint64

	// epoch anchors the int64 offsets stored per client. Taken with time.Now so that
	// now.Sub(epoch) reads the monotonic clock when callers pass time.Now too: a wall clock
	// step must not stall or free every client.
	epoch time.Time

	// seed keys the hash, so clients cannot pick addresses that collide in one shard or
	// one probe chain.
	seed maphash.Seed

	shards     []shard
	shardShift uint // a hash's top bits pick the shard: hash >> shardShift
}

type rule struct {
	prefix netip.Prefix
	exempt bool
	p      params
}

// key is a client: an IPv4 address in IPv4-mapped form, or an IPv6 address masked to the
// sharing prefix. Two words instead of netip.Addr, which carries a zone pointer and 24 bytes.
type key struct{ hi, lo uint64 }

const maxShards = 64 // enough that 2 to 64 cores rarely wait on the same lock

// New validates cfg and returns a Limiter with all of its memory allocated. A MaxClients or
// IPv6Prefix of 0 is read as its default.
func New(cfg Config) (*Limiter, error) {
	d := DefaultConfig()
	cfg.MaxClients = cmp.Or(cfg.MaxClients, d.MaxClients)
	cfg.IPv6Prefix = cmp.Or(cfg.IPv6Prefix, d.IPv6Prefix)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: invalid config: %w", err)
	}
	def, err := paramsFor(cfg.RequestsPerSecond, cfg.Burst)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: default rate: %w", err)
	}
	l := &Limiter{def: def, epoch: time.Now(), seed: maphash.MakeSeed()}
	for i, r := range cfg.Rules {
		p, err := paramsFor(r.RequestsPerSecond, r.Burst)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: rules[%d]: %w", i, err)
		}
		l.rules = append(l.rules, rule{prefix: normalizePrefix(r.Prefix), exempt: r.Exempt, p: p})
	}

	l.v6Hi, l.v6Lo = prefixMask(cfg.IPv6Prefix)

	maxClients := cfg.MaxClients
	// A power of two of shards, each holding at least one client, so that the sum of the
	// shard capacities is exactly maxClients.
	n := 1
	for n*2 <= min(maxShards, maxClients) {
		n *= 2
	}
	l.shards = make([]shard, n)
	for i := range l.shards {
		c := maxClients / n
		if i < maxClients%n {
			c++
		}
		l.shards[i].init(c)
	}
	l.shardShift = 64
	for ; n > 1; n /= 2 {
		l.shardShift--
	}
	return l, nil
}

// normalizePrefix turns an IPv4-mapped prefix into the IPv4 prefix it means, because Allow
// matches IPv4-mapped clients as IPv4.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

func prefixMask(bits int) (hi, lo uint64) {
	all := ^uint64(0)
	if bits <= 64 {
		return all << (64 - bits), 0
	}
	return all, all << (128 - bits)
}

// Allow reports whether a request from ip at now may proceed; when not, retryAfter is how
// long until one token is available (callers send it as Retry-After rounded up to whole
// seconds, at least 1). A rejected request takes no token, so a client retrying at any pace
// still gets exactly its rate.
//
// The zero netip.Addr (client unknown) matches no rule; all such requests share one bucket
// at the default rate rather than escaping the limit.
func (l *Limiter) Allow(ip netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	// Prefix.Contains is false for zoned or IPv4-mapped addresses; a client is the same
	// client whatever interface zone it came in on.
	ip = ip.Unmap().WithZone("")
	p := l.def
	for i := range l.rules {
		if r := &l.rules[i]; r.prefix.Contains(ip) {
			if r.exempt {
				return true, 0
			}
			p = r.p
			break
		}
	}
	if p.interval == 0 {
		return true, 0
	}

	k := l.keyOf(ip)
	h := maphash.Comparable(l.seed, k)
	s := &l.shards[h>>l.shardShift]
	t := l.offset(now)

	s.mu.Lock()
	ok, wait := s.allow(k, h, t, p, l.seed)
	s.mu.Unlock()
	return ok, time.Duration(wait)
}

func (l *Limiter) keyOf(ip netip.Addr) key {
	if !ip.IsValid() {
		// Requests whose client is unknown are counted together under ff..ff: a multicast
		// address, never a source, and under a prefix shorter than /128 no masked IPv6 key.
		return key{^uint64(0), ^uint64(0)}
	}
	a := ip.As16()
	k := key{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
	if ip.Is6() {
		k.hi &= l.v6Hi
		k.lo &= l.v6Lo
	}
	return k
}

// offset turns now into nanoseconds since the epoch, clamped to ±maxWindow so that adding a
// window and an interval to it cannot overflow.
func (l *Limiter) offset(now time.Time) int64 {
	return min(max(int64(now.Sub(l.epoch)), -maxWindow), maxWindow)
}

// Len returns how many clients are tracked now. It never exceeds Config.MaxClients.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.count
		s.mu.Unlock()
	}
	return n
}
