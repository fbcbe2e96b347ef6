package gossip

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// drainKeyPrefix namespaces backend drains in KindDrain, leaving room for other drain targets.
const drainKeyPrefix = "backend/"

// Drains is the replicated set of drained backends: a backend drained through any node is
// drained on every node, until it is undrained through any node (last writer wins, as for every
// entry). A drain has no expiry; an undrain is a tombstone. Drained reads an immutable snapshot,
// so the request path takes no lock.
type Drains struct {
	store *Store
	b     Broadcaster

	mu   sync.Mutex // orders rebuilds, so the last snapshot stored reflects the latest state
	snap atomic.Pointer[map[string]bool]
}

// NewDrains returns the drain set kept in store and announced through b. b nil keeps drains on
// this node only, for a node that runs without a cluster.
func NewDrains(store *Store, b Broadcaster) *Drains {
	d := &Drains{store: store, b: b}
	d.snap.Store(&map[string]bool{})
	store.OnChange(func(e Entry) {
		if e.Kind == KindDrain {
			d.rebuild()
		}
	})
	d.rebuild()
	return d
}

// SetBackend drains (drained true) or undrains backend id on every node.
func (d *Drains) SetBackend(id string, drained bool) error {
	if id == "" || len(drainKeyPrefix)+len(id) > MaxKeyBytes {
		return fmt.Errorf("%w: backend ID must be 1..%d bytes", ErrInvalidEntry, MaxKeyBytes-len(drainKeyPrefix))
	}
	var (
		e   Entry
		err error
	)
	if drained {
		e, err = d.store.Put(KindDrain, drainKeyPrefix+id, []byte{1}, 0)
	} else {
		e, err = d.store.Delete(KindDrain, drainKeyPrefix+id)
	}
	if err != nil {
		return err
	}
	if d.b == nil {
		return nil
	}
	msg, err := AppendEntry(nil, e)
	if err != nil {
		return err
	}
	// A refused broadcast is counted by the node; push/pull carries the entry later.
	_ = d.b.Broadcast(msg)
	return nil
}

// Drained reports whether backend id is drained. It takes no lock and does not allocate.
func (d *Drains) Drained(id string) bool { return (*d.snap.Load())[id] }

// Backends lists the drained backends in order.
func (d *Drains) Backends() []string {
	var out []string
	d.store.Range(KindDrain, func(e Entry) bool {
		if id, ok := strings.CutPrefix(e.Key, drainKeyPrefix); ok {
			out = append(out, id)
		}
		return true
	})
	return out
}

func (d *Drains) rebuild() {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]bool)
	for _, id := range d.Backends() {
		m[id] = true
	}
	d.snap.Store(&m)
}
