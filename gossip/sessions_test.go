package gossip

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
)

// sessionStore mirrors proxy.SessionStore, which gossip must not import: Sessions has to keep
// that method set for cmd to hand it to the proxy.
type sessionStore interface {
	Get(session string) (backendID string, expires time.Time, ok bool)
	Put(session, backendID string, expires time.Time)
}

var _ sessionStore = (*Sessions)(nil)
var _ Broadcaster = (*Node)(nil)

// deliverTo is a Broadcaster that hands every message to peer stores at once, as a cluster would
// after gossip, and records what it sent. err, when set, refuses the message instead.
type deliverTo struct {
	t     testing.TB
	peers []*Store
	err   error

	mu   sync.Mutex
	sent int
}

func (d *deliverTo) Broadcast(msg []byte) error {
	if d.err != nil {
		return d.err
	}
	d.mu.Lock()
	d.sent++
	d.mu.Unlock()
	for _, p := range d.peers {
		if err := p.MergeDelta(msg); err != nil {
			d.t.Errorf("peer merge: %v", err)
		}
	}
	return nil
}

func (d *deliverTo) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent
}

// sessionPair returns Sessions on store "a" whose broadcasts reach store "b", and Sessions on b
// (which broadcasts nowhere), both reading ft.
func sessionPair(t *testing.T, ft *testutil.Clock, mutate func(*StoreConfig)) (a, b *Sessions, bc *deliverTo, reg *prometheus.Registry) {
	t.Helper()
	sa := newTestStore(t, "a", ft, mutate)
	sb := newTestStore(t, "b", ft, mutate)
	bc = &deliverTo{t: t, peers: []*Store{sb}}
	reg = prometheus.NewRegistry()
	a, err := NewSessions(sa, bc, nil, reg)
	if err != nil {
		t.Fatalf("NewSessions a: %v", err)
	}
	b, err = NewSessions(sb, &deliverTo{t: t}, nil, nil)
	if err != nil {
		t.Fatalf("NewSessions b: %v", err)
	}
	return a, b, bc, reg
}

func TestSessionsPutReplicatesToPeer(t *testing.T) {
	tests := []struct {
		name    string
		session string
	}{
		{"short id", "pool|abc"},
		{"id at key limit", strings.Repeat("k", MaxKeyBytes)},
		{"id over key limit is hashed", strings.Repeat("l", MaxKeyBytes+1)},
		{"very long id", "pool|" + strings.Repeat("x", 4000)},
		{"id with digest prefix", hashedKeyPrefix + "0123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := testutil.NewClock(testEpoch)
			a, b, _, _ := sessionPair(t, ft, nil)
			exp := testEpoch.Add(30 * time.Minute)
			a.Put(tt.session, "backend-1", exp)
			for name, s := range map[string]*Sessions{"writer": a, "peer": b} {
				id, gotExp, ok := s.Get(tt.session)
				if !ok || id != "backend-1" || !gotExp.Equal(exp) {
					t.Errorf("%s: Get = %q, %v, %v; want backend-1, %v, true", name, id, gotExp, ok, exp)
				}
			}

			ft.Add(time.Second)
			a.Put(tt.session, "backend-2", exp.Add(time.Minute)) // re-pin: the later write wins
			if id, gotExp, ok := b.Get(tt.session); !ok || id != "backend-2" || !gotExp.Equal(exp.Add(time.Minute)) {
				t.Errorf("peer after re-pin: Get = %q, %v, %v; want backend-2", id, gotExp, ok)
			}
		})
	}
}

func TestSessionsGetUnknown(t *testing.T) {
	a, _, _, _ := sessionPair(t, testutil.NewClock(testEpoch), nil)
	a.Put("known", "backend-1", testEpoch.Add(time.Minute))
	if id, exp, ok := a.Get("unknown"); ok || id != "" || !exp.IsZero() {
		t.Errorf("Get(unknown) = %q, %v, %v; want zero values", id, exp, ok)
	}
}

