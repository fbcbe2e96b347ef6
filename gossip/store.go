package gossip

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// Kind says which replicated table an entry belongs to. Every kind follows the same merge rule;
// the kind only namespaces keys and bounds each table separately.
type Kind uint8

// The replicated kinds. Values are part of the wire format: never renumber.
const (
	KindSession Kind = 1 // sticky session ID -> backend pin
	KindHealth  Kind = 2 // one node's health observation of one backend
	KindDrain   Kind = 3 // drain flag of a node or backend
)

// kindMax is the highest known kind; tables are indexed by Kind directly.
const kindMax = KindDrain

// Valid reports whether k is a kind this version knows. Unknown kinds are refused rather than
// stored blind, so an entry from a newer node cannot silently fill a table nobody reads.
func (k Kind) Valid() bool { return k >= KindSession && k <= kindMax }

// String names the kind for logs and metric labels.
func (k Kind) String() string {
	switch k {
	case KindSession:
		return "session"
	case KindHealth:
		return "health"
	case KindDrain:
		return "drain"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Errors callers branch on and count.
var (
	// ErrUnknownKind rejects an entry whose kind this version does not know.
	ErrUnknownKind = errors.New("gossip: unknown entry kind")
	// ErrStoreFull refuses a new key when its kind already holds MaxEntriesPerKind entries.
	ErrStoreFull = errors.New("gossip: state store full for kind")
	// ErrInvalidEntry rejects an entry no node should have produced (empty key, field too large).
	ErrInvalidEntry = errors.New("gossip: invalid entry")
)

// Entry is one replicated key/value record, or its tombstone.
type Entry struct {
	Kind    Kind
	Key     string
	Value   []byte
	Stamp   Timestamp // when the writer wrote it, on the writer's hybrid logical clock
	Node    string    // writer's node name; breaks ties between equal stamps
	Deleted bool      // tombstone: wins and loses like a value so deletes replicate
	Expires int64     // absolute Unix nanos, 0 = never; absolute so every node drops it together
}

// compareEntries totally orders two versions of the same (Kind, Key); the greater one wins. The
// rule is last-writer-wins on (Stamp, Node). The remaining fields only break ties between two
// different entries carrying the same stamp and writer, which a correct HLC never produces but a
// restarted node with a rewound clock could; without them merge would depend on arrival order.
func compareEntries(a, b Entry) int {
	if c := a.Stamp.Compare(b.Stamp); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	if a.Deleted != b.Deleted {
		if a.Deleted {
			return 1 // a delete is the safer survivor of a tie
		}
		return -1
	}
	if c := cmp.Compare(a.Expires, b.Expires); c != 0 {
		return c
	}
	return bytes.Compare(a.Value, b.Value)
}

// expiredAt reports whether e has passed its expiry at now (Unix nanos).
func (e Entry) expiredAt(now int64) bool { return e.Expires != 0 && e.Expires <= now }

// validate checks the limits every entry obeys, locally written or received, so anything the store
// holds can be encoded and fits a gossip packet.
func (e Entry) validate() error {
	switch {
	case !e.Kind.Valid():
		return fmt.Errorf("%w: %d", ErrUnknownKind, uint8(e.Kind))
	case e.Key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidEntry)
	case len(e.Key) > MaxKeyBytes:
		return fmt.Errorf("%w: key is %d bytes, max %d", ErrInvalidEntry, len(e.Key), MaxKeyBytes)
	case len(e.Value) > MaxValueBytes:
		return fmt.Errorf("%w: value is %d bytes, max %d", ErrInvalidEntry, len(e.Value), MaxValueBytes)
	case e.Node == "":
		return fmt.Errorf("%w: empty writer node", ErrInvalidEntry)
	case len(e.Node) > MaxNodeBytes:
		return fmt.Errorf("%w: node name is %d bytes, max %d", ErrInvalidEntry, len(e.Node), MaxNodeBytes)
	case e.Deleted && len(e.Value) > 0:
		return fmt.Errorf("%w: tombstone carries a value", ErrInvalidEntry)
	case e.Expires < 0 || e.Stamp.WallNanos < 0:
		return fmt.Errorf("%w: negative time", ErrInvalidEntry)
	}
	return nil
}

// clone returns e with its own copy of Value, so callers and the store never share a buffer. An
// empty value becomes nil so that equal entries compare equal however they were built.
func (e Entry) clone() Entry {
	if len(e.Value) == 0 {
		e.Value = nil
	} else {
		e.Value = bytes.Clone(e.Value)
	}
	return e
}

// StoreConfig bounds the replicated store. Its keys sit in the cluster section of the config
// file; NodeName and ExpireInterval are set by the program.
type StoreConfig struct {
	// NodeName is this node's name, written as Entry.Node on local writes. Required, at most
	// MaxNodeBytes bytes; it must be unique in the cluster (it is the LWW tie-breaker).
	NodeName string `koanf:"-" json:"-"`
	// MaxEntriesPerKind caps each kind of shared state (session moves, health), tombstones
	// included, which bounds memory. Default 1000000 entries, 1..10000000: the session table
	// holds only sessions that moved off a failed or drained backend (a cookie carries its own
	// pin), about 230 bytes each; the cap keeps one kind from crowding out the others under a
	// flood.
	MaxEntriesPerKind int `koanf:"max_entries_per_kind"`
	// TombstoneTTL is how long a delete is remembered so that a late copy cannot revive the
	// entry. Default 1h, > 0: longer than any partition we expect to heal from, so the delete
	// reaches every node before it is forgotten. A node partitioned for longer may resurrect a
	// deleted entry that has no expiry of its own.
	TombstoneTTL time.Duration `koanf:"tombstone_ttl"`
	// ExpireInterval is how often Run collects expired entries and tombstones. Default 10s:
	// expired entries are already invisible to readers, so this only bounds memory held by them.
	ExpireInterval time.Duration `koanf:"-" json:"-"`
}

// DefaultStoreConfig returns the defaults documented on StoreConfig; NodeName stays empty.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{MaxEntriesPerKind: 1_000_000, TombstoneTTL: time.Hour, ExpireInterval: 10 * time.Second}
}

