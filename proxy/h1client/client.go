package h1client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/internal/rawsock"
	"github.com/veloflux/veloflux/proxy/h1"
	"github.com/veloflux/veloflux/proxy/splice"
)

// Options tune a Transport. Zero fields take the default named in their comment.
type Options struct {
	// DialTimeout bounds a TCP connect. Default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response head once the request head is
	// written; on a connection that carried another request less than a 32nd of it before,
	// the bound of that one's head stands, at least 31/32 of it. Default 30s.
	ResponseHeaderTimeout time.Duration
	// IdleTimeout closes a pooled connection idle this long. Default 90s.
	IdleTimeout time.Duration
	// MaxIdlePerHost keeps at most this many idle connections per backend address. Default 64.
	MaxIdlePerHost int
	// ExpectContinueTimeout is how long a request with "Expect: 100-continue" waits for the
	// backend's 100 Continue (or its final answer) before its body is sent anyway. Default 1s.
	ExpectContinueTimeout time.Duration
	// NoSplice turns the kernel copy of long bodies off: every body goes through a buffer.
	// Default false: on Linux, bodies of at least splice.MinLength bytes with a length move
	// between plain TCP sockets by splice(2).
	NoSplice bool
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 64
	}
	if o.ExpectContinueTimeout <= 0 {
		o.ExpectContinueTimeout = time.Second
	}
	return o
}

// bufSize is the read and write buffer of a connection: a response head of a usual size
// arrives in one read, and a request head is written in one.
const bufSize = 4 << 10

// Transport is the pool of connections to every backend address it has been asked for.
type Transport struct {
	// DialContext opens connections when set (before the first request): tests inject
	// failures through it. Nil: a net.Dialer with Options.DialTimeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Got1xxResponse receives each interim response but 101 (100 Continue, 103 Early Hints)
	// before the final one, on the request's goroutine, as net/http's ClientTrace hook of the
	// same name does; an error ends the request with it. Set before the first request. Nil:
	// interim responses go to the request context's httptrace.ClientTrace when it has the
	// hook, and are skipped otherwise.
	Got1xxResponse func(req *http.Request, code int, header http.Header) error

	opt    Options
	dialer net.Dialer

	mu    sync.Mutex
	idle  map[string][]*conn // by host:port, most recently used last
	nidle int

	splice splice.Copier // moves large bodies of known length from socket to socket
}

// New returns a Transport with opt's settings.
func New(opt Options) *Transport {
	opt = opt.withDefaults()
	return &Transport{
		opt:    opt,
		dialer: net.Dialer{Timeout: opt.DialTimeout, KeepAlive: 30 * time.Second},
		idle:   make(map[string][]*conn),
	}
}

// conn is one backend connection. It belongs to one request at a time, or to the idle list.
type conn struct {
	t    *Transport
	addr string
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	// timer closes the connection when it stays idle for IdleTimeout. It is set when the
	// connection goes idle with no timer pending, and left running while the connection
	// serves a request: when it fires, it closes the connection only if it has been idle
	// for IdleTimeout by then, and is set again for the rest otherwise. That spares two
	// timer updates per request, for a connection that carries one after another.
	timer *time.Timer
	// interrupt makes whatever the connection is doing return (a deadline in the past):
	// made once, for the request context's end to call.
	interrupt func()
	idle      bool  // in the idle list; guarded by t.mu
	idleAt    int64 // when it last went idle, in unix nanoseconds; guarded by t.mu
	// headBy is the read deadline in force, in unix nanoseconds, when it was set for a
	// response head (armHead); 0 when another one is, or none.
	headBy  int64
	pending bool // timer is set; guarded by t.mu
	used    bool // carried a request before the current one
}

// errClosedIdle marks a reused connection that the backend had closed before it answered.
var errClosedIdle = errors.New("backend closed an idle connection")

// RoundTrip sends req to req.URL.Host over HTTP/1.1 and returns the response, whose body
// reads from the connection; the caller must close it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.RoundTripWith(req, nil)
}

// RoundTripWith is RoundTrip with fields written after req's header, as they are: complete
// field lines, each ending in CRLF, that the caller vouches are valid and that req.Header
// does not hold too. A field the caller writes on every request (the proxy's traceparent)
// then needs no header map entry, no allocation and no check of its bytes.
func (t *Transport) RoundTripWith(req *http.Request, fields []byte) (*http.Response, error) {
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "80")
	}
	ctx := req.Context()
	var body *countingBody // nil without a body: nothing to count
	if req.Body != nil && req.Body != http.NoBody {
		body = &countingBody{rc: req.Body}
	}
	for {
		c, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(ctx, req, body, fields)
		if err == nil {
			return resp, nil
		}
		c.close()
		// A reused connection that the backend closed while it was idle: nothing reached it,
		// so the request may go again on a new connection.
		if errors.Is(err, errClosedIdle) && (body == nil || body.n == 0) && ctx.Err() == nil {
			continue
		}
		if errors.Is(err, errClosedIdle) {
			err = io.ErrUnexpectedEOF
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("backend %s: %w", addr, ctx.Err())
		}
		return nil, err
	}
}

