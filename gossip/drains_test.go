package gossip

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestDrainsReplicateAcrossNodes(t *testing.T) {
	a := startStoreNode(t, "a")
	b := startStoreNode(t, "b", a.LocalAddr())
	testutil.Eventually(t, "b joins", seesMembers(a.Node, "a", "b"))
	da, db := NewDrains(a.store, a.Node), NewDrains(b.store, b.Node)

	if err := da.SetBackend("web-1", true); err != nil {
		t.Fatal(err)
	}
	if !da.Drained("web-1") {
		t.Error("drain not visible at once on the node that wrote it")
	}
	testutil.Eventually(t, "b sees web-1 drained", func() bool { return db.Drained("web-1") })
	if db.Drained("web-2") {
		t.Error("web-2 drained without anyone draining it")
	}
	if got := db.Backends(); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("b: Backends = %v", got)
	}
	if err := db.SetBackend("web-1", false); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "a sees web-1 undrained", func() bool { return !da.Drained("web-1") })
	if got := da.Backends(); len(got) != 0 {
		t.Errorf("a: Backends after undrain = %v", got)
	}
}

func localStore(t testing.TB) *Store {
	t.Helper()
	cfg := DefaultStoreConfig()
	cfg.NodeName = "solo"
	st, err := NewStore(cfg, NewClock(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDrainsLocalAndInvalid(t *testing.T) {
	st := localStore(t)
	d := NewDrains(st, nil)
	if err := d.SetBackend("x", true); err != nil || !d.Drained("x") {
		t.Fatalf("local drain: err %v, drained %t", err, d.Drained("x"))
	}
	for _, id := range []string{"", strings.Repeat("x", MaxKeyBytes)} {
		if err := d.SetBackend(id, true); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("SetBackend(%d bytes) = %v, want ErrInvalidEntry", len(id), err)
		}
	}
	// A store that already holds drains (a node that received them by push/pull before the
	// Drains was made) shows them from the start.
	if again := NewDrains(st, nil); !again.Drained("x") {
		t.Error("new Drains over a store holding a drain does not show it")
	}
}

func BenchmarkDrained(b *testing.B) {
	d := NewDrains(localStore(b), nil)
	for _, id := range []string{"a", "b", "c"} {
		_ = d.SetBackend(id, true)
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Drained("b")
	}
}