func TestSessionsExpiryHonoured(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	a, b, _, _ := sessionPair(t, ft, nil)
	a.Put("s", "backend-1", testEpoch.Add(time.Minute))

	ft.Add(59 * time.Second)
	for name, s := range map[string]*Sessions{"writer": a, "peer": b} {
		if _, _, ok := s.Get("s"); !ok {
			t.Errorf("%s: pin gone before it expired", name)
		}
	}
	ft.Add(time.Second)
	for name, s := range map[string]*Sessions{"writer": a, "peer": b} {
		if id, _, ok := s.Get("s"); ok {
			t.Errorf("%s: expired pin still returned: %q", name, id)
		}
	}
}

// TestSessionsByBackend: pins are counted by backend on the writer and on the peer alike,
// a re-pin moves its count, and an expired pin no longer counts.
func TestSessionsByBackend(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	a, b, _, _ := sessionPair(t, ft, nil)
	a.Put("s1", "backend-1", testEpoch.Add(time.Minute))
	a.Put("s2", "backend-1", testEpoch.Add(time.Hour))
	a.Put("s3", "backend-2", testEpoch.Add(time.Hour))
	ft.Add(time.Second)
	a.Put("s3", "backend-1", testEpoch.Add(time.Hour))
	for name, s := range map[string]*Sessions{"writer": a, "peer": b} {
		if got := s.ByBackend(); len(got) != 1 || got["backend-1"] != 3 {
			t.Errorf("%s: ByBackend = %v, want backend-1: 3", name, got)
		}
	}
	ft.Add(time.Minute)
	if got := b.ByBackend(); len(got) != 1 || got["backend-1"] != 2 {
		t.Errorf("peer after s1 expired: ByBackend = %v, want backend-1: 2", got)
	}
}

// TestSessionsLongKeysHashedAlike: a long ID is stored under a bounded key that both nodes
// derive, distinct IDs sharing a long prefix stay apart, and an ID that looks like a digest
// cannot reach the pin of the long ID it would collide with.
func TestSessionsLongKeysHashedAlike(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	a, b, _, _ := sessionPair(t, ft, nil)
	long1 := strings.Repeat("p", 600) + "1"
	long2 := strings.Repeat("p", 600) + "2"
	exp := testEpoch.Add(time.Hour)
	a.Put(long1, "backend-1", exp)
	a.Put(long2, "backend-2", exp)

	for name, s := range map[string]*Sessions{"writer": a, "peer": b} {
		for id, want := range map[string]string{long1: "backend-1", long2: "backend-2"} {
			if got, _, ok := s.Get(id); !ok || got != want {
				t.Errorf("%s: Get(long id ending %q) = %q, %v; want %q", name, id[len(id)-1:], got, ok, want)
			}
		}
	}

	var keys []string
	b.store.Range(KindSession, func(e Entry) bool {
		keys = append(keys, e.Key)
		return true
	})
	if len(keys) != 2 {
		t.Fatalf("peer holds %d session keys, want 2: %q", len(keys), keys)
	}
	for _, k := range keys {
		if len(k) > MaxKeyBytes || !strings.HasPrefix(k, hashedKeyPrefix) {
			t.Errorf("stored key %q: want a digest of at most %d bytes", k, MaxKeyBytes)
		}
		// The raw digest used as a session ID is itself hashed, so it misses the long ID's pin.
		if id, _, ok := b.Get(k); ok {
			t.Errorf("Get(digest %q) found %q: digest and raw key spaces overlap", k, id)
		}
	}
}

