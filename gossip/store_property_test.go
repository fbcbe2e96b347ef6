package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// The merge contract (STYLE.md rule 9): replicas that received the same entries hold the same
// state whatever the order, grouping or duplication of deliveries. These tests check it over
// random entry sets drawn from a fixed seed, so a failure reproduces.

const propertyIterations = 300

// randomEntries draws n entries over a small key, node and time space so that collisions, equal
// stamps, same-writer ties, tombstones and expired entries all occur often.
func randomEntries(rng *rand.Rand, n int) []Entry {
	now := testEpoch.UnixNano()
	nodes := []string{"a", "b", "c"}
	out := make([]Entry, n)
	for i := range out {
		e := Entry{
			Kind:  Kind(1 + rng.IntN(3)),
			Key:   fmt.Sprintf("k%d", rng.IntN(4)),
			Node:  nodes[rng.IntN(len(nodes))],
			Stamp: Timestamp{WallNanos: now - int64(rng.IntN(4))*int64(time.Second), Logical: uint32(rng.IntN(3))},
		}
		if rng.IntN(4) == 0 {
			e.Deleted = true
		} else if l := rng.IntN(3); l > 0 {
			e.Value = []byte{byte(rng.IntN(3)), byte(l)}
		}
		switch rng.IntN(4) {
		case 0: // already expired at the test's clock reading
			e.Expires = now - int64(rng.IntN(3)+1)*int64(time.Second)
		case 1: // expires later, within the window convergence tests move the clock through
			e.Expires = now + int64(rng.IntN(3)+1)*int64(time.Second)
		}
		out[i] = e
	}
	return out
}

// deliver merges entries into s, refusing nothing: the randomized entries are all valid.
func deliver(t *testing.T, s *Store, entries []Entry) {
	t.Helper()
	for _, e := range entries {
		if _, err := s.Merge(e); err != nil {
			t.Fatalf("Merge(%+v): %v", e, err)
		}
	}
}