// get returns an idle connection to addr, or a new one.
func (t *Transport) get(ctx context.Context, addr string) (*conn, error) {
	t.mu.Lock()
	if l := t.idle[addr]; len(l) > 0 {
		c := l[len(l)-1]
		l[len(l)-1] = nil
		t.idle[addr] = l[:len(l)-1]
		t.nidle--
		c.idle = false
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()
	dial := t.DialContext
	if dial == nil {
		dial = t.dialer.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	nc = rawsock.Wrap(nc)
	c := &conn{t: t, addr: addr, nc: nc, br: bufio.NewReaderSize(nc, bufSize), bw: bufio.NewWriterSize(nc, bufSize)}
	c.interrupt = func() { _ = c.nc.SetDeadline(aLongTimeAgo) }
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	return c, nil
}

// put returns c to the idle list, or closes it when the list is full.
func (t *Transport) put(c *conn) {
	c.used = true
	t.mu.Lock()
	l := t.idle[c.addr]
	if len(l) >= t.opt.MaxIdlePerHost {
		t.mu.Unlock()
		c.close()
		return
	}
	c.idle = true
	c.idleAt = time.Now().UnixNano()
	t.idle[c.addr] = append(l, c)
	t.nidle++
	arm := !c.pending
	c.pending = true
	t.mu.Unlock()
	if arm {
		c.timer.Reset(t.opt.IdleTimeout)
	}
}

// expire closes c if it has been idle for IdleTimeout when its timer fires, and sets the
// timer for the rest of that time if it went idle since.
func (c *conn) expire() {
	t := c.t
	t.mu.Lock()
	if !c.idle {
		c.pending = false // put sets it again
		t.mu.Unlock()
		return
	}
	if left := time.Duration(c.idleAt + int64(t.opt.IdleTimeout) - time.Now().UnixNano()); left > 0 {
		t.mu.Unlock()
		c.timer.Reset(left)
		return
	}
	c.pending = false
	l := t.idle[c.addr]
	for i, x := range l {
		if x == c {
			t.idle[c.addr] = append(l[:i], l[i+1:]...)
			l[len(l)-1] = nil
			break
		}
	}
	if len(t.idle[c.addr]) == 0 {
		delete(t.idle, c.addr)
	}
	t.nidle--
	c.idle = false
	t.mu.Unlock()
	c.close()
}

func (c *conn) close() {
	c.timer.Stop()
	_ = c.nc.Close()
}

// CloseIdleConnections closes every idle connection. Connections in use close when their
// responses end, as usual.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var all []*conn
	for addr, l := range t.idle {
		for _, c := range l {
			c.idle = false
			all = append(all, c)
		}
		delete(t.idle, addr)
	}
	t.nidle = 0
	t.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}

// SplicedBytes is the number of body bytes, request and response bodies together, that the
// kernel moved between the client's and the backend's sockets (splice(2)) rather than a copy
// through a buffer.
func (t *Transport) SplicedBytes() int64 { return t.splice.Bytes() }

// IdleConns is the number of pooled idle connections over every backend.
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nidle
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// max1xx bounds the interim responses a request waits through, as net/http's Transport does.
const max1xx = 5

func (c *conn) roundTrip(ctx context.Context, req *http.Request, body *countingBody, fields []byte) (*http.Response, error) {
	// The context's end interrupts whatever the connection is doing, the body's reads included.
	stop := AfterFunc(ctx, c.interrupt)
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	// With "Expect: 100-continue" the body waits for the backend's go-ahead, so a backend that
	// refuses the request (401, 413, 417) does so before the client sends it.
	held := hasBody && expectsContinue(req.Header)
	if err := c.writeRequest(req, fields, body, !held); err != nil {
		stop()
		return nil, c.classify(err, true)
	}
	if held {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.t.opt.ExpectContinueTimeout))
		c.headBy = 0
		if _, err := c.br.Peek(1); err != nil {
			if !isTimeout(err) || ctx.Err() != nil {
				stop()
				return nil, c.classify(err, true)
			}
			// The backend stays silent, as one that ignores the expectation does: send it.
			held = false
			if err := c.sendBody(req, body); err != nil {
				stop()
				return nil, c.classify(err, false)
			}
		}
	}
	c.armHead()
	if ctx.Err() != nil { // ended before the deadline was set, which undid its interruption
		stop()
		return nil, c.classify(ctx.Err(), false)
	}
	var resp *http.Response
	var head *simpleResponse
	for n1xx := 0; ; n1xx++ {
		var err error
		resp, head, err = readResponse(c.br, req)
		if err != nil {
			stop()
			return nil, c.classify(err, c.br.Buffered() == 0)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx interim responses (100 Continue, 103 Early Hints) carry no body.
		if n1xx == max1xx {
			stop()
			return nil, fmt.Errorf("backend %s: %w", c.addr, errTooMany1xx)
		}
		if err := c.t.interim(req, resp); err != nil {
			stop()
			return nil, err
		}
		if held && resp.StatusCode == http.StatusContinue {
			held = false
			if err := c.sendBody(req, body); err != nil {
				stop()
				return nil, c.classify(err, false)
			}
		}
	}
	// The head's deadline must not cut a body that is still to come off. A body already whole
	// in the buffer is read without the socket, and the next request sets its own deadline
	// before it reads: leaving this one spares a timer update per request.
	if resp.StatusCode == http.StatusSwitchingProtocols || !bodyBuffered(c.br, resp.Body) {
		_ = c.nc.SetReadDeadline(time.Time{})
		c.headBy = 0
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the upgraded protocol; it never returns to the pool.
		resp.Body = &upgradeBody{c: c, stop: stop}
		return resp, nil
	}
	// A final answer to a request whose body was held back leaves the backend free to read
	// that body or not: the connection cannot carry another request.
	resp.Body = &respBody{c: c, rc: resp.Body, head: head, stop: stop, reuse: !resp.Close && !req.Close && !held}
	return resp, nil
}

