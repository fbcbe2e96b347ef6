package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// newTestStore returns a store named name whose clock reads ft and tolerates drift hours ahead,
// so randomized tests can merge stamps from anywhere in their time window.
func newTestStore(t testing.TB, name string, ft *testutil.Clock, mutate func(*StoreConfig)) *Store {
	t.Helper()
	cfg := DefaultStoreConfig()
	cfg.NodeName = name
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := NewStore(cfg, NewClock(ft.Now, 24*time.Hour))
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

func TestStoreConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*StoreConfig)
		want   []string // substrings the error must contain; none means valid
	}{
		{"defaults with a name", func(c *StoreConfig) { c.NodeName = "a" }, nil},
		{"missing name", func(c *StoreConfig) {}, []string{"store node name: required"}},
		{"name too long", func(c *StoreConfig) { c.NodeName = strings.Repeat("n", MaxNodeBytes+1) },
			[]string{"store node name: 129 bytes"}},
		{"every problem at once", func(c *StoreConfig) {
			c.MaxEntriesPerKind = 0
			c.TombstoneTTL = -time.Second
			c.ExpireInterval = 0
		}, []string{"store node name: required", "max_entries_per_kind: must be between 1 and 10000000, got 0",
			"tombstone_ttl: must be > 0, got -1s", "store expire interval: must be > 0, got 0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultStoreConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
			if _, nerr := NewStore(cfg, NewClock(nil, 0)); nerr == nil {
				t.Error("NewStore accepted an invalid config")
			}
		})
	}
}

func TestStorePutGet(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "a", ft, nil)
	value := []byte("backend-1")
	put, err := s.Put(KindSession, "sess-1", value, 0)
	if err != nil {
		t.Fatal(err)
	}
	if put.Node != "a" || put.Stamp.WallNanos != testEpoch.UnixNano() || put.Expires != 0 || put.Deleted {
		t.Fatalf("Put returned %+v", put)
	}
	value[0] = 'X' // the caller's buffer is not the store's
	got, ok := s.Get(KindSession, "sess-1")
	if !ok || string(got.Value) != "backend-1" {
		t.Fatalf("Get = %+v, %v; want backend-1", got, ok)
	}
	got.Value[0] = 'Y' // nor is the returned one
	if again, _ := s.Get(KindSession, "sess-1"); string(again.Value) != "backend-1" {
		t.Fatalf("mutating a Get result changed the store: %q", again.Value)
	}
	if _, ok := s.Get(KindHealth, "sess-1"); ok {
		t.Fatal("kinds share keys: health saw a session entry")
	}
	if _, ok := s.Get(Kind(9), "sess-1"); ok {
		t.Fatal("unknown kind returned an entry")
	}
	second, err := s.Put(KindSession, "sess-1", []byte("backend-2"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if second.Stamp.Compare(put.Stamp) <= 0 {
		t.Fatalf("overwrite stamp %s not after %s", second.Stamp, put.Stamp)
	}
	if got, _ := s.Get(KindSession, "sess-1"); string(got.Value) != "backend-2" {
		t.Fatalf("after overwrite Get = %q", got.Value)
	}
}

func TestStoreDeleteLeavesTombstoneUntilTTL(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "a", ft, func(c *StoreConfig) { c.TombstoneTTL = time.Minute })
	if _, err := s.Put(KindDrain, "node-b", []byte{1}, 0); err != nil {
		t.Fatal(err)
	}
	tomb, err := s.Delete(KindDrain, "node-b")
	if err != nil {
		t.Fatal(err)
	}
	if !tomb.Deleted || tomb.Value != nil || tomb.Expires != testEpoch.Add(time.Minute).UnixNano() {
		t.Fatalf("tombstone = %+v", tomb)
	}
	if _, ok := s.Get(KindDrain, "node-b"); ok {
		t.Fatal("Get returned a deleted entry")
	}
	if s.Len(KindDrain) != 1 {
		t.Fatalf("Len = %d, want 1: the tombstone must stay to propagate", s.Len(KindDrain))
	}
	if snap := s.Snapshot(); len(snap) != 1 || !snap[0].Deleted {
		t.Fatalf("Snapshot = %+v, want the tombstone", snap)
	}
	if n := s.Expire(testEpoch.Add(time.Minute - 1)); n != 0 {
		t.Fatalf("Expire before TTL removed %d", n)
	}
	if n := s.Expire(testEpoch.Add(time.Minute)); n != 1 || s.Len(KindDrain) != 0 {
		t.Fatalf("Expire at TTL removed %d, Len %d; want 1, 0", n, s.Len(KindDrain))
	}
}

