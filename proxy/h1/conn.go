package h1

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net"
	"sync"
	"sync/atomic"
)

// rejBareCR is a CR inside a line: some parsers end lines there, so it could split a field.
var rejBareCR = Rejection{400, "CR without LF"}

// Guard holds what the connections of one listener share: limits, the rejection callback and
// the secret target of synthetic requests.
type Guard struct {
	lim       Limits
	onReject  func(Rejection)
	h2c       func(net.Conn) net.Conn
	target    string
	synthetic []byte    // the request handed on in place of a rejected head; never written to
	pool      sync.Pool // *[headBufSize]byte
	readers   sync.Pool // *reader
}

// headBufSize is the buffer a head is read into first; larger heads grow it, up to the limit.
// Most heads fit, and the buffer goes back to the pool as soon as its bytes are handed on, so
// an idle connection holds none.
const headBufSize = 4 << 10

// NewGuard returns a Guard. onReject, which may be nil, is called once for every rejected
// head, on the connection's reading goroutine; it must not block.
//
// h2c, when not nil, lets a client speak HTTP/2 with prior knowledge: a connection whose
// first bytes are the HTTP/2 client preface leaves HTTP/1 framing for good, and its reads and
// writes go through h2c's result instead (which gets the connection with the preface still
// to be read, for an HTTP/2 guard). Nil: the preface is refused like any HTTP/2.0 request
// line (505).
func NewGuard(lim Limits, onReject func(Rejection), h2c func(net.Conn) net.Conn) *Guard {
	var secret [16]byte
	_, _ = rand.Read(secret[:])
	g := &Guard{lim: lim.withDefaults(), onReject: onReject, h2c: h2c}
	g.target = "/.veloflux-rejected/" + hex.EncodeToString(secret[:])
	g.synthetic = []byte("GET " + g.target + " HTTP/1.1\r\nHost: rejected.invalid\r\nConnection: close\r\n\r\n")
	g.pool.New = func() any { return new([headBufSize]byte) }
	g.readers.New = func() any { return new(reader) }
	return g
}

// Limits returns the limits in force, defaults filled in.
func (g *Guard) Limits() Limits { return g.lim }

// Wrap returns c guarded. The result has ConnectionState when c has (a *tls.Conn), so that
// net/http still fills Request.TLS.
func (g *Guard) Wrap(c net.Conn) net.Conn {
	gc := &Conn{Conn: c, g: g}
	if _, ok := c.(connectionStater); ok {
		return &tlsConn{gc}
	}
	return gc
}

// From returns the guarded connection under c, or nil when c is not one.
func From(c net.Conn) *Conn {
	switch gc := c.(type) {
	case *Conn:
		return gc
	case *tlsConn:
		return gc.Conn
	}
	return nil
}

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

type tlsConn struct{ *Conn }

func (c *tlsConn) ConnectionState() tls.ConnectionState {
	return c.Conn.Conn.(connectionStater).ConnectionState()
}

type state uint8

const (
	stHead    state = iota // reading a request head
	stLength               // in a body of known length
	stChunked              // in a chunked body
	stPass                 // upgraded: bytes pass unframed
	stFailed               // the body broke its framing: every read fails
	stDiscard              // no further request will be served: client bytes are dropped
)

// Conn is a client connection whose request stream is checked as it is read. Reads must come
// from one goroutine at a time, as net/http's do; Rejected may be called from any.
//
// What reading a request takes (the head's buffer and counters, a body's framing) lives in a
// reader taken from the Guard's pool when the client's next bytes are read and given back
// when a request has been handed on whole with nothing after it, so that a connection waiting
// for its next request holds only this struct.
type Conn struct {
	net.Conn
	g *Guard
	r *reader // nil between requests

	rej    atomic.Pointer[Rejection]
	h2     atomic.Pointer[net.Conn] // set when the client spoke HTTP/2 with prior knowledge
	st     state
	served bool // a request head was handed on
}