var errTooMany1xx = errors.New("too many 1xx interim responses")

// armHead sets the read deadline of a response head, ResponseHeaderTimeout from now, unless
// the one in force was set for the previous response's head less than a 32nd of that time
// ago: the head then gets at least 31/32 of ResponseHeaderTimeout, and a connection that
// carries request after request spares a timer update on each.
func (c *conn) armHead() {
	timeout := c.t.opt.ResponseHeaderTimeout
	by := time.Now().Add(timeout).UnixNano()
	if c.headBy != 0 && c.headBy >= by-int64(timeout/32) {
		return
	}
	_ = c.nc.SetReadDeadline(time.Unix(0, by))
	c.headBy = by
}

// bodyBuffered reports whether reading body to its end takes nothing from the socket.
func bodyBuffered(br *bufio.Reader, body io.ReadCloser) bool {
	if body == http.NoBody {
		return true
	}
	lb, ok := body.(*lengthBody)
	return ok && int64(br.Buffered()) >= lb.left
}

// interim hands a 1xx response to whoever asked for them.
func (t *Transport) interim(req *http.Request, resp *http.Response) error {
	if t.Got1xxResponse != nil {
		return t.Got1xxResponse(req, resp.StatusCode, resp.Header)
	}
	if tr := httptrace.ContextClientTrace(req.Context()); tr != nil && tr.Got1xxResponse != nil {
		return tr.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header))
	}
	return nil
}

func expectsContinue(h http.Header) bool {
	v := h["Expect"]
	return len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "100-continue")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classify turns a failure into the error RoundTrip reports. nothing says that no byte of a
// response arrived: on a reused connection, that is a backend that closed it while idle.
func (c *conn) classify(err error, nothing bool) error {
	if c.used && nothing && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
		return errClosedIdle
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("backend %s: %w", c.addr, err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "read" || op.Op == "write") && !op.Timeout()
}

// errBadHeader refuses a request whose header could end the head early on the backend.
var errBadHeader = errors.New("invalid header field in request")