func TestStoreTTLExpiry(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "a", ft, nil)
	if _, err := s.Put(KindSession, "short", []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(KindSession, "forever", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(KindSession, "short"); !ok {
		t.Fatal("entry missing before its TTL")
	}
	ft.Add(time.Second)
	if _, ok := s.Get(KindSession, "short"); ok {
		t.Fatal("Get returned an expired entry")
	}
	var keys []string
	s.Range(KindSession, func(e Entry) bool { keys = append(keys, e.Key); return true })
	if fmt.Sprint(keys) != "[forever]" {
		t.Fatalf("Range = %v, want [forever]", keys)
	}
	if s.Len(KindSession) != 2 {
		t.Fatalf("Len before Expire = %d, want 2", s.Len(KindSession))
	}
	if n := s.Expire(ft.Now()); n != 1 || s.Len(KindSession) != 1 {
		t.Fatalf("Expire removed %d, Len %d; want 1, 1", n, s.Len(KindSession))
	}
}

// Run's ticker runs on the synctest bubble's clock, so the test knows exactly when a collection
// is due; the store's own expiry clock is ft, moved by hand.
func TestStoreRunCollectsExpiredEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		ft := testutil.NewClock(testEpoch)
		s := newTestStore(t, "a", ft, func(c *StoreConfig) { c.ExpireInterval = interval })
		if _, err := s.Put(KindSession, "gone", []byte("x"), time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(KindSession, "kept", []byte("y"), time.Hour); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		ft.Add(2 * time.Second)
		time.Sleep(interval - time.Nanosecond)
		synctest.Wait()
		if n := s.Len(KindSession); n != 2 {
			t.Fatalf("Len = %d before the first ExpireInterval: collected early", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := s.Len(KindSession); n != 1 {
			t.Fatalf("Run did not collect the expired entry at ExpireInterval: Len = %d", n)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run returned %v on cancel, want nil", err)
			}
		default:
			t.Fatal("Run did not stop when its context ended")
		}
		if _, ok := s.Get(KindSession, "kept"); !ok {
			t.Fatal("Run removed a live entry")
		}
	})
}

func TestStoreMergeLastWriterWins(t *testing.T) {
	now := testEpoch.UnixNano()
	base := Entry{Kind: KindSession, Key: "k", Value: []byte("old"), Stamp: Timestamp{now, 5}, Node: "b"}
	with := func(f func(*Entry)) Entry { e := base; f(&e); return e }
	tests := []struct {
		name     string
		incoming Entry
		wantWin  bool
	}{
		{"newer wall wins", with(func(e *Entry) { e.Stamp.WallNanos++; e.Value = []byte("new") }), true},
		{"newer logical wins", with(func(e *Entry) { e.Stamp.Logical++; e.Value = []byte("new") }), true},
		{"older loses", with(func(e *Entry) { e.Stamp.Logical--; e.Value = []byte("new") }), false},
		{"same stamp higher node wins", with(func(e *Entry) { e.Node = "c"; e.Value = []byte("new") }), true},
		{"same stamp lower node loses", with(func(e *Entry) { e.Node = "a"; e.Value = []byte("new") }), false},
		{"newer tombstone wins", with(func(e *Entry) { e.Stamp.Logical++; e.Value = nil; e.Deleted = true }), true},
		{"older tombstone loses", with(func(e *Entry) { e.Stamp.Logical--; e.Value = nil; e.Deleted = true }), false},
		{"identical is not a change", base, false},
		{"same stamp and writer: tombstone breaks the tie", with(func(e *Entry) { e.Value = nil; e.Deleted = true }), true},
		{"same stamp and writer: later expiry breaks the tie", with(func(e *Entry) { e.Expires = now + 1; e.Value = []byte("aaa") }), true},
		{"same stamp and writer: larger value breaks the tie", with(func(e *Entry) { e.Value = []byte("zzz") }), true},
		{"newer but already expired is ignored", with(func(e *Entry) { e.Stamp.Logical++; e.Expires = now }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, "local", testutil.NewClock(testEpoch), nil)
			if changed, err := s.Merge(base); err != nil || !changed {
				t.Fatalf("first Merge = %v, %v; want true, nil", changed, err)
			}
			changed, err := s.Merge(tt.incoming)
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if changed != tt.wantWin {
				t.Fatalf("Merge changed = %v, want %v", changed, tt.wantWin)
			}
			want := base
			if tt.wantWin {
				want = tt.incoming
			}
			snap := s.Snapshot()
			if len(snap) != 1 || compareEntries(snap[0], want) != 0 {
				t.Fatalf("state = %+v, want %+v", snap, want)
			}
		})
	}
}