func TestSessionsErrorsCounted(t *testing.T) {
	refused := errors.New("queue refused")
	tests := []struct {
		name      string
		mutate    func(*StoreConfig)
		bcErr     error
		session   string
		backend   string
		expiresIn time.Duration
		reason    string
		localPin  bool // the pin is still served by the writer
	}{
		{"store full", func(c *StoreConfig) { c.MaxEntriesPerKind = 1 }, nil, "second", "backend-1", time.Minute, sessionErrFull, false},
		{"empty session id", nil, nil, "", "backend-1", time.Minute, sessionErrInvalid, false},
		{"backend id too long", nil, nil, "s", strings.Repeat("b", MaxValueBytes+1), time.Minute, sessionErrInvalid, false},
		{"expiry in the past", nil, nil, "s", "backend-1", -time.Second, sessionErrExpired, false},
		{"expiry now", nil, nil, "s", "backend-1", 0, sessionErrExpired, false},
		{"broadcast refused", nil, refused, "s", "backend-1", time.Minute, sessionErrBroadcast, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := testutil.NewClock(testEpoch)
			a, b, bc, reg := sessionPair(t, ft, tt.mutate)
			if tt.reason == sessionErrFull {
				a.Put("first", "backend-0", testEpoch.Add(time.Minute)) // fills the table
			}
			bc.err = tt.bcErr
			sentBefore := bc.count()

			a.Put(tt.session, tt.backend, testEpoch.Add(tt.expiresIn))

			for _, r := range []string{sessionErrFull, sessionErrInvalid, sessionErrExpired, sessionErrBroadcast} {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				if got := metricValue(t, reg, "veloflux_gossip_session_errors_total", map[string]string{"reason": r}); got != want {
					t.Errorf("errors{reason=%q} = %v, want %v", r, got, want)
				}
			}
			if got := bc.count(); got != sentBefore {
				t.Errorf("broadcast %d messages for a failed pin", got-sentBefore)
			}
			if _, _, ok := b.Get(tt.session); ok {
				t.Error("peer received a pin that failed")
			}
			if _, _, ok := a.Get(tt.session); ok != tt.localPin {
				t.Errorf("writer Get ok = %v, want %v", ok, tt.localPin)
			}
		})
	}
}

func TestNewSessionsRefuses(t *testing.T) {
	st := newTestStore(t, "a", testutil.NewClock(testEpoch), nil)
	reg := prometheus.NewRegistry()
	if _, err := NewSessions(st, &deliverTo{t: t}, nil, reg); err != nil {
		t.Fatalf("first NewSessions: %v", err)
	}
	tests := []struct {
		name  string
		store *Store
		b     Broadcaster
		reg   prometheus.Registerer
	}{
		{"nil store", nil, &deliverTo{t: t}, nil},
		{"nil broadcaster", st, nil, nil},
		{"metrics already registered", st, &deliverTo{t: t}, reg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := NewSessions(tt.store, tt.b, nil, tt.reg); err == nil || s != nil {
				t.Errorf("NewSessions = %v, %v; want an error", s, err)
			}
		})
	}
}

