package h2guard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/veloflux/veloflux/internal/testutil"
)

// newCert returns a certificate for 127.0.0.1 and a pool that trusts it.
func newCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testutil.NewCA(t)
	return ca.Issue(t, "h2guard test", false, "127.0.0.1"), ca.Pool()
}

// server is an http.Server speaking HTTP/2 behind a TLS listener on 127.0.0.1, every
// connection wrapped by the guard, the way the proxy serves HTTP/2.
type server struct {
	addr    string
	pool    *x509.CertPool
	abuses  atomic.Int32
	abused  chan struct{} // closed at the first onAbuse
	served  chan struct{} // receives when the server is done with a connection
	handled atomic.Int64  // handler calls
	noTLS   atomic.Int64  // handler calls that did not learn the connection's TLS state
}

func startServer(t *testing.T, cfg Config, h http.Handler) *server {
	t.Helper()
	return startServerWith(t, cfg, h, serverOptions{})
}

type serverOptions struct {
	// split hands the server's output to the guard in pieces of at most split bytes (0:
	// as the server writes it), and hold keeps the last hold bytes of each write back
	// until the next. The server's buffered writer flushes a frame in parts only now and
	// then; held back, the output always ends inside a frame, so the GOAWAY has to wait
	// for the boundary that the next write brings.
	split, hold int
	// timeout replaces goAwayTimeout. A test that must see the GOAWAY sets a long one, so
	// that a slow machine cannot make the guard give up on it; its client then has to
	// close its side after the GOAWAY, or the guard waits for it that long.
	timeout time.Duration
}

func startServerWith(t *testing.T, cfg Config, h http.Handler, opt serverOptions) *server {
	t.Helper()
	if opt.timeout == 0 {
		opt.timeout = goAwayTimeout
	}
	cert, pool := newCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{
		addr:   ln.Addr().String(),
		pool:   pool,
		abused: make(chan struct{}),
		served: make(chan struct{}, 16),
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handled.Add(1)
		if state, _ := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); state == nil || !state.HandshakeComplete {
			s.noTLS.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{http2.NextProtoTLS}}
	logDone := new(atomic.Bool)
	var serving, open sync.WaitGroup // the Serve loop; connections the server has not closed
	// As in the proxy: HTTP/2 in net/http's unencrypted mode, over connections whose TLS
	// handshake the listener has done.
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   counted,
		Protocols: &protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*plainConn); ok {
				ctx = context.WithValue(ctx, tlsStateKey{}, pc.state)
			}
			return ctx
		},
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed:
				s.served <- struct{}{}
				open.Done()
			}
		},
		ErrorLog: log.New(testWriter{t, logDone}, "http server: ", 0),
	}
	gl := &guardListener{Listener: ln, wrap: func(c net.Conn) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		tc := tls.Server(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		g := wrap(tc, cfg, func() {
			if s.abuses.Add(1) == 1 {
				close(s.abused)
			}
		}, opt.timeout)
		// The TLS state as the guard passes it on; nil if it lost the method.
		var state *tls.ConnectionState
		if cs, ok := g.(connectionStater); ok {
			st := cs.ConnectionState()
			state = &st
		}
		if opt.split > 0 || opt.hold > 0 {
			g = &splitConn{Conn: g, size: opt.split, hold: opt.hold}
		}
		return &plainConn{Conn: g, state: state}, nil
	}, served: s.served}

	serving.Go(func() { _ = srv.Serve(gl) })
	t.Cleanup(func() {
		srv.Close() // closes the listener and every connection
		serving.Wait()
		open.Wait() // the server's goroutines are done with every connection, and its log
		logDone.Store(true)
	})
	return s
}

// guardListener hands the server connections whose TLS handshake is done, wrapped by wrap,
// as the proxy's TLS listener does. A connection whose handshake fails counts as served.
type guardListener struct {
	net.Listener
	wrap   func(net.Conn) (net.Conn, error)
	served chan<- struct{}
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		g, err := l.wrap(c)
		if err == nil {
			return g, nil
		}
		c.Close()
		l.served <- struct{}{}
	}
}

// plainConn hides the ConnectionState method of the guard around a TLS connection, as the
// proxy's h2Conn does: net/http takes a connection with one for TLS and speaks HTTP/1 on it.
// The TLS state reaches the handler through ConnContext instead.
type plainConn struct {
	net.Conn
	state *tls.ConnectionState
}

type tlsStateKey struct{}