func TestStoreMergeReplacesExpiredLocalEntry(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "local", ft, nil)
	if _, err := s.Put(KindSession, "k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	ft.Add(2 * time.Second)
	// Older than the local entry, but the local one is dead: it must count as absent.
	old := Entry{Kind: KindSession, Key: "k", Value: []byte("peer"), Stamp: Timestamp{testEpoch.UnixNano() - 1, 0}, Node: "p"}
	if changed, err := s.Merge(old); err != nil || !changed {
		t.Fatalf("Merge over expired local = %v, %v; want true, nil", changed, err)
	}
	if got, ok := s.Get(KindSession, "k"); !ok || string(got.Value) != "peer" {
		t.Fatalf("Get = %+v, %v", got, ok)
	}
}

func TestStoreLocalWriteBeatsMergedFutureStamp(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "a", ft, nil)
	// A peer whose clock runs 30s ahead (within drift) wrote the key.
	remote := Entry{Kind: KindSession, Key: "k", Value: []byte("peer"), Node: "zzz",
		Stamp: Timestamp{testEpoch.Add(30 * time.Second).UnixNano(), 4}}
	if _, err := s.Merge(remote); err != nil {
		t.Fatal(err)
	}
	put, err := s.Put(KindSession, "k", []byte("mine"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if put.Stamp.Compare(remote.Stamp) <= 0 {
		t.Fatalf("local write stamp %s does not beat observed %s", put.Stamp, remote.Stamp)
	}
	if got, _ := s.Get(KindSession, "k"); string(got.Value) != "mine" {
		t.Fatalf("Get = %q, want the later local write", got.Value)
	}
}

func TestStoreMergeRefusals(t *testing.T) {
	now := testEpoch.UnixNano()
	good := Entry{Kind: KindHealth, Key: "be-1", Value: []byte("up"), Stamp: Timestamp{now, 0}, Node: "b"}
	with := func(f func(*Entry)) Entry { e := good; f(&e); return e }
	tests := []struct {
		name    string
		e       Entry
		wantErr error
		stat    func(StoreStats) uint64
	}{
		{"unknown kind", with(func(e *Entry) { e.Kind = 7 }), ErrUnknownKind, func(s StoreStats) uint64 { return s.Invalid }},
		{"kind zero", with(func(e *Entry) { e.Kind = 0 }), ErrUnknownKind, func(s StoreStats) uint64 { return s.Invalid }},
		{"empty key", with(func(e *Entry) { e.Key = "" }), ErrInvalidEntry, func(s StoreStats) uint64 { return s.Invalid }},
		{"value too large", with(func(e *Entry) { e.Value = make([]byte, MaxValueBytes+1) }), ErrInvalidEntry, func(s StoreStats) uint64 { return s.Invalid }},
		{"no writer", with(func(e *Entry) { e.Node = "" }), ErrInvalidEntry, func(s StoreStats) uint64 { return s.Invalid }},
		{"tombstone with value", with(func(e *Entry) { e.Deleted = true }), ErrInvalidEntry, func(s StoreStats) uint64 { return s.Invalid }},
		{"clock far ahead", with(func(e *Entry) { e.Stamp.WallNanos += int64(2 * time.Minute) }), ErrClockDrift, func(s StoreStats) uint64 { return s.Drift }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := testutil.NewClock(testEpoch)
			cfg := DefaultStoreConfig()
			cfg.NodeName = "a"
			s, err := NewStore(cfg, NewClock(ft.Now, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			changed, err := s.Merge(tt.e)
			if !errors.Is(err, tt.wantErr) || changed {
				t.Fatalf("Merge = %v, %v; want false, %v", changed, err, tt.wantErr)
			}
			if got := tt.stat(s.Stats()); got != 1 {
				t.Fatalf("refusal counted %d times, want 1 (stats %+v)", got, s.Stats())
			}
			if len(s.Snapshot()) != 0 {
				t.Fatal("refused entry was stored")
			}
			if changed, err := s.Merge(good); err != nil || !changed {
				t.Fatalf("store unusable after a refusal: %v, %v", changed, err)
			}
		})
	}
}

func TestStorePutRefusals(t *testing.T) {
	s := newTestStore(t, "a", testutil.NewClock(testEpoch), nil)
	if _, err := s.Put(Kind(0), "k", nil, 0); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Put unknown kind: %v", err)
	}
	if _, err := s.Put(KindSession, strings.Repeat("k", MaxKeyBytes+1), nil, 0); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("Put oversized key: %v", err)
	}
	if _, err := s.Delete(KindSession, ""); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("Delete empty key: %v", err)
	}
	if got := s.Stats().Invalid; got != 3 {
		t.Fatalf("Invalid = %d, want 3", got)
	}
}