// Validate reports every problem at once; the paths of the file's keys are relative to the
// cluster section.
func (c StoreConfig) Validate() error {
	var e fielderr.Errors
	if c.NodeName == "" {
		e.Add("", "store node name: required")
	} else if len(c.NodeName) > MaxNodeBytes {
		e.Add("", "store node name: %d bytes, max %d", len(c.NodeName), MaxNodeBytes)
	}
	c.validateKeys(&e)
	if c.ExpireInterval <= 0 {
		e.Add("", "store expire interval: must be > 0, got %s", c.ExpireInterval)
	}
	return e.Err()
}

// validateKeys checks the fields that are keys of the config file.
func (c StoreConfig) validateKeys(e *fielderr.Errors) {
	e.Between("max_entries_per_kind", c.MaxEntriesPerKind, 1, maxEntriesPerKind)
	e.Positive("tombstone_ttl", c.TombstoneTTL)
}

// StoreStats counts refusals since the store was created, for metrics.
type StoreStats struct {
	Full    uint64 // new keys refused with ErrStoreFull
	Invalid uint64 // entries refused as unknown kind or invalid
	Drift   uint64 // remote entries refused with ErrClockDrift
	// Truncated counts full-state encodings that left entries out to respect the size cap.
	Truncated uint64
}

// Store is the conflict-free replicated key/value state. Every replica applies the same merge
// rule (Merge keeps the greater entry per compareEntries), so replicas that have seen the same
// entries hold the same state whatever the order, grouping or duplication of deliveries.
// Safe for concurrent use.
//
// Each kind's table is split into shardCount shards by a hash of the key, each under its own
// lock: a walk over a million entries (expiry, digests, snapshots) holds one shard's lock at a
// time, never the whole store, and writes to other shards go on meanwhile.
type Store struct {
	cfg   StoreConfig
	clock *Clock

	tables [kindMax + 1]table

	hooksMu  sync.Mutex
	onChange atomic.Pointer[[]func(Entry)]

	// nodes interns writer names: a million entries written by a few nodes share a few strings.
	nodesMu sync.Mutex
	nodes   map[string]string

	full, invalid, drift, truncated atomic.Uint64
}

// shardCount is the number of shards per kind. 256 keeps a shard of a million-entry table
// near 4,000 entries (a walk of one under its lock takes well under a millisecond) while
// costing a few KiB when empty.
const shardCount = 256

// table is one kind's entries.
type table struct {
	n      atomic.Int64 // entries over all shards, tombstones and uncollected expired ones included
	shards [shardCount]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]record
}