// shuffledWithDuplicates returns entries in a random order with some delivered up to three times.
func shuffledWithDuplicates(rng *rand.Rand, entries []Entry) []Entry {
	var out []Entry
	for _, e := range entries {
		for range 1 + rng.IntN(3) {
			out = append(out, e)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// expectedState is the contract written independently of the store: per key the greatest entry
// among the unexpired ones.
func expectedState(entries []Entry, now int64) map[string]Entry {
	want := map[string]Entry{}
	for _, e := range entries {
		if e.expiredAt(now) {
			continue
		}
		id := fmt.Sprintf("%d/%s", e.Kind, e.Key)
		if cur, ok := want[id]; !ok || compareEntries(e, cur) > 0 {
			want[id] = e
		}
	}
	return want
}

func checkState(t *testing.T, s *Store, want map[string]Entry) {
	t.Helper()
	snap := s.Snapshot()
	if len(snap) != len(want) {
		t.Fatalf("state has %d entries, want %d:\n%v\nwant %v", len(snap), len(want), snap, want)
	}
	for _, e := range snap {
		w, ok := want[fmt.Sprintf("%d/%s", e.Kind, e.Key)]
		if !ok || !equalEntries([]Entry{e}, []Entry{w}) {
			t.Fatalf("entry %+v, want %+v", e, w)
		}
	}
}

func TestMergeCommutativeIdempotent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ft := testutil.NewClock(testEpoch)
	for i := range propertyIterations {
		entries := randomEntries(rng, 1+rng.IntN(30))
		want := expectedState(entries, testEpoch.UnixNano())
		inOrder := newTestStore(t, "x", ft, nil)
		deliver(t, inOrder, entries)
		shuffled := newTestStore(t, "y", ft, nil)
		deliver(t, shuffled, shuffledWithDuplicates(rng, entries))
		t.Run(fmt.Sprintf("iteration %d", i), func(t *testing.T) {
			checkState(t, inOrder, want)
			checkState(t, shuffled, want)
			// Re-delivering everything changes nothing (idempotence), and Merge says so.
			for _, e := range entries {
				if changed, err := shuffled.Merge(e); err != nil || changed {
					t.Fatalf("re-merging %+v: changed=%v err=%v", e, changed, err)
				}
			}
			checkState(t, shuffled, want)
		})
	}
}

func TestMergeAssociative(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ft := testutil.NewClock(testEpoch)
	const stateCap = 1 << 20
	for i := range propertyIterations {
		entries := randomEntries(rng, 3+rng.IntN(30))
		parts := [3][]Entry{}
		for _, e := range entries {
			p := rng.IntN(3)
			parts[p] = append(parts[p], e)
		}
		replica := func(name string, es []Entry) *Store {
			s := newTestStore(t, name, ft, nil)
			deliver(t, s, es)
			return s
		}
		t.Run(fmt.Sprintf("iteration %d", i), func(t *testing.T) {
			// (A ⊔ B) ⊔ C, exchanged as full-state messages so the codec is in the loop.
			left := replica("l", parts[0])
			for _, other := range []*Store{replica("b", parts[1]), replica("c", parts[2])} {
				if err := left.MergeFull(other.FullState(stateCap)); err != nil {
					t.Fatal(err)
				}
			}
			// A ⊔ (B ⊔ C)
			bc := replica("bc", parts[1])
			if err := bc.MergeFull(replica("c", parts[2]).FullState(stateCap)); err != nil {
				t.Fatal(err)
			}
			right := replica("r", parts[0])
			if err := right.MergeFull(bc.FullState(stateCap)); err != nil {
				t.Fatal(err)
			}
			want := expectedState(entries, testEpoch.UnixNano())
			checkState(t, left, want)
			checkState(t, right, want)
		})
	}
}

// TestReplicasConverge runs three replicas that write, delete and exchange deltas over a lossy,
// reordering link while time passes, then run anti-entropy (full-state exchange) and expire at
// the same instant. They must end identical, and equal to the contract over every write made.
func TestReplicasConverge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 60 {
		ft := testutil.NewClock(testEpoch)
		names := []string{"a", "b", "c"}
		stores := make([]*Store, len(names))
		for j, n := range names {
			stores[j] = newTestStore(t, n, ft, func(c *StoreConfig) { c.TombstoneTTL = 3 * time.Second })
		}
		var written []Entry
		var inFlight []struct {
			to int
			e  Entry
		}
		for range 80 {
			ft.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
			w := rng.IntN(len(stores))
			kind, key := Kind(1+rng.IntN(3)), fmt.Sprintf("k%d", rng.IntN(5))
			var e Entry
			var err error
			if rng.IntN(3) == 0 {
				e, err = stores[w].Delete(kind, key)
			} else {
				ttl := time.Duration(rng.IntN(3)) * 2 * time.Second // 0 = never
				e, err = stores[w].Put(kind, key, []byte{byte(rng.IntN(256))}, ttl)
			}
			if err != nil {
				t.Fatal(err)
			}
			written = append(written, e)
			for to := range stores {
				if to != w && rng.IntN(3) > 0 { // a third of the deltas are lost
					inFlight = append(inFlight, struct {
						to int
						e  Entry
					}{to, e})
				}
			}
			if len(inFlight) > 0 && rng.IntN(2) == 0 { // deliver one pending delta, out of order
				k := rng.IntN(len(inFlight))
				msg, err := AppendEntry(nil, inFlight[k].e)
				if err != nil {
					t.Fatal(err)
				}
				if err := stores[inFlight[k].to].MergeDelta(msg); err != nil {
					t.Fatal(err)
				}
				inFlight = append(inFlight[:k], inFlight[k+1:]...)
			}
			if rng.IntN(10) == 0 {
				stores[rng.IntN(len(stores))].Expire(ft.Now())
			}
		}
		t.Run(fmt.Sprintf("iteration %d", i), func(t *testing.T) {
			// Anti-entropy: every ordered pair pushes its full state once.
			for _, from := range stores {
				for _, to := range stores {
					if from != to {
						if err := to.MergeFull(from.FullState(1 << 20)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			ft.Add(time.Second)
			for _, s := range stores {
				s.Expire(ft.Now())
			}
			// The newest write of each key, when still live, is what every replica holds: nothing
			// can beat it and its writer keeps it until anti-entropy spreads it. When it has
			// expired, the key may be gone or show an older live write that some replica kept
			// because the newer one expired before reaching it: the documented cost of expiry.
			now := ft.Now().UnixNano()
			newest := map[string]Entry{}
			for _, e := range written {
				id := fmt.Sprintf("%d/%s", e.Kind, e.Key)
				if cur, ok := newest[id]; !ok || compareEntries(e, cur) > 0 {
					newest[id] = e
				}
			}
			final := map[string]Entry{}
			for j, s := range stores {
				snap := s.Snapshot()
				if !equalEntries(snap, stores[0].Snapshot()) {
					t.Fatalf("replica %s diverged from %s", names[j], names[0])
				}
				for _, e := range snap {
					final[fmt.Sprintf("%d/%s", e.Kind, e.Key)] = e
				}
			}
			for id, n := range newest {
				got, ok := final[id]
				switch {
				case !n.expiredAt(now) && (!ok || !equalEntries([]Entry{got}, []Entry{n})):
					t.Fatalf("%s: replicas hold %+v (present %v), want the newest live write %+v", id, got, ok, n)
				case ok && got.expiredAt(now):
					t.Fatalf("%s: replicas hold expired %+v", id, got)
				}
			}
			for id := range final {
				if _, ok := newest[id]; !ok {
					t.Fatalf("%s: replicas hold a key nobody wrote", id)
				}
			}
		})
	}
}