// reader is a connection's reading state while a request is read.
type reader struct {
	mem   *[headBufSize]byte // pooled backing of buf, nil when buf is grown or synthetic
	buf   []byte             // read from the wire, not handed on yet
	ready int                // buf[:ready] is checked and may be handed on
	scan  int                // stHead: buf[:scan] is the part of the head already parsed
	h     head
	last  bool  // the request being read is the connection's last
	left  int64 // stLength: body bytes still to come
	ch    chunker
	err   error // stFailed
}

// clientPreface opens every HTTP/2 connection (RFC 9113 section 3.4).
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Write sends to the client, through the HTTP/2 side once the connection switched to it.
func (c *Conn) Write(p []byte) (int, error) {
	if h := c.h2.Load(); h != nil {
		return (*h).Write(p)
	}
	return c.Conn.Write(p)
}

// Close closes the connection, through the HTTP/2 side once the connection switched to it.
func (c *Conn) Close() error {
	if h := c.h2.Load(); h != nil {
		return (*h).Close()
	}
	return c.Conn.Close()
}

// startH2C switches the connection to HTTP/2 when h2c is allowed and it opens with the
// preface: done reports the switch, more that too few bytes arrived to tell.
func (c *Conn) startH2C() (done, more bool) {
	if c.g.h2c == nil || c.served || c.r.h.lines > 0 {
		return false, false
	}
	n := min(len(c.r.buf), len(clientPreface))
	if string(c.r.buf[:n]) != clientPreface[:n] {
		return false, false
	}
	if n < len(clientPreface) {
		return false, true
	}
	pending := append([]byte(nil), c.r.buf...)
	c.release()
	h := c.g.h2c(&prefixConn{Conn: c.Conn, pre: pending})
	c.h2.Store(&h)
	return true, false
}

// prefixConn reads pre before the connection's own bytes.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// Rejected reports whether target is the synthetic request standing for a rejected head of
// this connection, and why the head was rejected. The handler answers it with the
// rejection's status and lets the connection close (the synthetic request asks for that).
func (c *Conn) Rejected(target string) (Rejection, bool) {
	if r := c.rej.Load(); r != nil && target == c.g.target {
		return *r, true
	}
	return Rejection{}, false
}

// Buffered reports how many bytes of the client's stream the guard holds that no read has
// handed on yet: the start of a pipelined request, or of one still arriving. A server that
// waits for the next request on the connection underneath must look here first.
func (c *Conn) Buffered() int {
	if c.h2.Load() != nil || c.r == nil {
		return 0
	}
	return len(c.r.buf)
}

// DirectBody reports how many bytes of the body being read are still to come when it has a
// length and the guard holds none of them: the caller may then read them from the connection
// underneath (returned) itself, with a kernel copy, and must report what it read with
// DirectRead. ok is false otherwise (no body, a chunked body, bytes buffered here), and the
// body is read through Read.
func (c *Conn) DirectBody() (under net.Conn, left int64, ok bool) {
	if c.h2.Load() != nil || c.r == nil || c.st != stLength || len(c.r.buf) > 0 || c.r.ready > 0 {
		return nil, 0, false
	}
	return c.Conn, c.r.left, true
}

// DirectRead accounts n body bytes read from the connection underneath after DirectBody.
func (c *Conn) DirectRead(n int64) {
	if c.r == nil || c.st != stLength || n <= 0 {
		return
	}
	c.bodyRead(min(n, c.r.left))
	c.settle()
}

// NetConn returns the connection the guard reads from.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the connection when the one underneath can, so net/http can send a
// final response (a rejection) and close without a reset that would destroy it in flight.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Read hands on checked bytes of the client's stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.r == nil {
		if c.st == stPass {
			if h := c.h2.Load(); h != nil {
				return (*h).Read(p)
			}
			return c.Conn.Read(p) // upgraded, nothing buffered: no framing left to keep
		}
		c.r = c.g.readers.Get().(*reader)
	}
	n, err := c.read(p)
	c.settle()
	return n, err
}

