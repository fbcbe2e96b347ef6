// Package gcfloor keeps Go's garbage collector from starting a cycle before the heap has
// reached a floor, while the live heap is small.
//
// With GOGC at 100 the collector runs each time the heap has doubled since the last cycle's
// live heap. A proxy's live heap is small (a few MB: tables, pools, metrics) and every request
// allocates a little, so at full load it would run a cycle every thousand requests or so, each
// marking the whole live heap, the goroutine stacks and the globals: about a tenth of the
// instructions of a proxied request. Raising GOGC for good would multiply the memory of a
// process whose live heap is large (many idle connections) by as much. A floor does neither:
// after each cycle the GOGC percentage is set so that the next cycle starts no earlier than at
// the floor, and goes back to its configured value once the live heap passes half the floor.
// A memory limit (GOMEMLIMIT) still applies on top, and GOGC=off is left alone.
package gcfloor

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// heapMinimum is the Go runtime's own floor at GOGC=100 (defaultHeapMinimum), which it scales
// with GOGC: a percentage above floor/heapMinimum × 100 would put the goal above the floor.
const heapMinimum = 4 << 20

// Floor adjusts GOGC after every collection.
type Floor struct {
	bytes  uint64
	cycles chan struct{}
	sample []metrics.Sample
}

// New returns a Floor of the given size in bytes; 0 or less does nothing.
func New(bytes int64) *Floor {
	return &Floor{
		bytes:  uint64(max(bytes, 0)),
		cycles: make(chan struct{}, 1),
		sample: []metrics.Sample{
			{Name: "/gc/gogc:percent"},
			{Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"},
			{Name: "/gc/scan/globals:bytes"},
		},
	}
}

// Run keeps the floor until ctx ends, then gives GOGC back its value from before. Only one
// Floor should run in a process at a time: GOGC is the process's.
func (f *Floor) Run(ctx context.Context) error {
	metrics.Read(f.sample[:1])
	// The metric is the runtime's int32 percentage as a uint64: GOGC=off reads as -1.
	base := int(int64(f.sample[0].Value.Uint64()))
	if f.bytes == 0 || f.sample[0].Value.Kind() != metrics.KindUint64 || base <= 0 {
		<-ctx.Done() // off, or collecting continuously: left as configured
		return nil
	}
	defer debug.SetGCPercent(base)
	set := base
	for {
		if p := Percent(base, f.bytes, f.live()); p != set {
			debug.SetGCPercent(p)
			set = p
		}
		f.arm()
		select {
		case <-ctx.Done():
			return nil
		case <-f.cycles:
		}
	}
}

// live is what the last collection left: the heap it marked live, and the stacks and globals
// it scanned, which the collector's goal counts as well.
func (f *Floor) live() Live {
	metrics.Read(f.sample[1:])
	var v [3]uint64
	for i, s := range f.sample[1:] {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	return Live{Heap: v[0], Roots: v[1] + v[2]}
}

// Live is what a collection left, in bytes.
type Live struct {
	Heap  uint64 // marked live
	Roots uint64 // goroutine stacks and globals scanned
}

// sentinel is allocated after each adjustment; its cleanup says that a collection has run.
type sentinel struct {
	_ *int // a pointer keeps it out of the tiny allocator, whose blocks are freed together
	_ [8]byte
}

func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, f.cycles)
}

// Percent is the GOGC that makes the next cycle start when the heap reaches floor bytes, and
// never less than base. The collector's goal is heap + (heap + roots) × GOGC/100, and at
// least heapMinimum × GOGC/100.
func Percent(base int, floor uint64, live Live) int {
	if live.Heap == 0 || 2*live.Heap >= floor {
		return base
	}
	p := (float64(floor) - float64(live.Heap)) / float64(live.Heap+live.Roots) * 100
	if p <= float64(base) {
		return base
	}
	return int(math.Min(p, float64(floor)*100/heapMinimum))
}
