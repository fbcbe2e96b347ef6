package gossip

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
)

// storeNode is a Store replicated by a real memberlist Node: local writes are broadcast.
type storeNode struct {
	*Node
	store *Store
	// stop stops the node and checks both Runs returned nil; the test's cleanup calls it too.
	stop func()
}

// stopTogether makes the test's cleanup stop the nodes all at once, before their own
// cleanups would stop them one after the other: each stop waits for its leave message to go
// out, which takes a few gossip rounds (seconds on a busy machine) and, one node at a time,
// added up to a minute for a 20-node cluster. Call it after the nodes started.
func stopTogether(t testing.TB, nodes ...storeNode) {
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.stop)
		}
		wg.Wait()
	})
}

func startStoreNode(t testing.TB, name string, seeds ...string) storeNode {
	t.Helper()
	return startStoreNodeCap(t, name, 1000, seeds...)
}

// startStoreNodeCap is startStoreNode with room for perKind entries of each kind.
func startStoreNodeCap(t testing.TB, name string, perKind int, seeds ...string) storeNode {
	t.Helper()
	return startStoreNodeWith(t, name, perKind, nil, seeds...)
}

// startStoreNodeWith is startStoreNodeCap with mutate applied to the node's Config.
func startStoreNodeWith(t testing.TB, name string, perKind int, mutate func(*Config), seeds ...string) storeNode {
	t.Helper()
	st, err := NewStore(StoreConfig{NodeName: name, MaxEntriesPerKind: perKind, TombstoneTTL: time.Hour, ExpireInterval: time.Second}, NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(name, [][]byte{key(7, 32)}, seeds...)
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := New(cfg, st, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	Rebroadcast(st, n, name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- n.Run(ctx) }()
	go func() { done <- st.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Cleanup(stop)
	select {
	case <-n.Ready():
	case <-time.After(testutil.Timeout()):
		t.Fatalf("%s did not bind", name)
	}
	return storeNode{Node: n, store: st, stop: stop}
}

func (s storeNode) put(t *testing.T, kind Kind, key, value string) {
	t.Helper()
	e, err := s.store.Put(kind, key, []byte(value), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := AppendEntry(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Broadcast(msg); err != nil {
		t.Fatal(err)
	}
}

func (s storeNode) value(kind Kind, key string) string {
	e, ok := s.store.Get(kind, key)
	if !ok {
		return ""
	}
	return string(e.Value)
}

// TestStoreReplicatesOverMemberlist: a session pinned on A is seen by B and C, a later write
// on C wins everywhere, and a node that joins afterwards gets the state by push/pull.
func TestStoreReplicatesOverMemberlist(t *testing.T) {
	a := startStoreNode(t, "a")
	b := startStoreNode(t, "b", a.LocalAddr())
	c := startStoreNode(t, "c", a.LocalAddr())
	testutil.Eventually(t, "three members", seesMembers(a.Node, "a", "b", "c"))

	a.put(t, KindSession, "sess-1", "backend-1")
	testutil.Eventually(t, "session on b and c", func() bool {
		return b.value(KindSession, "sess-1") == "backend-1" && c.value(KindSession, "sess-1") == "backend-1"
	})

	c.put(t, KindSession, "sess-1", "backend-2") // re-pin: newer stamp wins on every node
	testutil.Eventually(t, "re-pin everywhere", func() bool {
		return a.value(KindSession, "sess-1") == "backend-2" && b.value(KindSession, "sess-1") == "backend-2"
	})

	d := startStoreNode(t, "d", b.LocalAddr())
	testutil.Eventually(t, "late joiner has the state", func() bool { return d.value(KindSession, "sess-1") == "backend-2" })
}
