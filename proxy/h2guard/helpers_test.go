package h2guard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// newCert returns a self-signed certificate for 127.0.0.1 and a pool that trusts it.
func newCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "h2guard test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// server is an http2.Server behind a TLS listener on 127.0.0.1, every connection wrapped
// by the guard.
type server struct {
	addr    string
	pool    *x509.CertPool
	abuses  atomic.Int32
	abused  chan struct{} // closed at the first onAbuse
	served  chan struct{} // receives when a ServeConn returns
	handled atomic.Int64  // handler calls
	noTLS   atomic.Int64  // handler calls whose Request.TLS was nil
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
		if r.TLS == nil {
			s.noTLS.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{http2.NextProtoTLS}}
	h2 := &http2.Server{}
	logDone := new(atomic.Bool)
	errorLog := log.New(testWriter{t, logDone}, "http2 server: ", 0)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	serve := func(c net.Conn) {
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
			s.served <- struct{}{}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		tc := tls.Server(c, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return
		}
		g := wrap(tc, cfg, func() {
			if s.abuses.Add(1) == 1 {
				close(s.abused)
			}
		}, opt.timeout)
		if opt.split > 0 || opt.hold > 0 {
			g = &splitConn{Conn: g, size: opt.split, hold: opt.hold, cs: g.(connectionStater)}
		}
		h2.ServeConn(g, &http2.ServeConnOpts{
			Context:    ctx,
			Handler:    counted,
			BaseConfig: &http.Server{ErrorLog: errorLog},
		})
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		logDone.Store(true)
	})
	return s
}

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
	cs         connectionStater

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

func (c *splitConn) ConnectionState() tls.ConnectionState { return c.cs.ConnectionState() }