// settle gives the reader back to the pool when nothing is pending: no byte buffered, and
// the connection between requests (or past framing for good).
func (c *Conn) settle() {
	r := c.r
	if r == nil || len(r.buf) > 0 || r.ready > 0 {
		return
	}
	switch c.st {
	case stHead:
		if r.h.lines > 0 {
			return
		}
	case stPass, stDiscard:
	default:
		return // in a body, or failed: the reader holds its framing or its error
	}
	c.release()
	*r = reader{}
	c.r = nil
	c.g.readers.Put(r)
}

func (c *Conn) read(p []byte) (int, error) {
	for {
		if h := c.h2.Load(); h != nil {
			return (*h).Read(p)
		}
		if c.r.ready > 0 {
			n := copy(p, c.r.buf[:c.r.ready])
			c.consume(n)
			return n, nil
		}
		switch c.st {
		case stHead:
			if err := c.readHead(); err != nil {
				return 0, err
			}
		case stLength:
			if len(c.r.buf) > 0 {
				c.r.ready = int(min(int64(len(c.r.buf)), c.r.left))
				c.bodyRead(int64(c.r.ready))
				continue
			}
			n, err := c.Conn.Read(p[:min(int64(len(p)), c.r.left)])
			c.bodyRead(int64(n))
			return n, err
		case stChunked:
			if len(c.r.buf) > 0 {
				n, done, bad := c.r.ch.feed(c.r.buf)
				c.r.ready = n
				c.chunkedRead(done, bad)
				if n == 0 && bad {
					return 0, c.r.err
				}
				continue
			}
			n, err := c.Conn.Read(p)
			k, done, bad := c.r.ch.feed(p[:n])
			if done && k < n {
				c.stash(p[k:n]) // the start of the next request
			}
			c.chunkedRead(done, bad)
			if bad && k == 0 {
				return 0, c.r.err
			}
			if bad {
				return k, nil
			}
			return k, err
		case stPass:
			if len(c.r.buf) > 0 {
				c.r.ready = len(c.r.buf)
				continue
			}
			return c.Conn.Read(p)
		case stFailed:
			return 0, c.r.err
		case stDiscard:
			c.release()
			for {
				if _, err := c.Conn.Read(p); err != nil {
					return 0, err
				}
			}
		}
	}
}

