package gossip

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Catch-up by digest. A push/pull no longer carries the whole store: each side sends a digest
// of it, and then each sends the other only the entries in the ranges where they differ. A
// node that missed a few thousand of a million entries exchanges those ranges, not the
// million, and no cap on the push/pull size limits how much state a cluster may hold.
//
// Ranges are cut by expiry, then by key hash. An entry's slot is its expiry time divided by
// slotWidth (entries that never expire share one slot), so the entries written in one stretch
// of time share slots: what a node missed during a partition or a restart sits in the few
// slots written meanwhile, and the other slots compare equal. Expiry also moves all the time,
// and two nodes never collect expired entries at the same instant; cutting by expiry lets both
// leave out the slots about to expire (before cutoffSlot) instead of seeing them differ.
//
//  1. Push/pull: each side sends a digest: per kind and slot, the count of entries and the XOR
//     of their hashes (entryHash). 21 bytes a slot; an hour of moves is 360 slots. Each side
//     sends the other, straight away, its entries of the slots the other has none of.
//  2. Ranges: for each slot both hold but differently, the side whose name sorts first sends
//     the XOR of each of the slot's key-hash buckets: as many buckets as balance this message
//     against the next one (bucketBits), at most 256 (2 KiB a slot).
//  3. Keys: for each bucket that differs, the other side sends the fingerprints (key hash,
//     entry hash: 16 bytes) of its entries in it.
//  4. The first side sends the entries of those buckets the other lacks or holds in another
//     version, and asks (want, 9 bytes a key) for the ones it lacks or holds differently;
//  5. the other side sends those.
//
// Entries travel in chunks of at most syncChunkBytes, each merged like a small full state by
// the usual last-writer-wins rule, so both sides end with the union. A message lost on the way
// leaves a difference the next push/pull finds again.
const (
	// syncMarker leads every catch-up message; it differs from FormatVersion (entries, full
	// states) and batchMarker (fanout batches and catch-up entries).
	syncMarker = 0x5C
	// entriesMarker leads a message of entries (step 3): a full-state encoding, merged like a
	// fanout batch but counted as catch-up.
	entriesMarker = 0x5E

	syncDigest byte = 1 // step 1: sender, cutoff slot, (kind, slot, count, xor)...
	syncRanges byte = 2 // step 2: sender, cutoff slot, (kind, slot, 256 bucket XORs)...
	syncKeys   byte = 3 // step 3: sender, cutoff slot, (kind, slot, bucket, count, (key hash, entry hash)...)...
	syncWant   byte = 4 // step 4: sender, cutoff slot, (kind, key hash)...

	// slotWidth is how much expiry time one slot spans. 10 s: an hour of session moves is 360
	// slots (a digest of 7.5 KiB), and entries with the shortest TTLs (health observations,
	// 60 s or more) are in slots compared for most of their life.
	slotWidth = int64(10 * time.Second)
	// slotNever is the slot of entries without expiry (drains).
	slotNever = int64(-1)
	// cutoffSlots is how many slots from now on are left out of every comparison: their
	// entries expire within 10-20 s, and a node that collected them already would otherwise
	// see them differ from one that has not.
	cutoffSlots = 2
	// maxBucketBits caps a slot's buckets (step 2) at 256: the top byte of keyHash.
	maxBucketBits = 8
	// syncChunkBytes bounds one message of entries in step 3; well under memberlist's 20 MiB
	// stream limit, and small enough that a chunk never holds up the receive queue.
	syncChunkBytes = 256 << 10
)

type slotID struct {
	kind Kind
	slot int64
}

type slotSum struct {
	count uint32
	xor   uint64
}

// Reconciler is a State whose push/pull carries a digest instead of the full state (Store). The
// node sends Digest in push/pull, and hands every catch-up message it receives (push/pull
// payloads and direct messages starting with syncMarker) to Reconcile, then sends the replies
// to the peer Reconcile names, over memberlist's reliable stream.
type Reconciler interface {
	State
	// Digest is this node's push/pull payload; self is this node's member name, where the
	// peer sends its replies.
	Digest(self string) []byte
	// Reconcile answers one catch-up message from a peer: peer is its member name, replies
	// are the messages to send it. It must not block on the network.
	Reconcile(self string, msg []byte) (peer string, replies [][]byte, err error)
}

var _ Reconciler = (*Store)(nil)