func TestStoreFullRefusesNewKeys(t *testing.T) {
	now := testEpoch.UnixNano()
	s := newTestStore(t, "a", testutil.NewClock(testEpoch), func(c *StoreConfig) { c.MaxEntriesPerKind = 2 })
	for _, k := range []string{"k1", "k2"} {
		if _, err := s.Put(KindSession, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		do      func() error
		wantErr error
	}{
		{"put new key", func() error { _, err := s.Put(KindSession, "k3", nil, 0); return err }, ErrStoreFull},
		{"delete new key", func() error { _, err := s.Delete(KindSession, "k3"); return err }, ErrStoreFull},
		{"merge new key", func() error {
			_, err := s.Merge(Entry{Kind: KindSession, Key: "k3", Stamp: Timestamp{now, 0}, Node: "b"})
			return err
		}, ErrStoreFull},
		{"overwrite existing key", func() error { _, err := s.Put(KindSession, "k1", []byte("w"), 0); return err }, nil},
		{"delete existing key", func() error { _, err := s.Delete(KindSession, "k2"); return err }, nil},
		{"other kind has its own bound", func() error { _, err := s.Put(KindHealth, "k3", nil, 0); return err }, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); !errors.Is(err, st.wantErr) {
				t.Fatalf("error %v, want %v", err, st.wantErr)
			}
		})
	}
	if got := s.Stats().Full; got != 3 {
		t.Fatalf("Full = %d, want 3", got)
	}
	if s.Len(KindSession) != 2 {
		t.Fatalf("Len = %d, want 2", s.Len(KindSession))
	}
}

