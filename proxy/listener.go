package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/rawsock"
)

// limitListener holds one slot of a shared semaphore per open client connection: at the cap
// it stops accepting, so new clients wait in the kernel's backlog instead of taking the
// descriptors that backend and probe connections need. Accept errors such as EMFILE are
// logged (at most once per acceptLogEvery), counted and retried with backoff, never returned
// to the server.
type limitListener struct {
	net.Listener
	name  string
	slots chan struct{} // shared by every listener of a Server
	log   *acceptLog
	errs  prometheus.Counter
	open  prometheus.Gauge

	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, name string, slots chan struct{}, log *acceptLog, errs prometheus.Counter, open prometheus.Gauge) *limitListener {
	return &limitListener{Listener: ln, name: name, slots: slots, log: log, errs: errs, open: open, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.open.Inc()
			return &slotConn{Conn: rawsock.Wrap(c), l: l}, nil
		}
		select {
		case <-l.done:
			<-l.slots
			return nil, err
		default:
		}
		if !retryableAccept(err) {
			<-l.slots
			return nil, err
		}
		l.errs.Inc()
		l.log.warn(l.name, err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			<-l.slots
			return nil, net.ErrClosed
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// retryableAccept: out of descriptors or buffers, a connection aborted before it was
// accepted, or anything the net package calls temporary.
func retryableAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// slotConn gives its slot back when closed, once, whoever closes it: the HTTP/1 server, the
// HTTP/2 server, a hijacking WebSocket copy or a failed handshake.
type slotConn struct {
	net.Conn
	l      *limitListener // its slots and its gauge; one pointer, as every open connection has one
	closed atomic.Bool
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Dec()
		<-c.l.slots
	}
	return err
}

// NetConn returns the accepted connection.
func (c *slotConn) NetConn() net.Conn { return c.Conn }

// CloseWrite keeps net/http's half-close before closing a connection (see h1.Conn.CloseWrite).
func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// acceptLogEvery spaces accept-error log lines: under descriptor exhaustion accept fails in
// a tight loop, and one line with a count says as much as thousands.
const acceptLogEvery = 10 * time.Second

type acceptLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (a *acceptLog) warn(listener string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if !a.last.IsZero() && now.Sub(a.last) < acceptLogEvery {
		a.suppressed++
		return
	}
	a.log.Warn("accepting a client connection failed; retrying", "listener", listener, "error", err, "suppressed", a.suppressed)
	a.last, a.suppressed = now, 0
}

// tlsListener completes TLS handshakes off the accept path, each in its own goroutine bounded
// by a timeout, and hands the connections, wrapped for their protocol, to the server through
// Accept. net/http cannot do the handshake itself here: the HTTP/1 guard must sit between the
// TLS connection and net/http, and net/http speaks TLS only to a bare *tls.Conn.
type tlsListener struct {
	inner   net.Listener
	cfg     *tls.Config
	timeout time.Duration
	wrap    func(*tls.Conn) net.Conn
	log     *slog.Logger

	ready chan net.Conn
	errc  chan error
	done  chan struct{}
	wg    sync.WaitGroup
	start sync.Once

	mu    sync.Mutex
	conns map[*tls.Conn]struct{} // handshaking, closed by closeConns
	once  sync.Once
}

func newTLSListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, wrap func(*tls.Conn) net.Conn, log *slog.Logger) *tlsListener {
	return &tlsListener{
		inner: inner, cfg: cfg, timeout: timeout, wrap: wrap, log: log,
		ready: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{}),
		conns: make(map[*tls.Conn]struct{}),
	}
}

func (l *tlsListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.inner.Accept()
		if err != nil {
			l.errc <- err
			return
		}
		tc := tls.Server(c, l.cfg)
		if !l.track(tc) {
			_ = tc.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(tc)
	}
}

// track records a handshaking connection; false once the listener is closed.
func (l *tlsListener) track(tc *tls.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	if tc != nil {
		l.conns[tc] = struct{}{}
	}
	return true
}

func (l *tlsListener) untrack(tc *tls.Conn) {
	l.mu.Lock()
	delete(l.conns, tc)
	l.mu.Unlock()
}

func (l *tlsListener) handshake(tc *tls.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	l.untrack(tc)
	if err != nil {
		_ = tc.Close()
		l.log.Debug("TLS handshake failed", "client", tc.RemoteAddr().String(), "error", err)
		return
	}
	select {
	case l.ready <- l.wrap(tc):
	case <-l.done:
		_ = tc.Close()
	}
}

// Accept returns the next handshaken connection.
func (l *tlsListener) Accept() (net.Conn, error) {
	l.start.Do(func() {
		if l.track(nil) { // not closed yet
			l.wg.Add(1)
			go l.acceptLoop()
		}
	})
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // every later Accept fails the same way
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes under way go on until closeConns.
func (l *tlsListener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		l.mu.Unlock()
	})
	return l.inner.Close()
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// closeConns cuts the handshakes still under way and waits for every goroutine of the
// listener.
func (l *tlsListener) closeConns() {
	l.mu.Lock()
	for tc := range l.conns {
		_ = tc.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
