package h1fast

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloflux/veloflux/proxy/h1"
)

// Server serves HTTP/1.1 on the connections of a listener. Its exported fields are read when
// Serve starts and must not change afterwards.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// Guard frames connections that Accept returns unguarded. Nil: a guard with
	// h1.DefaultLimits. Connections the listener has already guarded keep their guard.
	Guard *h1.Guard
	// ConnContext returns the context of a new connection's requests. Nil: the base context.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ReadHeaderTimeout bounds reading a request head once its first byte arrived. 0: none.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, from its first byte. 0: none.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection that waits this long for its next request. 0: none.
	IdleTimeout time.Duration
	// ReturnMemoryEvery is the least time between two returns of freed memory to the system
	// (debug.FreeOSMemory), each made once a burst of connections is over: when the
	// goroutines that served it have waited a second without work and are ended, and the
	// heap holds materially more than it uses. Without it the resident size stays near a
	// burst's peak while its connections wait parked. 0: never. Linux only (the epoll set
	// decides when a burst is over).
	ReturnMemoryEvery time.Duration
	// NewConnGrace is how long Shutdown leaves open a connection that has sent nothing since
	// it was accepted, counted from its accept: its client may have connected just before
	// the drain and be about to send a request, which is then served with Connection:
	// close. Shutdown's context bounds it too. 0: 5 s, net/http's grace for such
	// connections.
	NewConnGrace time.Duration
	// Logger receives what goes wrong outside of a request (a handler's panic). Nil: discarded.
	Logger *slog.Logger

	mu        sync.Mutex
	stopped   bool // Shutdown found no connection left, or Close ran: track refuses
	lns       map[net.Listener]struct{}
	conns     map[*conn]struct{} // open connections the epoll set does not watch
	parker    *parker
	startOnce sync.Once
	startErr  error

	work        chan *conn    // unbuffered: hands a connection to a waiting goroutine
	stop        chan struct{} // closed when the server stops: waiting goroutines end
	stopOnce    sync.Once
	idleWorkers atomic.Int32 // goroutines waiting on work
	handoffs    atomic.Int64 // connections taken from work since the last reapWorkers

	shutdown  atomic.Bool
	noKeep    atomic.Bool // keep-alives disabled: every response closes its connection
	reqs      sync.Pool   // *exchange
	bufs      sync.Pool   // *[readBufSize]byte
	parkStats ParkStats
	// freeOSMemory returns freed memory to the system. Nil: debug.FreeOSMemory. Tests wrap it
	// to see when the server returns memory and what the return released.
	freeOSMemory func()
	date         atomic.Pointer[cachedDate]
}

// ParkStats counts what the idle-connection machinery did, for tests and benchmarks.
type ParkStats struct {
	Parked atomic.Int64 // connections handed to the epoll set while idle
	Woken  atomic.Int64 // parked connections that had something to read
	// MemoryReturns counts the returns of freed memory to the system (ReturnMemoryEvery).
	MemoryReturns atomic.Int64
}

// Stats returns the server's counters.
func (s *Server) Stats() *ParkStats { return &s.parkStats }

// ErrServerClosed is what Serve returns after Shutdown or Close: net/http's, so callers that
// run both servers test for one error.
var ErrServerClosed = http.ErrServerClosed

// aLongTimeAgo is a deadline in the past: blocked reads return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (s *Server) start() error {
	s.startOnce.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.Guard == nil {
			s.Guard = h1.NewGuard(h1.DefaultLimits(), nil, nil)
		}
		s.reqs.New = func() any { return newExchange() }
		s.bufs.New = func() any { return new([readBufSize]byte) }
		s.lns = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.work = make(chan *conn)
		s.stop = make(chan struct{})
		p, err := newParker(s)
		if err != nil {
			s.Logger.Warn("idle connections wait in goroutines: no epoll set", "error", err)
		}
		s.parker = p
	})
	return s.startErr
}

// Serve accepts connections from ln until Shutdown or Close, and serves each. It returns
// ErrServerClosed after either, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.start(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return err
		}
		backoff = 5 * time.Millisecond
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		s.dispatch(c)
	}
}

// maxIdleWorkers bounds the goroutines kept waiting for woken connections.
const maxIdleWorkers = 256

