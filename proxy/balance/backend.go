package balance

import "sync/atomic"

// MaxWeight is the largest weight a Backend keeps; larger values are clamped. The bound keeps
// the integer arithmetic of the policies (weight sums, active*weight products) far from
// overflow whatever a config file or Consul tag says.
const MaxWeight = 1_000_000

// Backend is the per-backend state that policies read. The zero value is not ready: call Init
// once before the Backend is shared.
//
// A Backend must not be copied after first use: the proxy embeds it by value in its own
// long-lived per-backend struct, and a copy would split the in-flight count and the
// round-robin position in two. go vet's copylocks check reports copies.
type Backend struct {
	_ noCopy

	// weight is atomic so Consul can change it while requests are being balanced.
	weight atomic.Int64
	// active counts in-flight requests; least_conn reads it, the proxy drives it.
	active atomic.Int64
	// current is the smooth weighted round robin position. Policies serialise their own
	// updates with a mutex; it is still atomic because the proxy may briefly run an old and a
	// new routing table (each with its own Policy) over the same Backend during a swap, and
	// atomic adds keep that overlap free of data races and lost updates.
	current atomic.Int64
	// hash is HashString(id); written by Init before the Backend is published, read-only after.
	hash uint64
}

// Init sets the backend's identity and weight. Weights below 1 count as 1 and weights above
// MaxWeight as MaxWeight. Init is not safe to call concurrently with Pick; call it once, before
// the Backend is handed to the proxy. It leaves the in-flight count alone.
func (b *Backend) Init(id string, weight int) {
	b.hash = HashString(id)
	b.SetWeight(weight)
}

// SetWeight changes the weight live; it is safe to call concurrently with Pick. Weights are
// clamped to [1, MaxWeight] as in Init.
func (b *Backend) SetWeight(w int) {
	b.weight.Store(int64(clampWeight(w)))
}

// Weight returns the current weight, always in [1, MaxWeight].
func (b *Backend) Weight() int { return int(b.weight64()) }

// Active returns the number of in-flight requests: Acquire calls not yet matched by Release.
func (b *Backend) Active() int64 { return b.active.Load() }

// Acquire records one more in-flight request. Call it once the backend has been chosen, and
// call Release exactly once when the request is done.
func (b *Backend) Acquire() { b.active.Add(1) }

// Release records the end of an in-flight request. A Release without a matching Acquire is a
// bug in the caller that would make least_conn prefer this backend for ever, so Release
// undoes the decrement and panics, like sync.WaitGroup does on a negative counter.
func (b *Backend) Release() {
	if b.active.Add(-1) < 0 {
		b.active.Add(1)
		panic("balance: Backend.Release without matching Acquire")
	}
}

// Hash returns HashString of the backend's ID, as set by Init.
func (b *Backend) Hash() uint64 { return b.hash }

// weight64 reads the weight for the policies' int64 arithmetic. A Backend that missed Init
// reads as weight 1 rather than 0, so it cannot zero a weight sum and divide by it.
func (b *Backend) weight64() int64 {
	return max(b.weight.Load(), 1)
}

func clampWeight(w int) int {
	return min(max(w, 1), MaxWeight)
}

// noCopy makes go vet's copylocks check report copies of the struct that embeds it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