func TestRegisterStoreMetrics(t *testing.T) {
	ft := testutil.NewClock(testEpoch)
	st := newTestStore(t, "a", ft, func(c *StoreConfig) { c.MaxEntriesPerKind = 2 })
	reg := prometheus.NewRegistry()
	if err := RegisterStoreMetrics(st, reg); err != nil {
		t.Fatalf("RegisterStoreMetrics: %v", err)
	}
	mustPut := func(kind Kind, key string) {
		t.Helper()
		if _, err := st.Put(kind, key, []byte("v"), time.Minute); err != nil {
			t.Fatalf("Put %s %s: %v", kind, key, err)
		}
	}
	mustPut(KindSession, "s1")
	mustPut(KindSession, "s2")
	mustPut(KindHealth, "h1")
	if _, err := st.Delete(KindHealth, "h2"); err != nil { // a tombstone counts towards the cap
		t.Fatal(err)
	}
	if _, err := st.Put(KindSession, "s3", nil, time.Minute); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("third session: err = %v, want ErrStoreFull", err)
	}
	if _, err := st.Put(KindDrain, "", nil, 0); err == nil {
		t.Fatal("empty key accepted")
	}
	future := Entry{Kind: KindDrain, Key: "d", Node: "b", Stamp: Timestamp{WallNanos: testEpoch.Add(48 * time.Hour).UnixNano()}}
	if _, err := st.Merge(future); !errors.Is(err, ErrClockDrift) {
		t.Fatalf("merge from the future: err = %v, want ErrClockDrift", err)
	}
	st.FullState(stateHeaderBytes + 10) // too small for one entry

	wantEntries := map[string]float64{"session": 2, "health": 2, "drain": 0}
	for kind, want := range wantEntries {
		t.Run("entries "+kind, func(t *testing.T) {
			if got := metricValue(t, reg, "veloflux_gossip_state_entries", map[string]string{"kind": kind}); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	for _, reason := range []string{"full", "invalid", "drift", "truncated"} {
		t.Run("refusals "+reason, func(t *testing.T) {
			if got := metricValue(t, reg, "veloflux_gossip_state_refusals_total", map[string]string{"reason": reason}); got != 1 {
				t.Errorf("got %v, want 1", got)
			}
		})
	}

	t.Run("registration", func(t *testing.T) {
		if err := RegisterStoreMetrics(st, reg); err == nil {
			t.Error("second registration on one registry succeeded")
		}
		if err := RegisterStoreMetrics(nil, prometheus.NewRegistry()); err == nil {
			t.Error("nil store accepted")
		}
		if err := RegisterStoreMetrics(st, nil); err != nil {
			t.Errorf("nil registerer: %v", err)
		}
	})
}

// TestSessionsOverMemberlist: a pin put through Sessions on a real node reaches the Sessions of
// the other members by gossip.
func TestSessionsOverMemberlist(t *testing.T) {
	a := startStoreNode(t, "a")
	b := startStoreNode(t, "b", a.LocalAddr())
	c := startStoreNode(t, "c", a.LocalAddr())
	testutil.Eventually(t, "three members", seesMembers(a.Node, "a", "b", "c"))

	sessions := make(map[string]*Sessions)
	for _, n := range []storeNode{a, b, c} {
		s, err := NewSessions(n.store, n.Node, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatalf("NewSessions %s: %v", n.cfg.Name, err)
		}
		sessions[n.cfg.Name] = s
	}
	exp := time.Now().Add(time.Hour).Round(0)
	long := "pool|" + strings.Repeat("z", 2*MaxKeyBytes)
	sessions["a"].Put("pool|sess-1", "backend-1", exp)
	sessions["a"].Put(long, "backend-2", exp)

	for _, name := range []string{"b", "c"} {
		testutil.Eventually(t, "pins on "+name, func() bool {
			id1, exp1, ok1 := sessions[name].Get("pool|sess-1")
			id2, _, ok2 := sessions[name].Get(long)
			// Real clocks: the TTL is measured a moment before the store adds it back.
			return ok1 && ok2 && id1 == "backend-1" && id2 == "backend-2" &&
				!exp1.Before(exp) && exp1.Sub(exp) < time.Second
		})
	}
}

func FuzzSessionKey(f *testing.F) {
	f.Add("pool|abc")
	f.Add(hashedKeyPrefix + "x")
	f.Add(strings.Repeat("a", MaxKeyBytes+1))
	f.Fuzz(func(t *testing.T, session string) {
		k := sessionKey(session)
		if len(k) > MaxKeyBytes {
			t.Fatalf("key of %d bytes exceeds MaxKeyBytes", len(k))
		}
		if k != sessionKey(session) {
			t.Fatal("sessionKey is not deterministic")
		}
		hashed := strings.HasPrefix(k, hashedKeyPrefix)
		if hashed == (k == session) {
			t.Fatalf("session %q -> %q: a key is either the ID itself or a digest", session, k)
		}
		if hashed && sessionKey(k) == k {
			t.Fatalf("digest %q maps to itself: raw IDs could reach hashed pins", k)
		}
	})
}

func BenchmarkSessionsGet(b *testing.B) {
	st := newTestStore(b, "a", testutil.NewClock(testEpoch), nil)
	s, err := NewSessions(st, &deliverTo{t: b}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.Put("pool|sess", "backend-1", testEpoch.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := s.Get("pool|sess"); !ok {
			b.Fatal("pin missing")
		}
	}
}

func BenchmarkSessionsPut(b *testing.B) {
	st := newTestStore(b, "a", testutil.NewClock(testEpoch), nil)
	s, err := NewSessions(st, &deliverTo{t: b}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Put("pool|sess", "backend-1", testEpoch.Add(time.Hour))
	}
}

// BenchmarkSessionReplication measures how fast new pins written through one node's Sessions
// become readable on a second real memberlist node over loopback: the sustained rate at which a
// cluster can share new sessions (memberlist's gossip rate bounds it, not CPU).
func BenchmarkSessionReplication(b *testing.B) {
	const room = 200000
	if b.N > room {
		b.Skipf("the stores hold %d pins: run with -benchtime %dx or less", room, room)
	}
	a := startStoreNodeCap(b, "a", room)
	peer := startStoreNodeCap(b, "b", room, a.LocalAddr())
	testutil.Eventually(b, "b joins", seesMembers(a.Node, "a", "b"))
	sessions, err := NewSessions(a.store, a.Node, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	expires := time.Now().Add(time.Hour)
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		sessions.Put(fmt.Sprintf("bench-%d", i), "backend-x", expires)
	}
	for peer.store.Len(KindSession) < b.N {
		if time.Since(start) > 40*time.Second {
			b.Fatalf("%d of %d pins replicated after 40s", peer.store.Len(KindSession), b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pins/s")
}

// TestSessionMoveBytes measures what one stored move costs in memory, written locally through
// Sessions and received as a broadcast, with realistic keys ("<pool>|<22-character session>")
// and backend IDs. The figure is what docs/clustering.md quotes per moved session; the test
// fails above 256 bytes, which would put a table of a million moves beyond a quarter GiB.
func TestSessionMoveBytes(t *testing.T) {
	const n = 100000
	ft := testutil.NewClock(testEpoch)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	session := func(i int) string { return fmt.Sprintf("web|%022d", i) }
	expires := ft.Now().Add(time.Hour)

	local := newTestStore(t, "node-a", ft, nil)
	s, err := NewSessions(local, discard{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	backends := []string{"backend-0", "backend-1", "backend-2", "backend-3"}
	before := heap()
	for i := range n {
		s.Put(session(i), backends[i%len(backends)], expires)
	}
	perLocal := float64(heap()-before) / n
	if local.Len(KindSession) != n {
		t.Fatalf("stored %d, want %d", local.Len(KindSession), n)
	}
	var msgs [][]byte
	for _, e := range local.Snapshot() {
		m, err := AppendEntry(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}

	peer := newTestStore(t, "node-b", ft, nil)
	before = heap()
	for _, m := range msgs {
		if err := peer.MergeDelta(m); err != nil {
			t.Fatal(err)
		}
	}
	perReceived := float64(heap()-before) / n
	runtime.KeepAlive(msgs)
	if peer.Len(KindSession) != n {
		t.Fatalf("peer holds %d, want %d", peer.Len(KindSession), n)
	}
	t.Logf("one move costs %.0f bytes stored locally, %.0f bytes received (%d moves, %d-byte broadcasts)", perLocal, perReceived, n, len(msgs[0]))
	for what, b := range map[string]float64{"stored locally": perLocal, "received": perReceived} {
		if b > 256 {
			t.Errorf("a move %s costs %.0f bytes, above 256", what, b)
		}
	}
}

// discard is a Broadcaster that sends nothing.
type discard struct{}

func (discard) Broadcast([]byte) error { return nil }