// waitServed waits for a server connection to finish.
func (s *server) waitServed(t *testing.T) {
	t.Helper()
	select {
	case <-s.served:
	case <-time.After(waitLimit):
		t.Fatal("the server connection was not closed")
	}
}

// testWriter sends the server's log to the test log until done is set, when the test is
// about to end: a handler goroutine may outlive its connection briefly.
type testWriter struct {
	t    *testing.T
	done *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(bytes.TrimSpace(p)))
	}
	return len(p), nil
}

// client speaks raw HTTP/2 frames over TLS.
type client struct {
	conn *tls.Conn
	fr   *http2.Framer
	wmu  sync.Mutex // guards the Framer's write side and bw
	bw   *bufio.Writer
	next uint32 // next stream id
}

func (s *server) dial(t *testing.T) *client {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: s.pool, NextProtos: []string{http2.NextProtoTLS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
		t.Fatalf("negotiated protocol %q, want h2", p)
	}
	c := &client{conn: conn, bw: bufio.NewWriter(conn), next: 1}
	c.fr = http2.NewFramer(c.bw, conn)
	// Decoding header blocks makes the Framer check them, and with them HPACK framing.
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	// The largest windows let the server write without waiting for the client.
	const maxWindow = 1<<31 - 1
	c.write(t, func() error {
		if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
			return err
		}
		if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow}); err != nil {
			return err
		}
		return c.fr.WriteWindowUpdate(0, maxWindow-65535)
	})
	return c
}

// write runs f with the write side locked and flushes.
func (c *client) write(t *testing.T, f func() error) {
	t.Helper()
	if err := c.tryWrite(f); err != nil {
		t.Fatalf("client write: %v", err)
	}
}

func (c *client) tryWrite(f func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := f(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// headerBlock encodes a GET request for path. A fresh encoder makes a block that refers
// to no dynamic table entry, so one block can be sent any number of times.
func headerBlock(path string) []byte {
	var buf bytes.Buffer
	e := hpack.NewEncoder(&buf)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "127.0.0.1"},
		{Name: ":path", Value: path},
	} {
		e.WriteField(f)
	}
	return buf.Bytes()
}

// open starts a request on a new stream without writing it out; call with wmu held or
// inside write.
func (c *client) open(block []byte) (uint32, error) {
	id := c.next
	c.next += 2
	return id, c.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true,
	})
}

// flood writes up to pairs HEADERS+RST_STREAM pairs for path, and stops early when a
// write fails because the connection closed.
func (c *client) flood(pairs int, path string) {
	block := headerBlock(path)
	const batch = 64
	for i := 0; i < pairs; i += batch {
		err := c.tryWrite(func() error {
			for range min(batch, pairs-i) {
				id, err := c.open(block)
				if err != nil {
					return err
				}
				if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return
		}
	}
}

// goAway is what the client saw of the server's GOAWAY frames.
type goAway struct {
	seen       bool
	lastStream uint32
	code       http2.ErrCode
	after      int // frames read after it
}

func (g *goAway) note(f http2.Frame) {
	if g.seen {
		g.after++
		return
	}
	if ga, ok := f.(*http2.GoAwayFrame); ok {
		g.seen, g.lastStream, g.code = true, ga.LastStreamID, ga.ErrCode
	}
}

// closedCleanly reports whether err, which ended the client's reading, is the connection
// closing rather than malformed framing: the Framer reports a frame cut short as
// io.ErrUnexpectedEOF and a bad one as a ConnectionError or StreamError.
func closedCleanly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// readAll reads frames until the connection ends, passing each to f; it returns the
// error that ended it.
func (c *client) readAll(f func(http2.Frame)) error {
	for {
		fr, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		f(fr)
	}
}

// wait waits for ch to close, or fails the test.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("gave up waiting for %s", what)
	}
}

// splitConn writes to Conn in pieces of at most size bytes (0: whole), and keeps the last
// hold bytes back until the next write.
type splitConn struct {
	net.Conn
	size, hold int

	mu   sync.Mutex
	held []byte
}

func (c *splitConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := append(c.held, p...)
	keep := min(c.hold, len(buf))
	out := buf[:len(buf)-keep]
	size := c.size
	if size == 0 {
		size = len(out)
	}
	for n := 0; n < len(out); {
		k, err := c.Conn.Write(out[n:min(len(out), n+size)])
		n += k
		if err != nil {
			return 0, err
		}
	}
	c.held = append([]byte(nil), buf[len(buf)-keep:]...)
	return len(p), nil
}
