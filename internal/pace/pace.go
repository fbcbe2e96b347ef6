// Package pace lets long work that runs beside the request path, such as a configuration
// reload building a table of thousands of backends, step aside at short intervals so that
// requests which arrived meanwhile are served first.
//
// Go's scheduler gives a running goroutine up to 10 ms before it preempts it, and with one
// processor (GOMAXPROCS=1, a node pinned to one core) it looks for network events only when
// nothing else can run or every 10 ms: runtime.Gosched puts the goroutine back at the end of
// the run queue and picks it again at once, without polling the network. A Pacer parks its
// goroutine on a descriptor of the runtime's own poller that it makes ready itself, so the
// scheduler polls the network, queues every request goroutine that has something to read
// ahead of the paced one, and runs them first.
package pace

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSlice is how long paced work runs between steps aside: under a request's usual
// latency at the tail, and long enough that a step (two system calls and a pass through the
// scheduler, 5 to 10 microseconds) costs 1 to 2% of the work.
const DefaultSlice = 500 * time.Microsecond

// Pacer steps aside when Step is called more than its slice after the last step. A nil
// *Pacer never steps aside. Step is safe for concurrent use; while one goroutine steps
// aside, the others' calls return at once.
type Pacer struct {
	slice  time.Duration
	start  time.Time    // the monotonic origin of last
	last   atomic.Int64 // nanoseconds from start to the end of the last step
	steps  atomic.Uint64
	mu     sync.Mutex
	w      waker
	closed bool // guarded by mu
}

// New returns a Pacer that lets work run for slice (DefaultSlice when 0) between steps
// aside. Close releases its descriptors.
func New(slice time.Duration) (*Pacer, error) {
	if slice <= 0 {
		slice = DefaultSlice
	}
	p := &Pacer{slice: slice, start: time.Now()}
	if err := p.w.open(); err != nil {
		return nil, err
	}
	return p, nil
}

// Step steps aside if the calling goroutine's work has run for the slice since the last
// step: it returns once the goroutines that were waiting for the network have had their
// turn. Call it between units of work of a few microseconds or more, with no lock held that
// a request needs.
func (p *Pacer) Step() {
	if p == nil || time.Since(p.start)-time.Duration(p.last.Load()) < p.slice {
		return
	}
	if !p.mu.TryLock() {
		return
	}
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.w.yield()
	p.last.Store(int64(time.Since(p.start)))
	p.steps.Add(1)
}

// Steps returns how many times Step has stepped aside. Safe on nil (0).
func (p *Pacer) Steps() uint64 {
	if p == nil {
		return 0
	}
	return p.steps.Load()
}

// Close releases the Pacer's descriptors; later calls of Step never step aside, and later
// calls of Close do nothing (a descriptor closed twice could be another file's by then).
// Safe on nil.
func (p *Pacer) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.w.close()
}