func TestStoreOnChange(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(t, "a", ft, nil)
	var mu sync.Mutex
	var got []string
	s.OnChange(func(e Entry) {
		// Reading the store from the hook would deadlock if hooks ran under the lock.
		_, live := s.Get(e.Kind, e.Key)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s/%s/%s/%v", e.Kind, e.Key, e.Value, live))
		mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.Put(KindSession, "s1", []byte("b1"), 0); err != nil {
			t.Error(err)
		}
		if _, err := s.Delete(KindSession, "s1"); err != nil {
			t.Error(err)
		}
		now := testEpoch.UnixNano()
		win := Entry{Kind: KindHealth, Key: "be", Value: []byte("down"), Stamp: Timestamp{now + 10, 0}, Node: "b"}
		lose := Entry{Kind: KindHealth, Key: "be", Value: []byte("up"), Stamp: Timestamp{now + 5, 0}, Node: "c"}
		for _, e := range []Entry{win, lose, win} {
			if _, err := s.Merge(e); err != nil {
				t.Error(err)
			}
		}
		ft.Add(time.Hour + time.Second)
		s.Expire(ft.Now())
	}()
	testutil.Receive(t, done, "the store calls to return (they cannot if a hook runs under the store lock)")
	want := "[session/s1/b1/true session/s1//false health/be/down/true]"
	if fmt.Sprint(got) != want {
		t.Fatalf("hook saw %v, want %s", got, want)
	}
}

func TestStoreRange(t *testing.T) {
	s := newTestStore(t, "a", testutil.NewClock(testEpoch), nil)
	for _, k := range []string{"c", "a", "d", "b"} {
		if _, err := s.Put(KindSession, k, []byte(k), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Delete(KindSession, "d"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		kind  Kind
		limit int
		want  string
	}{
		{"all live in key order", KindSession, 10, "[a b c]"},
		{"stops when fn returns false", KindSession, 2, "[a b]"},
		{"empty kind", KindDrain, 10, "[]"},
		{"unknown kind", Kind(200), 10, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			s.Range(tt.kind, func(e Entry) bool {
				keys = append(keys, e.Key)
				// Calling back into the store must not deadlock.
				s.Len(e.Kind)
				return len(keys) < tt.limit
			})
			if fmt.Sprint(keys) != tt.want {
				t.Fatalf("Range = %v, want %s", keys, tt.want)
			}
		})
	}
}

func TestStoreStateExchange(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	a := newTestStore(t, "a", ft, nil)
	b := newTestStore(t, "b", ft, nil)
	for i := range 20 {
		if _, err := a.Put(KindSession, fmt.Sprintf("s%02d", i), []byte("backend"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	del, err := a.Delete(KindDrain, "node-x")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("full state", func(t *testing.T) {
		if err := b.MergeFull(a.FullState(64 << 10)); err != nil {
			t.Fatal(err)
		}
		if !equalEntries(a.Snapshot(), b.Snapshot()) {
			t.Fatalf("b after push/pull:\n%v\nwant\n%v", b.Snapshot(), a.Snapshot())
		}
	})
	t.Run("truncated full state keeps the important kinds and is counted", func(t *testing.T) {
		c := newTestStore(t, "c", ft, nil)
		state := a.FullState(300)
		if len(state) > 300 {
			t.Fatalf("state is %d bytes, cap 300", len(state))
		}
		if a.Stats().Truncated != 1 {
			t.Fatalf("Truncated = %d, want 1", a.Stats().Truncated)
		}
		if err := c.MergeFull(state); err != nil {
			t.Fatal(err)
		}
		if c.Len(KindDrain) != 1 || c.Len(KindSession) == 0 || c.Len(KindSession) == 20 {
			t.Fatalf("truncated merge: drain %d, session %d", c.Len(KindDrain), c.Len(KindSession))
		}
	})
	t.Run("delta", func(t *testing.T) {
		put, err := a.Put(KindSession, "s00", []byte("moved"), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := AppendEntry(nil, put)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.MergeDelta(msg); err != nil {
			t.Fatal(err)
		}
		if got, _ := b.Get(KindSession, "s00"); string(got.Value) != "moved" {
			t.Fatalf("delta not applied: %q", got.Value)
		}
		if err := b.MergeDelta(append(msg, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("delta with trailing byte: %v, want ErrMalformed", err)
		}
		if err := b.MergeDelta(msg[:len(msg)-1]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated delta: %v, want ErrMalformed", err)
		}
	})
	t.Run("refusals inside a full state are reported", func(t *testing.T) {
		full := newTestStore(t, "f", ft, func(c *StoreConfig) { c.MaxEntriesPerKind = 5 })
		err := full.MergeFull(a.FullState(64 << 10))
		if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "15 of 21 entries refused") {
			t.Fatalf("MergeFull into a small store: %v", err)
		}
		if err := full.MergeFull([]byte{2, 0, 0, 0, 0}); !errors.Is(err, ErrVersion) {
			t.Fatalf("MergeFull wrong version: %v", err)
		}
	})
	if !del.Deleted {
		t.Fatalf("Delete returned %+v", del)
	}
}

func TestStoreConcurrentUse(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	a := newTestStore(t, "a", ft, nil)
	b := newTestStore(t, "b", ft, nil)
	a.OnChange(func(e Entry) {
		if msg, err := AppendEntry(nil, e); err == nil {
			if err := b.MergeDelta(msg); err != nil {
				t.Error(err)
			}
		}
	})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("k%d", (i*7+w)%25)
				var err error
				if i%5 == 0 {
					_, err = a.Delete(KindSession, key)
				} else {
					_, err = a.Put(KindSession, key, []byte{byte(w), byte(i)}, time.Hour)
				}
				if err != nil {
					t.Error(err)
				}
				a.Get(KindSession, key)
				a.Range(KindSession, func(Entry) bool { return true })
				if i%50 == 0 {
					a.Expire(ft.Now())
				}
			}
		}()
	}
	wg.Wait()
	if !equalEntries(a.Snapshot(), b.Snapshot()) {
		t.Fatal("replica fed every change by OnChange diverged")
	}
}

// equalEntries compares two snapshots field by field.
func equalEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		// Field by field rather than through compareEntries, so a broken order cannot hide itself.
		x, y := a[i], b[i]
		if x.Kind != y.Kind || x.Key != y.Key || x.Stamp != y.Stamp || x.Node != y.Node ||
			x.Deleted != y.Deleted || x.Expires != y.Expires || !bytes.Equal(x.Value, y.Value) {
			return false
		}
	}
	return true
}

// The node replicates a Store: keep the two contracts in step.
var _ State = (*Store)(nil)
