package gossip

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// syncBytes counts the bytes of one catch-up by part (digest, ranges, entries).
type syncBytes map[string]int

func (b syncBytes) total() int { return b["digest"] + b["ranges"] + b["entries"] }

// exchange runs one push/pull between stores named "a" and "b" the way two nodes do: each
// receives the other's digest, answers, and so on until nothing is left to send. Messages go
// straight from one store to the other, so the byte counts are exactly what would cross the
// network (before memberlist's framing and encryption).
func exchange(t testing.TB, a, b *Store) syncBytes {
	t.Helper()
	stores := map[string]*Store{"a": a, "b": b}
	type msg struct {
		to   string
		data []byte
	}
	queue := []msg{{"b", a.Digest("a")}, {"a", b.Digest("b")}}
	sent := syncBytes{}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		sent[catchupPart(m.data)] += len(m.data)
		to := stores[m.to]
		switch m.data[0] {
		case entriesMarker:
			if err := to.MergeFull(m.data[1:]); err != nil {
				t.Fatalf("merge entries into %s: %v", m.to, err)
			}
		case syncMarker:
			peer, replies, err := to.Reconcile(m.to, m.data)
			if err != nil {
				t.Fatalf("%s reconciles: %v", m.to, err)
			}
			for _, r := range replies {
				queue = append(queue, msg{peer, r})
			}
		default:
			t.Fatalf("unexpected message %#x", m.data[0])
		}
	}
	return sent
}

// sameState fails unless a and b hold the same entries.
func sameState(t testing.TB, a, b *Store) {
	t.Helper()
	sa, sb := a.Snapshot(), b.Snapshot()
	if !equalEntries(sa, sb) {
		t.Fatalf("states differ after catch-up: a holds %d entries, b %d", len(sa), len(sb))
	}
}

// moveAt returns session move i, written at stamp and living ttl.
func moveAt(i int, stamp time.Time, ttl time.Duration, node string) Entry {
	return Entry{Kind: KindSession, Key: fmt.Sprintf("web|%022d", i), Value: []byte(fmt.Sprintf("backend-%d", i%4)),
		Stamp: Timestamp{WallNanos: stamp.UnixNano()}, Node: node, Expires: stamp.Add(ttl).UnixNano()}
}

func mustMerge(t testing.TB, s *Store, e Entry) {
	t.Helper()
	if _, err := s.Merge(e); err != nil {
		t.Fatal(err)
	}
}

func TestCatchUpExchangesOnlyTheDifference(t *testing.T) {
	const n = 5000
	tests := []struct {
		name string
		// fill writes move i (of n, written over the last hour) to a and/or b.
		fill        func(t *testing.T, i int, e Entry, a, b *Store)
		wantEntries func(sent syncBytes) bool
	}{
		{"equal stores exchange digests only", func(t *testing.T, i int, e Entry, a, b *Store) {
			mustMerge(t, a, e)
			mustMerge(t, b, e)
		}, func(s syncBytes) bool { return s["ranges"] == 0 && s["entries"] == 0 }},
		{"b missed the newest 1%", func(t *testing.T, i int, e Entry, a, b *Store) {
			mustMerge(t, a, e)
			if i < n*99/100 {
				mustMerge(t, b, e)
			}
		}, func(s syncBytes) bool { return s["entries"] > 0 && s["entries"] < n*70/10 }},
		{"b missed a random 1%", func(t *testing.T, i int, e Entry, a, b *Store) {
			mustMerge(t, a, e)
			if i%100 != 37 {
				mustMerge(t, b, e)
			}
		}, func(s syncBytes) bool { return s["entries"] > 0 }},
		{"b restarted empty", func(t *testing.T, i int, e Entry, a, b *Store) {
			mustMerge(t, a, e)
		}, func(s syncBytes) bool { return s["ranges"] == 0 && s["entries"] > 0 }},
		{"each side wrote what the other missed", func(t *testing.T, i int, e Entry, a, b *Store) {
			switch i % 3 {
			case 0:
				mustMerge(t, a, e)
			case 1:
				mustMerge(t, b, e)
			default:
				mustMerge(t, a, e)
				mustMerge(t, b, e)
			}
		}, func(s syncBytes) bool { return s["entries"] > 0 }},
		{"the same key written on both sides ends with the later write", func(t *testing.T, i int, e Entry, a, b *Store) {
			mustMerge(t, a, e)
			if i%10 == 0 {
				e.Stamp.Logical++
				e.Value = []byte("moved-again")
				e.Node = "other"
			}
			mustMerge(t, b, e)
		}, func(s syncBytes) bool { return s["entries"] > 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := testutil.NewClock(testEpoch)
			a, b := newTestStore(t, "a", ft, nil), newTestStore(t, "b", ft, nil)
			start := ft.Now().Add(-time.Hour)
			for i := range n {
				tt.fill(t, i, moveAt(i, start.Add(time.Duration(i)*time.Hour/n), time.Hour+time.Minute, "n1"), a, b)
			}
			sent := exchange(t, a, b)
			sameState(t, a, b)
			if !tt.wantEntries(sent) {
				t.Fatalf("exchanged %v", sent)
			}
			if again := exchange(t, a, b); again["ranges"] != 0 || again["entries"] != 0 {
				t.Fatalf("a second exchange still sent %v", again)
			}
			t.Logf("%d entries: %v", n, sent)
		})
	}
}

