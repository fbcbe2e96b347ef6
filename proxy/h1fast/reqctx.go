package h1fast

import (
	"context"
	"sync"
	"time"
)

// reqContext is a request's context: it ends when the client goes away, the connection
// closes or the response is out. It costs one allocation where context.WithCancel costs
// three once anything waits on it (the context, its channel and the map of its children):
// the channel is made only when Done is called, and functions to run at its end
// (AfterFunc, which package context and the backend client use) are kept in a slice inside
// it rather than as child contexts.
type reqContext struct {
	base context.Context // the connection's: values and deadline

	mu     sync.Mutex
	ended  bool
	done   chan struct{} // made by Done; closed at the end
	funcs  []func()      // to run at the end; nil once run or stopped
	inline [2]func()     // backs funcs: a request's tries register one each
}

func newReqContext(base context.Context) *reqContext {
	return &reqContext{base: base}
}

func (rc *reqContext) Deadline() (time.Time, bool) { return rc.base.Deadline() }

func (rc *reqContext) Value(key any) any { return rc.base.Value(key) }

func (rc *reqContext) Done() <-chan struct{} {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done == nil {
		rc.done = make(chan struct{})
		if rc.ended {
			close(rc.done)
		}
	}
	return rc.done
}

func (rc *reqContext) Err() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.ended {
		return context.Canceled
	}
	return nil
}

func (rc *reqContext) String() string { return "h1fast.requestContext" }

// AfterFunc arranges for f to run in its own goroutine once the context ends, as
// context.AfterFunc does; stop reports whether it kept f from running. Package context
// calls it for a context derived from this one (context.WithCancel, context.AfterFunc).
func (rc *reqContext) AfterFunc(f func()) (stop func() bool) {
	rc.mu.Lock()
	if rc.ended {
		rc.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if rc.funcs == nil {
		rc.funcs = rc.inline[:0]
	}
	i := len(rc.funcs)
	rc.funcs = append(rc.funcs, f)
	rc.mu.Unlock()
	return func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.funcs[i] == nil {
			return false
		}
		rc.funcs[i] = nil
		return true
	}
}

// end ends the context and starts the functions registered with AfterFunc and not stopped.
func (rc *reqContext) end() {
	rc.mu.Lock()
	if rc.ended {
		rc.mu.Unlock()
		return
	}
	rc.ended = true
	if rc.done != nil {
		close(rc.done)
	}
	var run []func()
	for i, f := range rc.funcs {
		if f != nil {
			run = append(run, f)
			rc.funcs[i] = nil
		}
	}
	rc.mu.Unlock()
	for _, f := range run {
		go f()
	}
}
