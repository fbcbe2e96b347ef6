package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// errAtCapacity is the answer, with 503, to a request that waited Config.BackendQueueTimeout
// for a free slot of its backend in vain. Nothing was sent, so it is no failure of the
// backend's, and the request may be retried on another one.
var errAtCapacity = errors.New("the backend is at its connection limit")

// connSlots bounds the requests in flight to one backend of one pool, and so the connections
// it is sent on: an HTTP/1.1 connection carries one request at a time, and a request holds its
// slot until its response has been copied to the client, or, upgraded, until the WebSocket
// closes. A request that finds every slot taken waits for one, up to the queue timeout and
// no longer than its own context, in the waiting goroutine itself: the slots are a buffered
// channel, whose blocked senders Go queues in arrival order.
//
// The cap can change while requests hold slots (a reload, a discovery update): a new channel
// replaces the old one, requests holding or waiting for a slot of the old one finish with it,
// and new requests count against the new one. For a moment both caps may then be in use.
type connSlots struct {
	sem atomic.Pointer[slotSem] // nil: no cap

	waits    atomic.Uint64 // requests that found every slot taken
	timeouts atomic.Uint64 // requests that waited QueueTimeout in vain
	queued   atomic.Int64  // requests waiting now
}

// slotSem is one cap's semaphore: a send takes a slot, a receive frees one. Its element type
// is empty, so a cap of any size costs no buffer.
type slotSem struct {
	limit int
	ch    chan struct{}
}

// setLimit sets the cap; 0 removes it. Setting the cap in force changes nothing.
func (s *connSlots) setLimit(n int) {
	cur := s.sem.Load()
	switch {
	case n <= 0 && cur == nil, cur != nil && cur.limit == n:
		return
	case n <= 0:
		s.sem.Store(nil)
	default:
		s.sem.Store(&slotSem{limit: n, ch: make(chan struct{}, n)})
	}
}

// limit returns the cap in force, 0 when there is none.
func (s *connSlots) limit() int {
	if sem := s.sem.Load(); sem != nil {
		return sem.limit
	}
	return 0
}

// acquire takes a slot, waiting up to timeout for one while ctx lasts, and returns the
// semaphore to give it back to (nil when there is no cap). It fails with errAtCapacity after
// timeout, or with ctx's error. A free slot costs no allocation; a wait costs a timer.
func (s *connSlots) acquire(ctx context.Context, timeout time.Duration) (*slotSem, error) {
	sem := s.sem.Load()
	if sem == nil {
		return nil, nil
	}
	select {
	case sem.ch <- struct{}{}:
		return sem, nil
	default:
	}
	s.waits.Add(1)
	s.queued.Add(1)
	defer s.queued.Add(-1)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case sem.ch <- struct{}{}:
		return sem, nil
	case <-timer.C:
		s.timeouts.Add(1)
		return nil, errAtCapacity
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release gives back a slot acquire returned; nil is a no-op.
func (sem *slotSem) release() {
	if sem != nil {
		<-sem.ch
	}
}

// attempt sends one try of req to st.backend over one of its connection slots, and reports
// the outcome to the passive checks. A try that finds no free slot in time sends nothing and
// reports nothing: a backend at the cap VeloFlux set is busy, not failing. A try that fails
// gives its slot back at once; one that got a response keeps it in st.slot until the request
// ends (ServeHTTP), since the connection is in use until then.
func (p *Proxy) attempt(st *reqState, req *http.Request) (*http.Response, error) {
	sem, err := st.backend.conns.acquire(req.Context(), st.set.cfg.BackendQueueTimeout)
	if err != nil {
		if p.tracing != nil {
			// A try that found no free slot is an attempt too: a retry follows it.
			if span := p.tracing.startAttempt(st, req); span != nil {
				endAttempt(st, req, span, nil, err)
			}
		}
		if errors.Is(err, errAtCapacity) {
			p.log.Debug("backend at its connection limit", st.logIDs([]any{"request_id", st.reqID, "pool", st.pool.name,
				"backend", st.backend.address, "limit", st.backend.conns.limit()})...)
		}
		return nil, err
	}
	var span trace.Span
	if p.tracing != nil {
		span = p.tracing.startAttempt(st, req)
	}
	resp, err := p.transports.roundTrip(st, req)
	if span != nil {
		endAttempt(st, req, span, resp, err)
	}
	if o, ok := outcomeOf(st, req, resp, err); ok {
		p.passive.Report(st.backend.id, o)
	}
	if err != nil {
		sem.release()
		return nil, err
	}
	st.slot = sem
	return resp, nil
}