// dispatch serves c on a goroutine: one that waits for work, or a new one. A connection's
// goroutine ends when the connection parks, and a goroutine that served requests has grown
// its stack to what serving takes; handing it the next connection rather than starting one
// spares the runtime a goroutine's creation and the stack's growth, copy by copy, per request.
func (s *Server) dispatch(c *conn) {
	select {
	case s.work <- c:
	default:
		go s.worker(c)
	}
}

// worker serves c, then the connections dispatch hands it, until reaped or the server stops.
func (s *Server) worker(c *conn) {
	for c != nil {
		c.serve()
		if s.parker == nil {
			return // nothing wakes parked connections
		}
		if s.idleWorkers.Add(1) > maxIdleWorkers {
			s.idleWorkers.Add(-1)
			return // enough goroutines wait already
		}
		select {
		case c = <-s.work:
		case <-s.stop:
			c = nil
		}
		s.idleWorkers.Add(-1)
		if c != nil {
			s.handoffs.Add(1)
		}
	}
}

// reapWorkers ends the waiting goroutines when none took a connection since the last call
// (the epoll set calls it every sweepEvery), so that a burst's goroutines and their stacks do
// not outlive it. busy says some did take one; reaped, that waiting goroutines were ended.
func (s *Server) reapWorkers() (busy, reaped bool) {
	if s.handoffs.Swap(0) > 0 {
		return true, false
	}
	for {
		select {
		case s.work <- nil:
			reaped = true
		default:
			return false, reaped
		}
	}
}

// stopWorkers ends every waiting goroutine, for good.
func (s *Server) stopWorkers() { s.stopOnce.Do(func() { close(s.stop) }) }

// SetKeepAlivesEnabled false makes every later response close its connection and closes the
// idle ones (not those that have yet to send their first request: they are served, with
// Connection: close); true restores keep-alive.
func (s *Server) SetKeepAlivesEnabled(on bool) {
	s.noKeep.Store(!on)
	if !on && s.start() == nil {
		s.closeIdle()
	}
}

// defaultNewConnGrace is NewConnGrace's default: net/http's server treats a connection that
// has not sent its first request within 5 s as idle when it shuts down.
const defaultNewConnGrace = 5 * time.Second

// Shutdown stops accepting, closes idle connections, and waits until every other connection
// has finished its response and closed, or ctx ends. A connection that has not sent its
// first request is left NewConnGrace from its accept to send it (served with Connection:
// close) before it is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	s.shutdown.Store(true)
	s.noKeep.Store(true)
	s.closeListeners()
	grace := s.NewConnGrace
	if grace <= 0 {
		grace = defaultNewConnGrace
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.closeIdle()
		s.cutFresh(time.Now(), grace)
		if s.stopIfQuiet() {
			s.parker.close()
			s.stopWorkers()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	if err := s.start(); err != nil {
		return err
	}
	s.shutdown.Store(true)
	s.noKeep.Store(true)
	s.closeListeners()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	for _, c := range s.open() {
		c.abort()
	}
	s.parker.close()
	s.stopWorkers()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		_ = ln.Close()
	}
}

// stopIfQuiet reports whether no connection is left and no Serve still runs (one that does
// may hold a connection its listener returned before closing), and if so makes track refuse
// any other.
func (s *Server) stopIfQuiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = len(s.lns)+len(s.conns)+s.parker.count() == 0
	return s.stopped
}

func (s *Server) active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) + s.parker.count()
}

// open returns every open connection: those the epoll set watches and the others.
func (s *Server) open() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	return s.parker.appendConns(all)
}

// cutFresh closes the connections that have sent nothing within grace of their accept.
func (s *Server) cutFresh(now time.Time, grace time.Duration) {
	for _, c := range s.open() {
		c.cutFresh(now, grace)
	}
}

// closeIdle closes the connections that wait for a request, parked or in a goroutine, once
// they have served one.
func (s *Server) closeIdle() {
	for _, c := range s.open() {
		switch c.state.Load() {
		case stParked, stWaiting:
			c.closeIfIdle()
		}
	}
}

// track records a new connection, in the epoll set when its socket can be watched; false when
// the server has stopped. A connection its listener returned after Shutdown started is
// tracked: its client connected before the listener closed, and it gets NewConnGrace like any
// other that has yet to send its request.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.parker != nil {
		if fd, ok := socketFD(c.nc); ok && s.parker.watch(fd, c) == nil {
			c.fd = int32(fd)
			return true
		}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	if c.fd >= 0 {
		return // the epoll set held it, and unwatch let it go
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}