// record is an entry as the store keeps it: kind and key are where it is filed, the value is
// a string (immutable, so readers may share it), and the writer's name is interned.
type record struct {
	value   string
	node    string
	stamp   Timestamp
	expires int64
	deleted bool
}

func (r record) entry(kind Kind, key string) Entry {
	e := Entry{Kind: kind, Key: key, Stamp: r.stamp, Node: r.node, Deleted: r.deleted, Expires: r.expires}
	if r.value != "" {
		e.Value = []byte(r.value)
	}
	return e
}

func (r record) expiredAt(now int64) bool { return r.expires != 0 && r.expires <= now }

// keyHash is FNV-1a of key, finished with MurmurHash3's 64-bit mix so its top bits, which pick
// the shard and the catch-up bucket, depend on every byte (FNV alone barely moves them for keys
// that differ in the last byte). Every node computes it alike: catch-up compares buckets.
func keyHash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func (t *table) shard(key string) *shard { return &t.shards[keyHash(key)>>56] }

// NewStore returns an empty store writing as cfg.NodeName and stamping with clock.
func NewStore(cfg StoreConfig, clock *Clock) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gossip: store config: %w", err)
	}
	if clock == nil {
		return nil, errors.New("gossip: store needs a clock")
	}
	s := &Store{cfg: cfg, clock: clock, nodes: map[string]string{cfg.NodeName: cfg.NodeName}}
	for k := KindSession; k <= kindMax; k++ {
		for i := range s.tables[k].shards {
			s.tables[k].shards[i].m = make(map[string]record)
		}
	}
	return s, nil
}

// intern returns the store's copy of a writer name.
func (s *Store) intern(node string) string {
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	if n, ok := s.nodes[node]; ok {
		return n
	}
	if len(s.nodes) >= maxInternedNodes {
		return strings.Clone(node)
	}
	node = strings.Clone(node)
	s.nodes[node] = node
	return node
}

// maxInternedNodes bounds the intern table: names beyond it are stored uninterned, so a peer
// writing under ever new names costs memory per entry, not an unbounded table.
const maxInternedNodes = 4096

// OnChange registers fn to run after every change the store accepts: local Put and Delete, and
// remote entries that won a Merge. Expiry is not reported: every node expires entries itself at the
// same absolute time. fn runs on the writer's goroutine outside the store's locks, so it may read
// the store, but it must not block: Merge runs on the gossip receive path. Copy and enqueue.
func (s *Store) OnChange(fn func(Entry)) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	var hooks []func(Entry)
	if cur := s.onChange.Load(); cur != nil {
		hooks = append(hooks, *cur...)
	}
	hooks = append(hooks, fn)
	s.onChange.Store(&hooks)
}

func (s *Store) hooks() []func(Entry) {
	if h := s.onChange.Load(); h != nil {
		return *h
	}
	return nil
}

// Put writes value under (kind, key), expiring after ttl (never when ttl <= 0), and returns the
// stamped entry for the caller to broadcast.
func (s *Store) Put(kind Kind, key string, value []byte, ttl time.Duration) (Entry, error) {
	e := Entry{Kind: kind, Key: key, Value: value, Node: s.cfg.NodeName}.clone()
	if ttl > 0 {
		e.Expires = s.clock.physical().Add(ttl).UnixNano()
	}
	stored, err := s.writeLocal(e)
	if err != nil {
		return Entry{}, fmt.Errorf("gossip: put %s %q: %w", kind, key, err)
	}
	return stored, nil
}

// Delete writes a tombstone for (kind, key), kept for TombstoneTTL, and returns it for the caller
// to broadcast. The tombstone is written even when the key is unknown here: a peer may hold a
// value we have not received yet, and the delete must still win over it.
func (s *Store) Delete(kind Kind, key string) (Entry, error) {
	e := Entry{Kind: kind, Key: key, Node: s.cfg.NodeName, Deleted: true,
		Expires: s.clock.physical().Add(s.cfg.TombstoneTTL).UnixNano()}
	stored, err := s.writeLocal(e)
	if err != nil {
		return Entry{}, fmt.Errorf("gossip: delete %s %q: %w", kind, key, err)
	}
	return stored, nil
}

// reserve counts a new key in kind's table, refusing it when the table is full.
func (s *Store) reserve(t *table) bool {
	if t.n.Add(1) > int64(s.cfg.MaxEntriesPerKind) {
		t.n.Add(-1)
		s.full.Add(1)
		return false
	}
	return true
}

