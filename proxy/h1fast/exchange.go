package h1fast

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"time"

	"github.com/veloflux/veloflux/proxy/h1"
	"github.com/veloflux/veloflux/proxy/splice"
)

// exchange is everything one request and its response need, pooled by the server and held
// only while the request is served.
type exchange struct {
	buf    []byte // the head being read; backed by a pooled array while it fits
	start  time.Time
	req    *http.Request
	url    url.URL
	header http.Header
	vals   []string // backing of single-valued header fields
	body   body
	w      response
	bw     *bufio.Writer
}

func newExchange() *exchange {
	ex := &exchange{header: make(http.Header, 16), vals: make([]string, 0, 32)}
	ex.bw = bufio.NewWriterSize(nil, writeBufSize)
	ex.w.header = make(http.Header, 16)
	ex.w.ex = ex
	return ex
}

// maxPooledFields is the largest response header map kept for the next request.
const maxPooledFields = 32

// writeBufSize buffers a response head and a small body for one write.
const writeBufSize = 4 << 10

// newRequest returns the exchange's request, reset, with the connection's context.
func (ex *exchange) newRequest(c *conn) *http.Request {
	r := (&http.Request{}).WithContext(c.requestContext())
	r.RemoteAddr = c.remote
	ex.req = r
	ex.bw.Reset(c.nc)
	ex.w.reset(c, r)
	return r
}

// putBuf returns the pooled head buffer.
func (ex *exchange) putBuf(s *Server) {
	if ex.buf != nil && cap(ex.buf) == readBufSize {
		s.bufs.Put((*[readBufSize]byte)(ex.buf[:readBufSize]))
	}
	ex.buf = nil
}

// release returns the exchange to the pool, dropping every reference into the request.
func (ex *exchange) release(s *Server) {
	ex.putBuf(s)
	ex.req = nil
	ex.url = url.URL{}
	clear(ex.header)
	clear(ex.vals[:cap(ex.vals)])
	ex.body = body{}
	if len(ex.w.header) > maxPooledFields {
		ex.w.header = make(http.Header, 16) // an adopted large map does not stay in the pool
	} else {
		clear(ex.w.header)
	}
	ex.w.c, ex.w.req = nil, nil
	ex.bw.Reset(nil)
	s.reqs.Put(ex)
}

// writeBareError answers a head that could not be made into a request, and closes.
func (ex *exchange) writeBareError(c *conn, code int) {
	ex.bw.Reset(c.nc)
	b := appendStatus(ex.bw.AvailableBuffer(), true, code)
	b = append(b, "Content-Length: 0\r\nConnection: close\r\n\r\n"...)
	_, _ = ex.bw.Write(b)
	_ = ex.bw.Flush()
}

// body is a request body read from the connection through the guard, which has already
// checked its framing.
type body struct {
	c       *conn
	ex      *exchange
	left    int64         // bytes still to come of a body with a length
	chunked io.Reader     // decodes a chunked body; nil for a body with a length
	expect  bool          // the client waits for 100 Continue before it sends the body
	eof     bool          // read to its end
	err     error         // the read error that ended it early
	closed  bool          // the handler is done with it
	br      *bufio.Reader // under chunked
}

func (b *body) reset(c *conn, ex *exchange, length int64) {
	*b = body{c: c, ex: ex, left: length}
	if length < 0 {
		b.br = bufio.NewReaderSize(c.nc, 512)
		b.chunked = httputil.NewChunkedReader(b.br)
	}
}

// errBodyClosed is a read after the handler returned.
var errBodyClosed = errors.New("http: invalid Read on closed Body")

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	b.sendContinue()
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if b.chunked != nil {
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			// The chunked reader stops at the last chunk; the trailer section follows, which
			// the guard has checked.
			if err = b.readTrailer(); err == nil {
				b.eof = true
				return n, io.EOF
			}
		}
	} else {
		n, err = b.c.nc.Read(p[:min(int64(len(p)), b.left)])
		b.left -= int64(n)
		if b.left == 0 {
			b.eof = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// sendContinue tells a client that waits for 100 Continue to send the body, on the first
// read of it, unless the handler answered first.
func (b *body) sendContinue() {
	if b.expect {
		b.expect = false
		if !b.ex.w.wroteHeader {
			_, _ = b.c.nc.Write(continueLine)
		}
	}
}

// SpliceSource returns the client's socket and what is left of a body with a length when
// none of it is buffered in user space, so that the rest may be moved by the kernel
// (splice(2)); Spliced must then report what was moved. ok is false otherwise, and Read
// goes on as usual: a chunked body, bytes the guard read with the head, a TLS connection.
func (b *body) SpliceSource() (src *net.TCPConn, left int64, ok bool) {
	if b.closed || b.eof || b.err != nil || b.chunked != nil || b.left <= 0 {
		return nil, 0, false
	}
	gc := h1.From(b.c.nc)
	if gc == nil {
		return nil, 0, false
	}
	under, gl, ok := gc.DirectBody()
	if !ok || gl != b.left {
		return nil, 0, false
	}
	if src, ok = splice.TCPConn(under); !ok {
		return nil, 0, false
	}
	b.sendContinue()
	return src, b.left, true
}

// Spliced records n body bytes moved from the socket SpliceSource returned, and the read
// error that stopped the move early.
func (b *body) Spliced(n int64, err error) {
	if gc := h1.From(b.c.nc); gc != nil {
		gc.DirectRead(n)
	}
	b.left -= n
	switch {
	case b.left <= 0:
		b.left = 0
		b.eof = true
	case err != nil:
		b.err = err
	}
}

// readTrailer reads the trailer section up to its empty line into the request's Trailer,
// as net/http's server does: announced fields fill the keys the head named, others are added.
func (b *body) readTrailer() error {
	if end, err := b.br.Peek(2); err == nil && string(end) == "\r\n" {
		_, _ = b.br.Discard(2)
		return nil
	}
	fields, err := textproto.NewReader(b.br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	r := b.ex.req
	if r.Trailer == nil {
		r.Trailer = make(http.Header, len(fields))
	}
	for k, vs := range fields {
		r.Trailer[k] = vs
	}
	return nil
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// Close keeps what is left for discard, which decides whether the connection can go on.
func (b *body) Close() error { return nil }

// discardLimit is how much of an unread body is read away to keep the connection: beyond it,
// closing is cheaper, as net/http decides.
const discardLimit = 256 << 10

// discard reads away what the handler left of the body; false when the connection cannot
// carry another request.
func (b *body) discard() bool {
	if b.c == nil || b.eof {
		return true
	}
	defer func() { b.closed = true }()
	if b.err != nil || b.expect {
		return false // broken, or the client never sent it
	}
	n, err := io.CopyN(io.Discard, b, discardLimit)
	return n < discardLimit && err == io.EOF
}