// writeRequest writes req's head, with fields after its header, and streams its body when
// withBody says so (sendBody does otherwise, later): with its length when known, chunked
// otherwise.
func (c *conn) writeRequest(req *http.Request, fields []byte, body *countingBody, withBody bool) error {
	w := c.bw
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return errBadHeader
	}
	// The head is appended in the writer's free space and handed to it in one Write (a head
	// larger than that space is appended to a slice of its own).
	b := append(w.AvailableBuffer(), req.Method...)
	b = append(b, ' ')
	if req.URL.Opaque != "" {
		b = append(b, req.URL.Opaque...)
	} else {
		p := req.URL.EscapedPath()
		if p == "" {
			p = "/"
		}
		b = append(b, p...)
	}
	if req.URL.ForceQuery || req.URL.RawQuery != "" {
		b = append(b, '?')
		b = append(b, req.URL.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // the framing below owns them
		case "User-Agent":
			if len(vs) == 1 && vs[0] == "" {
				continue // set empty to say "none", as with net/http's Transport
			}
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return errBadHeader
		}
		for _, v := range vs {
			if !h1.ValidFieldValue(v) {
				return errBadHeader
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, fields...)
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && req.ContentLength > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.ContentLength, 10)
		b = append(b, "\r\n"...)
	case hasBody && req.ContentLength < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		b = appendTrailerNames(b, req.Trailer)
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	_, _ = w.Write(b)
	if withBody && hasBody && req.ContentLength != 0 {
		if err := c.writeBody(body, req.ContentLength, req.Trailer); err != nil {
			return err
		}
	}
	return w.Flush()
}

// sendBody streams the body of a request whose head went first.
func (c *conn) sendBody(req *http.Request, body *countingBody) error {
	if err := c.writeBody(body, req.ContentLength, req.Trailer); err != nil {
		return err
	}
	return c.bw.Flush()
}

// appendTrailerNames announces the trailer fields a chunked body ends with, as net/http's
// Transport does; the values are read once the body has ended.
func appendTrailerNames(b []byte, trailer http.Header) []byte {
	first := true
	for k := range trailer {
		if !trailerAllowed(k) {
			continue
		}
		if first {
			b = append(b, "Trailer: "...)
			first = false
		} else {
			b = append(b, ", "...)
		}
		b = append(b, k...)
	}
	if !first {
		b = append(b, "\r\n"...)
	}
	return b
}

// trailerAllowed refuses the fields that frame or route a message, which a trailer must not
// carry (RFC 9110 section 6.5.1), and names that could end the section early.
func trailerAllowed(k string) bool {
	switch k {
	case "Content-Length", "Transfer-Encoding", "Trailer", "Host", "Connection", "Te", "Content-Type":
		return false
	}
	return httpguts.ValidHeaderFieldName(k)
}