// writeLocal stamps e and stores it. The stamp is taken under the shard's lock so that the
// Clock, which has observed every merged stamp, makes this write beat whatever the key holds.
func (s *Store) writeLocal(e Entry) (Entry, error) {
	if err := e.validate(); err != nil {
		s.invalid.Add(1)
		return Entry{}, err
	}
	t := &s.tables[e.Kind]
	sh := t.shard(e.Key)
	rec := record{value: string(e.Value), node: s.cfg.NodeName, expires: e.Expires, deleted: e.Deleted}
	key := strings.Clone(e.Key)
	sh.mu.Lock()
	if _, exists := sh.m[key]; !exists && !s.reserve(t) {
		sh.mu.Unlock()
		return Entry{}, fmt.Errorf("%w: %s holds %d entries", ErrStoreFull, e.Kind, s.cfg.MaxEntriesPerKind)
	}
	rec.stamp = s.clock.Now()
	sh.m[key] = rec
	sh.mu.Unlock()
	e.Stamp = rec.stamp
	notify(s.hooks(), e)
	return e.clone(), nil
}

// notify runs the change hooks, each with its own copy of the value.
func notify(hooks []func(Entry), e Entry) {
	for _, fn := range hooks {
		fn(e.clone())
	}
}

// Merge applies an entry received from a peer. It reports whether the entry changed local state:
// it did when the key was absent or held a lesser version. Entries already expired by the local
// clock are ignored, and a local expired entry counts as absent, so replicas with the same clock
// reading agree whatever the order of delivery. Errors (ErrUnknownKind, ErrInvalidEntry,
// ErrClockDrift, ErrStoreFull) mean the entry was refused; the store counts them in Stats.
func (s *Store) Merge(e Entry) (bool, error) {
	if err := e.validate(); err != nil {
		s.invalid.Add(1)
		return false, fmt.Errorf("gossip: merge %s %q: %w", e.Kind, e.Key, err)
	}
	if err := s.clock.Observe(e.Stamp); err != nil {
		s.drift.Add(1)
		return false, fmt.Errorf("gossip: merge %s %q from %s: %w", e.Kind, e.Key, e.Node, err)
	}
	now := s.clock.physical().UnixNano()
	if e.expiredAt(now) {
		return false, nil
	}
	t := &s.tables[e.Kind]
	sh := t.shard(e.Key)
	sh.mu.Lock()
	cur, exists := sh.m[e.Key]
	if exists && !cur.expiredAt(now) && compareEntries(e, cur.entry(e.Kind, e.Key)) <= 0 {
		sh.mu.Unlock()
		return false, nil
	}
	if !exists && !s.reserve(t) {
		sh.mu.Unlock()
		return false, fmt.Errorf("gossip: merge %s %q: %w: %d entries", e.Kind, e.Key, ErrStoreFull, s.cfg.MaxEntriesPerKind)
	}
	// Copies: the caller's buffer is usually a network packet about to be reused.
	key := e.Key
	if !exists {
		key = strings.Clone(key)
	}
	sh.m[key] = record{value: string(e.Value), node: s.intern(e.Node), stamp: e.Stamp, expires: e.Expires, deleted: e.Deleted}
	sh.mu.Unlock()
	notify(s.hooks(), e)
	return true, nil
}

// Get returns the live value of (kind, key): false when absent, deleted or expired.
func (s *Store) Get(kind Kind, key string) (Entry, bool) {
	if !kind.Valid() {
		return Entry{}, false
	}
	now := s.clock.physical().UnixNano()
	sh := s.tables[kind].shard(key)
	sh.mu.Lock()
	r, ok := sh.m[key]
	sh.mu.Unlock()
	if !ok || r.deleted || r.expiredAt(now) {
		return Entry{}, false
	}
	return r.entry(kind, key), true
}

// walk calls fn for each record of kind, one shard at a time under that shard's lock; fn must
// not call back into the store.
func (s *Store) walk(kind Kind, fn func(key string, r record)) {
	t := &s.tables[kind]
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, r := range sh.m {
			fn(k, r)
		}
		sh.mu.Unlock()
	}
}