// slotOf files an expiry time in its slot.
func slotOf(expires int64) int64 {
	if expires == 0 {
		return slotNever
	}
	return expires / slotWidth
}

// cutoffAt is the first slot compared at now (Unix nanos).
func cutoffAt(now int64) int64 { return now/slotWidth + cutoffSlots }

// compared reports whether slot is compared under cutoff.
func compared(slot, cutoff int64) bool { return slot == slotNever || slot >= cutoff }

// entryHash is FNV-1a over every field that merging compares, so two replicas holding the same
// version of a key hash it alike, and any other version differently (with odds 2^-64).
func entryHash(key string, r record) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, str := range [3]string{key, r.value, r.node} {
		for i := 0; i < len(str); i++ {
			h = (h ^ uint64(str[i])) * prime
		}
		h = (h ^ uint64(len(str))) * prime
	}
	var del uint64
	if r.deleted {
		del = 1
	}
	// Whole words rather than bytes: the mix below spreads them.
	for _, v := range [4]uint64{uint64(r.stamp.WallNanos), uint64(r.stamp.Logical), uint64(r.expires), del} {
		h = (h ^ v) * prime
		h ^= h >> 29
	}
	return h
}

// digest sums every kind's compared slots at now.
func (s *Store) digest(now, cutoff int64) map[slotID]slotSum {
	out := make(map[slotID]slotSum)
	for k := KindSession; k <= kindMax; k++ {
		s.walk(k, func(key string, r record) {
			if r.expiredAt(now) {
				return
			}
			id := slotID{k, slotOf(r.expires)}
			if !compared(id.slot, cutoff) {
				return
			}
			sum := out[id]
			sum.count++
			sum.xor ^= entryHash(key, r)
			out[id] = sum
		})
	}
	return out
}

// bucketOf is the bucket of a key hash when a slot is cut into 2^bits buckets.
func bucketOf(kh uint64, bits uint8) uint8 {
	if bits == 0 {
		return 0
	}
	return uint8(kh >> (64 - bits))
}

// bucketBits chooses how finely step 2 cuts a slot of count entries of which about diff
// differ: 2^bits buckets cost 8 bytes each, and each differing bucket costs 16 bytes per entry
// in step 3, so about sqrt(2 × count × diff) buckets cost least. The difference of the two
// sides' counts is a lower bound of diff.
func bucketBits(count, diff uint32) uint8 {
	want := math.Sqrt(2 * float64(count) * float64(max(diff, 1)))
	bits := uint8(0)
	for bits < maxBucketBits && float64(uint32(1)<<bits) < want {
		bits++
	}
	return bits
}

// bucketSums returns the XOR of each key-hash bucket of the slots wanted (cut into 2^bits
// buckets each), at now.
func (s *Store) bucketSums(now int64, want map[slotID]uint8) map[slotID][]uint64 {
	out := make(map[slotID][]uint64, len(want))
	for id, bits := range want {
		out[id] = make([]uint64, 1<<bits)
	}
	for k := KindSession; k <= kindMax; k++ {
		s.walk(k, func(key string, r record) {
			if r.expiredAt(now) {
				return
			}
			id := slotID{k, slotOf(r.expires)}
			if sums, ok := out[id]; ok {
				sums[bucketOf(keyHash(key), want[id])] ^= entryHash(key, r)
			}
		})
	}
	return out
}

// rangeEntries returns the unexpired entries in the slots wanted.
func (s *Store) rangeEntries(now int64, want map[slotID]bool) []Entry {
	var out []Entry
	for k := KindSession; k <= kindMax; k++ {
		s.walk(k, func(key string, r record) {
			if r.expiredAt(now) {
				return
			}
			if !want[slotID{k, slotOf(r.expires)}] {
				return
			}
			out = append(out, r.entry(k, key))
		})
	}
	return out
}

// Digest encodes step 1 at the store's current time.
func (s *Store) Digest(self string) []byte {
	now := s.clock.physical().UnixNano()
	cutoff := cutoffAt(now)
	sums := s.digest(now, cutoff)
	ids := make([]slotID, 0, len(sums))
	for id := range sums {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b slotID) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		return compareInt(a.slot, b.slot)
	})
	b := syncHeader(syncDigest, self, cutoff, len(ids), 21*len(ids))
	for _, id := range ids {
		sum := sums[id]
		b = append(b, byte(id.kind))
		b = binary.BigEndian.AppendUint64(b, uint64(id.slot))
		b = binary.BigEndian.AppendUint32(b, sum.count)
		b = binary.BigEndian.AppendUint64(b, sum.xor)
	}
	return b
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// syncHeaderLen is the length of syncHeader's output for sender self; its item count is last.
func syncHeaderLen(self string) int { return 3 + len(self) + 8 + 4 }