// readHead reads until a whole head is checked (ready holds it) or a rejection stands in for
// it; it returns only read errors.
func (c *Conn) readHead() error {
	for {
		switch done, more := c.startH2C(); {
		case done:
			return nil
		case more:
			if err := c.fill(); err != nil {
				return err
			}
			continue
		}
		for {
			i := bytes.IndexByte(c.r.buf[c.r.scan:], '\n')
			if i < 0 {
				break
			}
			end := c.r.scan + i
			if end == 0 || c.r.buf[end-1] != '\r' {
				c.reject(rejBareLF)
				return nil
			}
			line := c.r.buf[c.r.scan : end-1]
			if bytes.IndexByte(line, '\r') >= 0 {
				c.reject(rejBareCR)
				return nil
			}
			if c.r.h.lines == 0 && len(line) == 0 {
				// RFC 9112 section 2.2: an empty line before a request line is ignored.
				c.consume(end + 1)
				continue
			}
			done, rej, ok := c.r.h.line(line, c.g.lim.MaxHeaderCount)
			if !ok {
				c.reject(rej)
				return nil
			}
			c.r.scan = end + 1
			if done {
				if c.r.scan > c.g.lim.MaxHeaderBytes {
					c.reject(rejHeadTooLarge)
					return nil
				}
				c.headDone()
				return nil
			}
		}
		if len(c.r.buf) > c.g.lim.MaxHeaderBytes {
			if c.r.h.lines == 0 {
				c.reject(rejLineTooLong)
			} else {
				c.reject(rejHeadTooLarge)
			}
			return nil
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
}

// headDone makes a checked head ready and sets up its body.
func (c *Conn) headDone() {
	c.served = true
	c.r.ready = c.r.scan
	c.r.last = c.r.h.closing()
	switch {
	case c.r.h.upgrades():
		c.st = stPass
	case c.r.h.framing() == frameChunked:
		c.st = stChunked
		c.r.ch.reset(c.g.lim)
	case c.r.h.framing() == frameLength:
		c.st = stLength
		c.r.left = c.r.h.length
	default:
		c.nextRequest()
	}
	c.r.h = head{}
	c.r.scan = 0
}

// nextRequest follows the end of a request: another head, unless it was the last.
func (c *Conn) nextRequest() {
	if c.r.last {
		c.st = stDiscard
		return
	}
	c.st = stHead
}

func (c *Conn) bodyRead(n int64) {
	if c.r.left -= n; c.r.left == 0 {
		c.nextRequest()
	}
}

func (c *Conn) chunkedRead(done, bad bool) {
	switch {
	case done:
		c.nextRequest()
	case bad:
		c.st, c.r.err = stFailed, ErrMalformedBody
	}
}

// reject puts the synthetic request in place of the head being read.
func (c *Conn) reject(r Rejection) {
	c.rej.Store(&r)
	if c.g.onReject != nil {
		c.g.onReject(r)
	}
	c.release()
	c.r.buf = c.g.synthetic
	c.r.ready = len(c.r.buf)
	c.r.scan = 0
	c.st = stDiscard
}

// consume drops n handed-on bytes from the front of buf.
func (c *Conn) consume(n int) {
	c.r.buf = c.r.buf[n:]
	c.r.ready = max(c.r.ready-n, 0)
	c.r.scan = max(c.r.scan-n, 0)
	if len(c.r.buf) == 0 {
		c.release()
	}
}

// release returns the pooled buffer once nothing in it is pending.
func (c *Conn) release() {
	if c.r.mem != nil {
		c.g.pool.Put(c.r.mem)
		c.r.mem = nil
	}
	c.r.buf = nil
}

// stash keeps b, read past the end of a body, as the start of the next head.
func (c *Conn) stash(b []byte) {
	c.release()
	c.r.mem = c.g.pool.Get().(*[headBufSize]byte)
	if len(b) <= headBufSize {
		c.r.buf = append(c.r.mem[:0], b...)
		return
	}
	c.r.buf = append([]byte(nil), b...)
}

// fill reads more of a head into buf, growing it up to one byte past the head limit.
func (c *Conn) fill() error {
	if c.r.buf == nil && c.r.mem == nil {
		c.r.mem = c.g.pool.Get().(*[headBufSize]byte)
		c.r.buf = c.r.mem[:0]
	}
	if len(c.r.buf) == cap(c.r.buf) && c.r.mem != nil && len(c.r.buf) < headBufSize {
		c.r.buf = append(c.r.mem[:0], c.r.buf...) // move the partial head to the front (memmove)
	}
	if len(c.r.buf) == cap(c.r.buf) {
		limit := c.g.lim.MaxHeaderBytes + 1
		grown := make([]byte, len(c.r.buf), min(max(2*cap(c.r.buf), headBufSize), max(limit, len(c.r.buf)+1)))
		copy(grown, c.r.buf)
		if c.r.mem != nil {
			c.g.pool.Put(c.r.mem)
			c.r.mem = nil
		}
		c.r.buf = grown
	}
	n, err := c.Conn.Read(c.r.buf[len(c.r.buf):cap(c.r.buf)])
	c.r.buf = c.r.buf[:len(c.r.buf)+n]
	if n > 0 {
		return nil // an error comes back on the next read
	}
	if len(c.r.buf) == 0 {
		c.release()
	}
	return err
}