// Range calls fn for each live entry of kind in key order until fn returns false. It iterates over
// a copy, so fn may call back into the store.
func (s *Store) Range(kind Kind, fn func(Entry) bool) {
	if !kind.Valid() {
		return
	}
	now := s.clock.physical().UnixNano()
	var live []Entry
	s.walk(kind, func(k string, r record) {
		if !r.deleted && !r.expiredAt(now) {
			live = append(live, r.entry(kind, k))
		}
	})
	slices.SortFunc(live, func(a, b Entry) int { return cmp.Compare(a.Key, b.Key) })
	for _, e := range live {
		if !fn(e) {
			return
		}
	}
}

// Len returns how many entries kind holds, tombstones and not yet collected expired entries
// included: it is the number that MaxEntriesPerKind bounds.
func (s *Store) Len(kind Kind) int {
	if !kind.Valid() {
		return 0
	}
	return int(s.tables[kind].n.Load())
}

// Expire removes every entry and tombstone whose Expires is at or before now and returns how many
// it removed. The owner calls it periodically; between calls, expired entries are already hidden
// from Get, Range and Snapshot. It holds one shard's lock at a time.
func (s *Store) Expire(now time.Time) int {
	n := now.UnixNano()
	removed := 0
	for k := KindSession; k <= kindMax; k++ {
		t := &s.tables[k]
		for i := range t.shards {
			sh := &t.shards[i]
			sh.mu.Lock()
			gone := 0
			for key, r := range sh.m {
				if r.expiredAt(n) {
					delete(sh.m, key)
					gone++
				}
			}
			sh.mu.Unlock()
			t.n.Add(int64(-gone))
			removed += gone
		}
	}
	return removed
}

// Run collects expired entries every ExpireInterval until ctx ends, and returns nil then: running
// out of time is the normal way to stop.
func (s *Store) Run(ctx context.Context) error {
	ticker := time.NewTicker(s.cfg.ExpireInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			s.Expire(s.clock.physical())
		}
	}
}

// Snapshot returns every unexpired entry, tombstones included, ordered by kind (drain, health,
// session: the small tables that matter most first, in case a full-state transfer is truncated)
// and then key. It is what a full-state push/pull sends.
func (s *Store) Snapshot() []Entry {
	now := s.clock.physical().UnixNano()
	var out []Entry
	for k := KindSession; k <= kindMax; k++ {
		s.walk(k, func(key string, r record) {
			if !r.expiredAt(now) {
				out = append(out, r.entry(k, key))
			}
		})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Kind != b.Kind {
			return cmp.Compare(b.Kind, a.Kind)
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out
}

// Stats returns the refusal counters.
func (s *Store) Stats() StoreStats {
	return StoreStats{Full: s.full.Load(), Invalid: s.invalid.Load(), Drift: s.drift.Load(),
		Truncated: s.truncated.Load()}
}

// FullState encodes the store for a push/pull exchange, at most maxBytes long. When the state
// outgrows maxBytes the least important entries are left out (see Snapshot for the order) and
// Stats().Truncated counts it; those entries still reach peers through broadcasts of later writes.
func (s *Store) FullState(maxBytes int) []byte {
	b, truncated := EncodeState(s.Snapshot(), maxBytes)
	if truncated {
		s.truncated.Add(1)
	}
	return b
}

// MergeFull merges a peer's full state from FullState. A malformed message is refused whole; for a
// well-formed one, every acceptable entry is merged and the refusals are summarised in the error.
func (s *Store) MergeFull(data []byte) error {
	entries, err := DecodeState(data)
	if err != nil {
		return fmt.Errorf("gossip: merge full state: %w", err)
	}
	var first error
	refused := 0
	for _, e := range entries {
		if _, err := s.Merge(e); err != nil {
			if first == nil {
				first = err
			}
			refused++
		}
	}
	if first != nil {
		return fmt.Errorf("gossip: merge full state: %d of %d entries refused, first: %w", refused, len(entries), first)
	}
	return nil
}

// MergeDelta merges one broadcast message: exactly one encoded entry, as AppendEntry produces.
func (s *Store) MergeDelta(msg []byte) error {
	e, n, err := DecodeEntry(msg)
	if err != nil {
		return fmt.Errorf("gossip: merge delta: %w", err)
	}
	if n != len(msg) {
		return fmt.Errorf("gossip: merge delta: %w: %d trailing bytes", ErrMalformed, len(msg)-n)
	}
	if _, err := s.Merge(e); err != nil {
		return fmt.Errorf("gossip: merge delta: %w", err)
	}
	return nil
}