// syncHeader starts a catch-up message: marker, type, sender name, cutoff slot, item count.
func syncHeader(typ byte, self string, cutoff int64, items, room int) []byte {
	b := make([]byte, 0, 2+1+len(self)+8+4+room)
	b = append(b, syncMarker, typ, byte(len(self)))
	b = append(b, self...)
	b = binary.BigEndian.AppendUint64(b, uint64(cutoff))
	return binary.BigEndian.AppendUint32(b, uint32(items))
}

// Reconcile answers a digest (step 1) with bucket sums and whole slots (step 2), and bucket
// sums (step 2) with entries (step 3). Malformed messages are refused whole.
func (s *Store) Reconcile(self string, msg []byte) (string, [][]byte, error) {
	r := reader{b: msg}
	if r.u8() != syncMarker {
		return "", nil, fmt.Errorf("gossip: catch-up: %w: no marker", ErrMalformed)
	}
	typ := r.u8()
	peer := string(r.bytes(int(r.u8())))
	theirCutoff := int64(r.u64())
	n := int(r.u32())
	if r.short || peer == "" {
		return "", nil, fmt.Errorf("gossip: catch-up: %w: header", ErrMalformed)
	}
	now := s.clock.physical().UnixNano()
	cutoff := max(theirCutoff, cutoffAt(now))
	switch typ {
	case syncDigest:
		if n > (len(msg)-r.off)/21 {
			return "", nil, fmt.Errorf("gossip: catch-up digest: %w: %d slots in %d bytes", ErrMalformed, n, len(msg))
		}
		theirs := make(map[slotID]slotSum, n)
		for range n {
			id := slotID{Kind(r.u8()), int64(r.u64())}
			theirs[id] = slotSum{count: r.u32(), xor: r.u64()}
		}
		if r.short || r.off != len(msg) {
			return "", nil, fmt.Errorf("gossip: catch-up digest: %w: length", ErrMalformed)
		}
		return peer, s.answerDigest(self, peer, now, cutoff, theirs), nil
	case syncRanges:
		if n > (len(msg)-r.off)/(1+8+1+8) {
			return "", nil, fmt.Errorf("gossip: catch-up ranges: %w: %d slots in %d bytes", ErrMalformed, n, len(msg))
		}
		theirs := make(map[slotID][]uint64, n)
		for range n {
			id := slotID{Kind(r.u8()), int64(r.u64())}
			bits := r.u8()
			if r.short || bits > maxBucketBits || 8<<bits > len(msg)-r.off {
				return "", nil, fmt.Errorf("gossip: catch-up ranges: %w: %d bucket bits", ErrMalformed, bits)
			}
			sums := make([]uint64, 1<<bits)
			for i := range sums {
				sums[i] = r.u64()
			}
			if compared(id.slot, cutoff) {
				theirs[id] = sums
			}
		}
		if r.short || r.off != len(msg) {
			return "", nil, fmt.Errorf("gossip: catch-up ranges: %w: length", ErrMalformed)
		}
		return peer, s.answerRanges(self, now, cutoff, theirs), nil
	case syncKeys:
		theirs := make(map[bucketID]map[fingerprint]bool)
		for range n {
			id := bucketID{slot: slotID{Kind(r.u8()), int64(r.u64())}, bits: r.u8(), bucket: r.u8()}
			count := int(r.u32())
			if id.bits > maxBucketBits {
				return "", nil, fmt.Errorf("gossip: catch-up keys: %w: %d bucket bits", ErrMalformed, id.bits)
			}
			if r.short || count > (len(msg)-r.off)/16 {
				return "", nil, fmt.Errorf("gossip: catch-up keys: %w: %d keys in %d bytes", ErrMalformed, count, len(msg))
			}
			fps := make(map[fingerprint]bool, count)
			for range count {
				fps[fingerprint{r.u64(), r.u64()}] = true
			}
			if compared(id.slot.slot, cutoff) {
				theirs[id] = fps
			}
		}
		if r.short || r.off != len(msg) {
			return "", nil, fmt.Errorf("gossip: catch-up keys: %w: length", ErrMalformed)
		}
		return peer, s.answerKeys(self, now, cutoff, theirs), nil
	case syncWant:
		if n > (len(msg)-r.off)/9 {
			return "", nil, fmt.Errorf("gossip: catch-up want: %w: %d keys in %d bytes", ErrMalformed, n, len(msg))
		}
		want := make(map[kindKey]bool, n)
		for range n {
			want[kindKey{Kind(r.u8()), r.u64()}] = true
		}
		if r.short || r.off != len(msg) {
			return "", nil, fmt.Errorf("gossip: catch-up want: %w: length", ErrMalformed)
		}
		var out []Entry
		for k := KindSession; k <= kindMax; k++ {
			s.walk(k, func(key string, rec record) {
				if !rec.expiredAt(now) && want[kindKey{k, keyHash(key)}] {
					out = append(out, rec.entry(k, key))
				}
			})
		}
		return peer, chunkEntries(out), nil
	}
	return "", nil, fmt.Errorf("gossip: catch-up: %w: message type %d", ErrMalformed, typ)
}