// TestLateJoinerCatchesUpBeyondThePushPullCap: a node joins one that holds 5,000 moves, about
// 330 KB as a full state, with push/pull payloads capped at 1 KiB: the push/pull carries
// digests only, and the joiner gets every move from the catch-up that follows, over real
// memberlist nodes.
func TestLateJoinerCatchesUpBeyondThePushPullCap(t *testing.T) {
	const n = 5000
	small := func(c *Config) { c.PushPullMaxBytes = 1024 }
	a := startStoreNodeWith(t, "a", 100_000, small)
	for i := range n {
		// Stored on a alone, not broadcast: only the catch-up can bring them to b.
		mustMerge(t, a.store, moveAt(i, time.Now(), time.Hour, "a"))
	}
	b := startStoreNodeWith(t, "b", 100_000, small, a.LocalAddr())
	took := testutil.Eventually(t, "b holds every move", func() bool { return b.store.Len(KindSession) == n })
	sameState(t, a.store, b.store)
	t.Logf("a joiner got %d moves (%d bytes as a full state) %v after its start, with push/pull capped at 1 KiB",
		n, len(a.store.FullState(1<<30)), took.Round(time.Millisecond))
}

// TestCatchUpLeavesOutWhatIsAboutToExpire: entries expiring within the cutoff are not
// compared, so one node having collected them and another not costs nothing.
func TestCatchUpLeavesOutWhatIsAboutToExpire(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	a, b := newTestStore(t, "a", ft, nil), newTestStore(t, "b", ft, nil)
	now := ft.Now()
	for i := range 100 {
		// Written an hour ago, expiring within the next 5 s: only a holds them.
		mustMerge(t, a, moveAt(i, now.Add(-time.Hour), time.Hour+5*time.Second, "n1"))
	}
	mustMerge(t, a, moveAt(1000, now, time.Hour, "n1"))
	mustMerge(t, b, moveAt(1000, now, time.Hour, "n1"))
	if sent := exchange(t, a, b); sent["ranges"] != 0 || sent["entries"] != 0 {
		t.Fatalf("entries about to expire were exchanged: %v", sent)
	}
}

func TestReconcileRefusesMalformed(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "a", ft, nil)
	mustMerge(t, s, moveAt(1, ft.Now(), time.Hour, "n1"))
	good := s.Digest("a")
	tests := []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"no marker", append([]byte{1}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"unknown type", append([]byte{syncMarker, 9}, good[2:]...)},
		{"count beyond the message", func() []byte {
			b := append([]byte(nil), good...)
			b[2+1+1+8] = 0xff
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.Reconcile("b", tt.msg); err == nil {
				t.Fatalf("Reconcile(%x) accepted", tt.msg)
			}
		})
	}
	if _, _, err := s.Reconcile("b", good); err != nil {
		t.Fatalf("a good digest refused: %v", err)
	}
}

func FuzzReconcile(f *testing.F) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(f, "a", ft, nil)
	for i := range 20 {
		mustMerge(f, s, moveAt(i, ft.Now(), time.Hour, "n1"))
	}
	other := newTestStore(f, "b", ft, nil)
	mustMerge(f, other, moveAt(1, ft.Now(), time.Hour, "n1"))
	f.Add(s.Digest("a"))
	_, replies, _ := s.Reconcile("a", other.Digest("b"))
	for _, r := range replies {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _, _ = s.Reconcile("a", msg) // must not panic, nor allocate by a count it was told
	})
}