// writeBody streams the request body: exactly length bytes, or chunked (length -1) and ended
// by trailer's fields, read after the body's end as the server that read them fills them in.
// A long body with a length moves from the client's socket to the backend's by kernel copy
// when the body can say where it comes from (SpliceSource).
func (c *conn) writeBody(body *countingBody, length int64, trailer http.Header) error {
	w := c.bw
	if length >= splice.MinLength && splice.Available && !c.t.opt.NoSplice {
		if done, err := c.spliceBody(body, length); done {
			return err
		}
	}
	if length >= 0 {
		n, err := io.Copy(w, io.LimitReader(body, length))
		if err == nil && n < length {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	var buf [bufSize]byte
	for {
		n, err := body.Read(buf[:])
		if n > 0 {
			w.WriteString(strconv.FormatInt(int64(n), 16))
			w.WriteString("\r\n")
			w.Write(buf[:n])
			w.WriteString("\r\n")
			// A streamed body (a client sending as it goes) reaches the backend as it comes.
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			w.WriteString("0\r\n")
			for k, vs := range trailer {
				if !trailerAllowed(k) {
					continue
				}
				for _, v := range vs {
					if h1.ValidFieldValue(v) {
						w.WriteString(k)
						w.WriteString(": ")
						w.WriteString(v)
						w.WriteString("\r\n")
					}
				}
			}
			_, err = w.WriteString("\r\n")
			return err
		}
		if err != nil {
			return err
		}
	}
}

// spliceBody moves the request body to the backend by kernel copy, after what the client's
// side holds of it in user space (the start of it, read with the head) went through the
// buffer; done is false when the body cannot be spliced and nothing of it was read.
func (c *conn) spliceBody(body *countingBody, length int64) (done bool, err error) {
	src, ok := body.rc.(spliceSource)
	if !ok {
		return false, nil
	}
	dst, ok := splice.TCPConn(c.nc)
	if !ok {
		return false, nil
	}
	var buf [bufSize]byte
	sent := int64(0)
	for {
		sock, left, ok := src.SpliceSource()
		if ok && left == length-sent {
			if err := c.bw.Flush(); err != nil {
				return true, err
			}
			n, rerr, werr := c.t.splice.Copy(dst, sock, left)
			body.n += n
			src.Spliced(n, rerr)
			if werr != nil {
				return true, werr
			}
			return true, rerr
		}
		if sent >= 4*bufSize || sent == length {
			// Not to be spliced after all: what was read is sent; the caller's copy does
			// the rest.
			if sent == length {
				return true, nil
			}
			n, err := io.Copy(c.bw, io.LimitReader(body, length-sent))
			if err == nil && n < length-sent {
				err = io.ErrUnexpectedEOF
			}
			return true, err
		}
		n, err := body.Read(buf[:min(int64(len(buf)), length-sent)])
		sent += int64(n)
		if _, werr := c.bw.Write(buf[:n]); werr != nil {
			return true, werr
		}
		if err == io.EOF && sent < length {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return true, err
		}
	}
}

// spliceSource is a request body that can say when the rest of it may be moved from a socket
// by the kernel, and accounts what was moved: the fast server's body, and the proxy's
// wrappers around it.
type spliceSource interface {
	SpliceSource() (src *net.TCPConn, left int64, ok bool)
	Spliced(n int64, err error)
}

// countingBody counts the request body bytes read, so a failed try knows whether the request
// can be sent again.
type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

// respBody reads a response body from its connection, and returns the connection to the pool
// once the body is read to its end.
type respBody struct {
	c     *conn
	rc    io.ReadCloser
	head  *simpleResponse // the pooled head resp came from, if any (Release)
	stop  func() bool
	reuse bool
	done  bool
	err   error
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, b.errOr(io.EOF)
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
		return n, io.EOF
	}
	if err != nil {
		b.err = err
		if ctxErr := b.ctxErr(); ctxErr != nil {
			b.err = ctxErr
		}
		b.finish(false)
		return n, b.err
	}
	return n, nil
}

func (b *respBody) errOr(def error) error {
	if b.err != nil {
		return b.err
	}
	return def
}

// ctxErr is non-nil when the request's context ended, which stops reads through the deadline.
func (b *respBody) ctxErr() error {
	if b.stop() {
		return nil // not fired: the read failed on its own
	}
	return context.Canceled
}

// finish gives the connection back when the body ended cleanly and nothing interrupted it.
func (b *respBody) finish(ok bool) {
	if b.done {
		return
	}
	b.done = true
	fired := !b.stop()
	if ok && b.reuse && !fired && b.c.br.Buffered() == 0 {
		b.c.t.put(b.c)
		return
	}
	b.c.close()
}

func (b *respBody) Close() error {
	b.finish(false)
	return nil
}

// SpliceLeft returns what is left of a body with a length when none of it is buffered and
// its connection is plain TCP, so that SpliceTo may move it by kernel copy; ok is false
// otherwise, and Read goes on as usual (reading what is buffered empties the buffer).
func (b *respBody) SpliceLeft() (left int64, ok bool) {
	lb, isLength := b.rc.(*lengthBody)
	if b.done || !isLength || lb.left <= 0 || b.c.br.Buffered() > 0 || !splice.Available || b.c.t.opt.NoSplice {
		return 0, false
	}
	if _, ok := splice.TCPConn(b.c.nc); !ok {
		return 0, false
	}
	return lb.left, true
}

// SpliceTo moves the rest of the body (SpliceLeft) from the backend's socket to dst by kernel
// copy, and reports what reached dst. A failure of the backend's side is rerr (wrapping
// context.Canceled when the request's context ended, which interrupts the copy as it does
// Read); one of dst's is werr. The connection goes back to the pool when the whole body
// passed, and is closed otherwise.
func (b *respBody) SpliceTo(dst *net.TCPConn) (written int64, rerr, werr error) {
	left, ok := b.SpliceLeft()
	if !ok {
		return 0, errors.New("h1client: body cannot be spliced"), nil
	}
	src, _ := splice.TCPConn(b.c.nc)
	lb := b.rc.(*lengthBody)
	written, rerr, werr = b.c.t.splice.Copy(dst, src, left)
	lb.left -= written
	switch {
	case werr != nil:
		b.finish(false)
	case rerr != nil:
		b.err = rerr
		if ctxErr := b.ctxErr(); ctxErr != nil {
			b.err = ctxErr
		}
		b.finish(false)
		rerr = b.err
	default:
		b.finish(true)
	}
	return written, rerr, werr
}

// upgradeBody is the connection of a 101 response, read through its buffer.
type upgradeBody struct {
	c    *conn
	stop func() bool
	once sync.Once
}

func (b *upgradeBody) Read(p []byte) (int, error)  { return b.c.br.Read(p) }
func (b *upgradeBody) Write(p []byte) (int, error) { return b.c.nc.Write(p) }
func (b *upgradeBody) Close() error {
	b.once.Do(func() { b.stop(); b.c.close() })
	return nil
}