// bucketID is one key-hash bucket of one slot cut into 2^bits buckets.
type bucketID struct {
	slot   slotID
	bits   uint8
	bucket uint8
}

// fingerprint names one version of one key: its keyHash and entryHash.
type fingerprint struct{ key, entry uint64 }

type kindKey struct {
	kind Kind
	key  uint64
}

// answerDigest is step 1 on receipt of a peer's digest: our entries of the slots the peer has
// none of, and, from the side whose name sorts first, the bucket sums of the slots that differ.
func (s *Store) answerDigest(self, peer string, now, cutoff int64, theirs map[slotID]slotSum) [][]byte {
	mine := s.digest(now, cutoff)
	whole := make(map[slotID]bool)
	split := make(map[slotID]uint8)
	for id, m := range mine {
		t, ok := theirs[id]
		switch {
		case !ok || t.count == 0:
			whole[id] = true
		case t != m:
			split[id] = bucketBits(max(m.count, t.count), max(m.count, t.count)-min(m.count, t.count))
		}
	}
	var replies [][]byte
	if len(whole) > 0 {
		replies = chunkEntries(s.rangeEntries(now, whole))
	}
	if len(split) == 0 || self > peer {
		return replies
	}
	sums := s.bucketSums(now, split)
	ids := make([]slotID, 0, len(sums))
	for id := range sums {
		ids = append(ids, id)
	}
	var b []byte
	items := 0
	flush := func() {
		if items > 0 {
			binary.BigEndian.PutUint32(b[syncHeaderLen(self)-4:], uint32(items))
			replies = append(replies, b)
		}
		b, items = nil, 0
	}
	for _, id := range ids {
		if b != nil && len(b)+10+8*len(sums[id]) > syncChunkBytes {
			flush()
		}
		if b == nil {
			b = syncHeader(syncRanges, self, cutoff, 0, 0)
		}
		b = append(b, byte(id.kind))
		b = binary.BigEndian.AppendUint64(b, uint64(id.slot))
		b = append(b, split[id])
		for _, x := range sums[id] {
			b = binary.BigEndian.AppendUint64(b, x)
		}
		items++
	}
	flush()
	return replies
}

