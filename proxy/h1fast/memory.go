package h1fast

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnMin is the least heap memory, resident but not in use, worth returning to the system:
// below it, the forced collection would cost more than the pages are worth.
const returnMin = 1 << 20

// memReturner gives the pages a burst of connections left behind back to the system. The Go
// runtime keeps what a heap grew to: a collection starts when the heap reaches twice what
// the previous one left live, and the scavenger hands back only what exceeds 110% of that
// goal, so after thousands of connections opened at once the resident size stays near the
// burst's peak while every connection waits parked. Only the epoll loop calls afterSweep.
type memReturner struct {
	every   time.Duration
	min     uint64 // returnMin; tests lower it
	last    time.Time
	pending bool          // a burst ended and its memory was not returned yet
	running chan struct{} // closed when the return in progress ends; nil when none ran
	free    func()        // debug.FreeOSMemory; tests wrap it to watch the return itself
	samples []metrics.Sample
}

func newMemReturner(every time.Duration) *memReturner {
	return &memReturner{every: every, min: returnMin, free: freeOSMemory, samples: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
}

// slack returns the heap memory a collection and a release can hand back: objects beyond
// what the last collection found live (garbage since) and free pages not yet released. Free
// slots in pages that also hold live objects are not counted: no release reaches them.
func (m *memReturner) slack() (slack, live uint64) {
	metrics.Read(m.samples)
	resident := m.samples[0].Value.Uint64() + m.samples[1].Value.Uint64()
	live = m.samples[2].Value.Uint64()
	if resident < live {
		return 0, live
	}
	return resident - live, live
}

// afterSweep is called by the epoll loop every sweepEvery: busy says a connection was handed
// to a goroutine since the last sweep, reaped that waiting goroutines were ended because none
// was. Once a burst is over (reaped) its memory is returned, on a goroutine of its own, as
// soon as the last return is at least every ago, unless traffic resumed first (busy) or the
// heap holds too little slack to be worth a forced collection (min, and a quarter of the
// live heap). done is called when a return is over, with the slack it found and the time it
// took. Under steady traffic nothing is returned: goroutines are reaped only after a second
// without any connection to serve.
func (m *memReturner) afterSweep(now time.Time, busy, reaped bool, done func(slack uint64, took time.Duration)) {
	if m == nil || m.every <= 0 {
		return
	}
	switch {
	case busy:
		m.pending = false
		return
	case reaped:
		m.pending = true
	}
	if !m.pending || !m.last.IsZero() && now.Sub(m.last) < m.every {
		return
	}
	if m.running != nil {
		select {
		case <-m.running:
		default:
			return
		}
	}
	m.pending = false
	slack, live := m.slack()
	if slack < m.min || slack < live/4 {
		return
	}
	m.last = now
	running := make(chan struct{})
	m.running = running
	go func() {
		defer close(running)
		start := time.Now()
		m.free()
		done(slack, time.Since(start))
	}()
}

// freeOSMemory returns a burst's memory: a collection first, which moves the objects the
// burst left in sync.Pools (exchanges, read buffers, the guard's reading state, buffered
// writers; about 2 MB after 19,000 connections) to the pools' victim caches, then
// debug.FreeOSMemory, whose collection drops them and releases their pages with the rest.
// The pools refill from the next burst's first requests.
func freeOSMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// wait returns once no return is in progress; for the epoll loop's end.
func (m *memReturner) wait() {
	if m != nil && m.running != nil {
		<-m.running
	}
}
