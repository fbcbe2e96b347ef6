package h1fast

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// garbage leaves n bytes of unreachable heap behind: with collections off (noCollections),
// slack that only a return hands back.
func garbage(n int) {
	keep := make([][]byte, 0, n>>16)
	for range n >> 16 {
		keep = append(keep, make([]byte, 64<<10))
	}
	runtime.KeepAlive(keep)
}

// noCollections turns the collector off until the test ends, so that garbage stays in the
// heap until a return collects it: a collection before would leave it to the runtime's
// background scavenger, which would release it without the product, or before the product
// looked.
func noCollections(t *testing.T) {
	runtime.GC()
	prev := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
}

func releasedBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Freed memory goes back to the system once per burst, no more often than the interval
// allows, and not while traffic goes on.
func TestMemoryReturnBounded(t *testing.T) {
	noCollections(t)
	const every = 10 * time.Second
	t0 := time.Unix(1000, 0)
	returns := 0
	done := func(uint64, time.Duration) { returns++ }
	step := func(m *memReturner, at time.Duration, busy, reaped bool) {
		t.Helper()
		garbage(16 << 20)
		m.afterSweep(t0.Add(at), busy, reaped, done)
		m.wait()
	}
	for _, tc := range []struct {
		name  string
		every time.Duration
		steps func(m *memReturner)
		want  int
	}{
		{"a burst's end returns", every, func(m *memReturner) { step(m, 0, false, true) }, 1},
		{"no burst ended, nothing returned", every, func(m *memReturner) {
			step(m, 0, false, false)
			step(m, every, false, false)
		}, 0},
		{"traffic goes on: nothing returned", every, func(m *memReturner) {
			for i := range 5 {
				step(m, time.Duration(i)*time.Second, true, false)
			}
		}, 0},
		{"two bursts within the interval: one return, the second once the interval is over", every, func(m *memReturner) {
			step(m, 0, false, true)
			step(m, 2*time.Second, false, true)
			if returns != 1 {
				t.Fatalf("%d returns within the interval, want 1", returns)
			}
			step(m, 5*time.Second, false, false)
			step(m, every, false, false)
		}, 2},
		{"traffic resumed before the interval was over: nothing more", every, func(m *memReturner) {
			step(m, 0, false, true)
			step(m, 2*time.Second, false, true)
			step(m, 3*time.Second, true, false)
			step(m, every, false, false)
		}, 1},
		{"off", 0, func(m *memReturner) { step(m, 0, false, true) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			returns = 0
			tc.steps(newMemReturner(tc.every))
			if returns != tc.want {
				t.Fatalf("%d returns, want %d", returns, tc.want)
			}
		})
	}

	t.Run("little slack: nothing returned", func(t *testing.T) {
		returns = 0
		m := newMemReturner(every)
		runtime.GC()
		m.min = 1 << 40
		m.afterSweep(t0, false, true, done)
		m.wait()
		if returns != 0 {
			t.Fatalf("%d returns with less slack than the minimum, want 0", returns)
		}
	})
}

// A return drops what the burst left in the server's pools: an exchange pooled before it is
// collected by it, not kept in the pool's victim cache until some later collection.
func TestMemoryReturnEmptiesPools(t *testing.T) {
	var s Server
	ex := newExchange()
	collected := make(chan struct{})
	runtime.AddCleanup(ex, func(ch chan struct{}) { close(ch) }, collected)
	s.reqs.Put(ex)
	ex = nil
	freeOSMemory()
	select {
	case <-collected:
	case <-time.After(time.Minute): // cleanups run on their own goroutine after the collection
		t.Fatal("a pooled exchange outlived the return of freed memory")
	}
}