// TestCatchUpAtScale runs catchUpAtScale with 100,000 moves; BenchmarkCatchUpMillion runs it
// with 1,000,000 (about a minute and 700 MiB on a 2-core machine, too much for every test run).
func TestCatchUpAtScale(t *testing.T) { catchUpAtScale(t, 100_000) }

func BenchmarkCatchUpMillion(b *testing.B) {
	for range b.N {
		catchUpAtScale(b, 1_000_000)
	}
}

// catchUpAtScale holds n session moves (every session of a busy site moved at once, the worst
// case: sessions whose backend is up are not stored at all), measures the bytes each costs in
// the store, and measures the catch-up of a node that missed 1% of them, once the newest 1%
// (what a node misses while it is partitioned or restarting) and once a random 1%.
func catchUpAtScale(tb testing.TB, n int) {
	ft := testutil.NewClock(testEpoch)
	a := newTestStore(tb, "a", ft, nil)
	start := ft.Now().Add(-time.Hour)
	entry := func(i int) Entry {
		return moveAt(i, start.Add(time.Duration(i)*time.Hour/time.Duration(n)), time.Hour+time.Minute, "n1")
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for i := range n {
		mustMerge(tb, a, entry(i))
	}
	perEntry := float64(heap()-before) / float64(n)
	if perEntry > 256 {
		tb.Errorf("a stored move costs %.0f bytes, above 256", perEntry)
	}
	full := len(a.FullState(1 << 30))
	tb.Logf("%d moves: %.0f bytes each in the store (%.0f MiB), full state %.1f MiB, digest %d bytes",
		n, perEntry, perEntry*float64(n)/(1<<20), float64(full)/(1<<20), len(a.Digest("a")))

	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name   string
		missed func(i int) bool
		// most is the share of the full state the catch-up may exchange.
		most float64
	}{
		{"newest 1%", func(i int) bool { return i >= n*99/100 }, 0.02},
		{"random 1%", func(int) bool { return rng.IntN(100) == 0 }, 0.10},
	} {
		b := newTestStore(tb, "b", ft, nil)
		missed := 0
		for i := range n {
			if tt.missed(i) {
				missed++
				continue
			}
			mustMerge(tb, b, entry(i))
		}
		began := time.Now()
		sent := exchange(tb, a, b)
		took := time.Since(began)
		sameState(tb, a, b)
		tb.Logf("%s: b missed %d of %d: catch-up exchanged %d bytes (%.2f%% of the %d-byte full state): digests %d, ranges %d, entries %d; %v wall time",
			tt.name, missed, n, sent.total(), 100*float64(sent.total())/float64(full), full, sent["digest"], sent["ranges"], sent["entries"], took.Round(time.Millisecond))
		if float64(sent.total()) > tt.most*float64(full) {
			tb.Errorf("%s: catch-up exchanged %d bytes, more than %.0f%% of the full state", tt.name, sent.total(), 100*tt.most)
		}
	}
}

// BenchmarkDigest measures the walk every push/pull makes over a store of 100,000 moves.
func BenchmarkDigest(b *testing.B) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(b, "a", ft, nil)
	start := ft.Now().Add(-time.Hour)
	for i := range 100_000 {
		mustMerge(b, s, moveAt(i, start.Add(time.Duration(i)*36*time.Millisecond), time.Hour+time.Minute, "n1"))
	}
	b.ResetTimer()
	cpu := processCPU()
	for range b.N {
		s.Digest("a")
	}
	// CPU rather than wall time: on a shared machine the wall time says more about the load.
	b.ReportMetric(float64((processCPU()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExpire measures a collection of 100,000 expired moves: its CPU time, and that time
// per shard, which bounds how long the walk holds any one lock (a request or a merge on another
// shard never waits for it).
func BenchmarkExpire(b *testing.B) {
	ft := testutil.NewClock(testEpoch)
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		s := newTestStore(b, "a", ft, nil)
		start := ft.Now().Add(-time.Hour)
		for i := range 100_000 {
			mustMerge(b, s, moveAt(i, start, time.Hour+time.Minute, "n1"))
		}
		b.StartTimer()
		before := processCPU()
		if n := s.Expire(ft.Now().Add(2 * time.Minute)); n != 100_000 {
			b.Fatalf("expired %d, want 100000", n)
		}
		cpu += processCPU() - before
	}
	perOp := float64(cpu.Microseconds()) / float64(b.N)
	b.ReportMetric(perOp/1000, "cpu-ms/op")
	b.ReportMetric(perOp/shardCount, "cpu-µs/shard")
}