// answerRanges is step 3: the fingerprints of our entries in each bucket whose sum differs.
func (s *Store) answerRanges(self string, now, cutoff int64, theirs map[slotID][]uint64) [][]byte {
	bits := make(map[slotID]uint8, len(theirs))
	for id, sums := range theirs {
		bits[id] = uint8(math.Log2(float64(len(sums))))
	}
	mine := s.bucketSums(now, bits)
	differ := make(map[bucketID][]fingerprint)
	for id, their := range theirs {
		for i, x := range mine[id] {
			if x != their[i] {
				differ[bucketID{id, bits[id], uint8(i)}] = []fingerprint{}
			}
		}
	}
	for k := KindSession; k <= kindMax; k++ {
		s.walk(k, func(key string, r record) {
			if r.expiredAt(now) {
				return
			}
			kh := keyHash(key)
			slot := slotID{k, slotOf(r.expires)}
			b, ok := bits[slot]
			if !ok {
				return
			}
			id := bucketID{slot, b, bucketOf(kh, b)}
			if fps, ok := differ[id]; ok {
				differ[id] = append(fps, fingerprint{kh, entryHash(key, r)})
			}
		})
	}
	var replies [][]byte
	var b []byte
	items := 0
	flush := func() {
		if items > 0 {
			binary.BigEndian.PutUint32(b[syncHeaderLen(self)-4:], uint32(items))
			replies = append(replies, b)
		}
		b, items = nil, 0
	}
	for id, fps := range differ {
		if b != nil && len(b)+15+16*len(fps) > syncChunkBytes {
			flush()
		}
		if b == nil {
			b = syncHeader(syncKeys, self, cutoff, 0, 0)
		}
		b = append(b, byte(id.slot.kind))
		b = binary.BigEndian.AppendUint64(b, uint64(id.slot.slot))
		b = append(b, id.bits, id.bucket)
		b = binary.BigEndian.AppendUint32(b, uint32(len(fps)))
		for _, fp := range fps {
			b = binary.BigEndian.AppendUint64(b, fp.key)
			b = binary.BigEndian.AppendUint64(b, fp.entry)
		}
		items++
	}
	flush()
	return replies
}

// answerKeys is step 4: our entries of those buckets that the peer's fingerprints do not
// list, and a want for the peer's fingerprints we do not hold.
func (s *Store) answerKeys(self string, now, cutoff int64, theirs map[bucketID]map[fingerprint]bool) [][]byte {
	var send []Entry
	held := make(map[kindKey]map[uint64]bool) // our fingerprints in those buckets: key -> entry hashes
	bits := make(map[slotID]uint8)
	for id := range theirs {
		bits[id.slot] = id.bits
	}
	for k := KindSession; k <= kindMax; k++ {
		s.walk(k, func(key string, r record) {
			if r.expiredAt(now) {
				return
			}
			kh := keyHash(key)
			slot := slotID{k, slotOf(r.expires)}
			b, ok := bits[slot]
			if !ok {
				return
			}
			fps, ok := theirs[bucketID{slot, b, bucketOf(kh, b)}]
			if !ok {
				return
			}
			eh := entryHash(key, r)
			if hs := held[kindKey{k, kh}]; hs == nil {
				held[kindKey{k, kh}] = map[uint64]bool{eh: true}
			} else {
				hs[eh] = true
			}
			if !fps[fingerprint{kh, eh}] {
				send = append(send, r.entry(k, key))
			}
		})
	}
	replies := chunkEntries(send)
	var want []kindKey
	for id, fps := range theirs {
		for fp := range fps {
			if !held[kindKey{id.slot.kind, fp.key}][fp.entry] {
				want = append(want, kindKey{id.slot.kind, fp.key})
			}
		}
	}
	perMsg := syncChunkBytes / 9
	for len(want) > 0 {
		part := want[:min(perMsg, len(want))]
		want = want[len(part):]
		b := syncHeader(syncWant, self, cutoff, len(part), 9*len(part))
		for _, w := range part {
			b = append(b, byte(w.kind))
			b = binary.BigEndian.AppendUint64(b, w.key)
		}
		replies = append(replies, b)
	}
	return replies
}

// chunkEntries encodes entries as messages of entriesMarker and a full state, of at most
// syncChunkBytes each.
func chunkEntries(entries []Entry) [][]byte {
	var out [][]byte
	for len(entries) > 0 {
		msg, n := encodeBatch(entries, syncChunkBytes)
		if n == 0 {
			// Never with a Store's entries (each fits a packet); skip rather than loop.
			entries = entries[1:]
			continue
		}
		out = append(out, msg)
		entries = entries[n:]
	}
	return out
}

// encodeBatch encodes as many of entries as fit in maxBytes as entriesMarker and a full state,
// and returns how many it took.
func encodeBatch(entries []Entry, maxBytes int) ([]byte, int) {
	b := make([]byte, 1+stateHeaderBytes, min(maxBytes, 1+stateHeaderBytes+len(entries)*80))
	b[0] = entriesMarker
	b[1] = FormatVersion
	count := 0
	for _, e := range entries {
		next, err := AppendEntry(b, e)
		if err != nil || len(next) > maxBytes {
			break
		}
		b = next
		count++
	}
	binary.BigEndian.PutUint32(b[2:], uint32(count))
	return b, count
}
