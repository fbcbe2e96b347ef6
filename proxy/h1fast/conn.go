package h1fast

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/proxy/h1"
)

// readBufSize is the buffer a head is read into; a larger head (up to the guard's limit) gets
// a buffer of its own.
const readBufSize = 4 << 10

// A connection's state, for parking and for Shutdown.
const (
	stActive  int32 = iota // a goroutine serves it
	stPending              // a goroutine serves it, and the client sent something meanwhile
	stParked               // idle in the epoll set, no goroutine
	stWaiting              // idle, its goroutine blocked waiting for the next head
	stClosed
)

// conn is one client connection. While idle it holds only this struct and its socket.
type conn struct {
	s      *Server
	nc     net.Conn     // the guarded connection (h1.From finds the guard)
	fd     int32        // the socket, when the epoll set watches it; -1 otherwise
	state  atomic.Int32 // stActive...
	base   context.Context
	remote string
	idleAt atomic.Int64 // unix nanoseconds the connection went idle, for IdleTimeout of parked ones

	// A request's context is made when its head has been read and ended when its response
	// is out, rather than one context living as long as the connection: a cancellable
	// context that anything has waited on keeps its channel and the functions to run at its
	// end, which every idle connection would otherwise hold.
	mu   sync.Mutex
	cur  *reqContext // the current request's context; nil between requests
	gone bool        // the client went away or the connection closed: ends every context at once

	// fresh is freshNew from accept until the first request's first bytes are read
	// (freshNo), or until a drain's grace for it is over (freshCut). Until then Shutdown
	// leaves the connection open: a client that connected just before a drain may be about
	// to send its request.
	fresh atomic.Int32
}

// conn.fresh's values.
const (
	freshNo  int32 = iota // a request has been read
	freshNew              // nothing read yet; idleAt is the time of accept
	freshCut              // nothing read yet, and a drain's grace is over: the connection closes
)

// newConn prepares a connection accepted by Serve; nil when the server has stopped.
func (s *Server) newConn(nc net.Conn) *conn {
	if h1.From(nc) == nil {
		nc = s.Guard.Wrap(nc)
	}
	c := &conn{s: s, nc: nc, fd: -1, remote: nc.RemoteAddr().String(), base: context.Background()}
	c.fresh.Store(freshNew)
	c.idleAt.Store(time.Now().UnixNano())
	if s.ConnContext != nil {
		c.base = s.ConnContext(c.base, nc)
	}
	if !s.track(c) {
		_ = nc.Close()
		return nil
	}
	return c
}

// requestContext returns the context of a new request: ended when the client goes away, the
// connection closes or the response is out.
func (c *conn) requestContext() context.Context {
	rc := newReqContext(c.base)
	c.mu.Lock()
	prev := c.cur
	c.cur = rc
	gone := c.gone
	c.mu.Unlock()
	if gone {
		rc.end()
	}
	if prev != nil {
		prev.end()
	}
	return rc
}

// endRequest ends the context of the request just served.
func (c *conn) endRequest() {
	c.mu.Lock()
	rc := c.cur
	c.cur = nil
	c.mu.Unlock()
	if rc != nil {
		rc.end()
	}
}

// goneAway ends the current request's context, and any later one's at once.
func (c *conn) goneAway() {
	c.mu.Lock()
	c.gone = true
	rc := c.cur
	c.mu.Unlock()
	if rc != nil {
		rc.end()
	}
}

// buffered reports the bytes of the client's stream the guard holds that no read has handed on.
func buffered(nc net.Conn) int {
	if gc := h1.From(nc); gc != nil {
		return gc.Buffered()
	}
	return 0
}

// socketFD finds the descriptor under the wrappers of a plain TCP connection. A TLS
// connection buffers records above its socket, so readable bytes there say nothing.
func socketFD(nc net.Conn) (int, bool) {
	for {
		switch x := nc.(type) {
		case *tls.Conn:
			return -1, false
		case *net.TCPConn:
			rc, err := x.SyscallConn()
			if err != nil {
				return -1, false
			}
			fd := -1
			if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
				return -1, false
			}
			return fd, fd >= 0
		case interface{ NetConn() net.Conn }:
			nc = x.NetConn()
		default:
			return -1, false
		}
	}
}

// serve runs the connection's requests until it closes, is hijacked or parks.
func (c *conn) serve() {
	for {
		if c.state.Load() == stClosed {
			return
		}
		ex := c.s.reqs.Get().(*exchange)
		keep, hijacked := c.serveOne(ex)
		ex.release(c.s)
		c.endRequest()
		if hijacked {
			c.detach()
			return
		}
		if !keep {
			c.close()
			return
		}
		if buffered(c.nc) > 0 {
			continue // a pipelined request is already here
		}
		if c.park() {
			return
		}
	}
}

// park hands an idle connection to the epoll set and reports whether it did; false when the
// client has already sent more, or nothing can watch the socket (the goroutine then waits
// for the next head itself).
func (c *conn) park() bool {
	if c.fd < 0 || c.s.noKeep.Load() {
		return false
	}
	c.idleAt.Store(time.Now().UnixNano())
	for {
		if c.state.CompareAndSwap(stActive, stParked) {
			c.s.parkStats.Parked.Add(1)
			return true
		}
		if !c.state.CompareAndSwap(stPending, stActive) {
			return false // closed under us
		}
		// Something arrived while the request was served: a request body's bytes already
		// read, or the next request. Look without taking it.
		if c.s.parker.readable(int(c.fd)) {
			return false
		}
	}
}

// wake is called by the epoll set when a parked connection becomes readable.
func (c *conn) wake() {
	c.s.parkStats.Woken.Add(1)
	c.s.dispatch(c)
}

// detach forgets a hijacked connection: its new owner closes it.
func (c *conn) detach() {
	c.state.Store(stClosed)
	if c.fd >= 0 {
		c.s.parker.unwatch(int(c.fd), c)
	}
	c.s.untrack(c)
}

// close ends the connection; only its serving goroutine, or whoever took it out of the
// parked or waiting state, calls it.
func (c *conn) close() {
	c.state.Store(stClosed)
	c.goneAway()
	if c.fd >= 0 {
		c.s.parker.unwatch(int(c.fd), c)
	}
	// Let a final response (a rejection) reach the client before the socket goes, rather than
	// lose it to a reset over unread bytes.
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.Close()
	c.s.untrack(c)
}

// closeIfIdle closes a parked connection, or interrupts a goroutine waiting for a head.
func (c *conn) closeIfIdle() {
	if c.fresh.Load() != freshNo {
		return // only cutFresh closes a connection that has not sent a request
	}
	if c.state.CompareAndSwap(stParked, stClosed) {
		c.state.Store(stActive) // close sets stClosed again; nothing else can take it now
		c.close()
		return
	}
	if c.state.Load() == stWaiting {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// cutFresh closes a connection that has sent nothing since it was accepted at least grace
// before now, and reports whether it did. A connection whose first bytes are read meanwhile
// is left to finish its request.
func (c *conn) cutFresh(now time.Time, grace time.Duration) bool {
	if c.fresh.Load() != freshNew || now.Sub(time.Unix(0, c.idleAt.Load())) < grace {
		return false
	}
	if !c.fresh.CompareAndSwap(freshNew, freshCut) {
		return false
	}
	// Its goroutine waits for the first head (fresh connections are not parked); the read
	// fails, and the connection closes.
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	return true
}

// abort closes the connection whatever it is doing (Close).
func (c *conn) abort() {
	if c.state.CompareAndSwap(stParked, stClosed) {
		c.state.Store(stActive)
		c.close()
		return
	}
	c.goneAway()
	_ = c.nc.Close()
}

// clientGone is called by the epoll set when the client closed its side: a request being
// served sees its context end.
func (c *conn) clientGone() {
	switch c.state.Load() {
	case stActive, stPending:
		c.goneAway()
	case stParked:
		if c.state.CompareAndSwap(stParked, stActive) {
			c.s.dispatch(c) // reads the end of stream and closes
		}
	}
}

// dataArrived is called by the epoll set when the client sent bytes.
func (c *conn) dataArrived() {
	for {
		switch st := c.state.Load(); st {
		case stParked:
			if c.state.CompareAndSwap(stParked, stActive) {
				c.wake()
				return
			}
		case stActive:
			if c.state.CompareAndSwap(stActive, stPending) {
				return
			}
		default:
			return
		}
	}
}

// errBadRequest ends a connection whose head the guard passed but the URL parser refused.
var errBadRequest = errors.New("malformed request")

// readHead reads the next request head into ex and fills ex.req; false when the connection
// ended or timed out before a head.
func (c *conn) readHead(ex *exchange) (ok bool, err error) {
	s := c.s
	ex.buf = s.bufs.Get().(*[readBufSize]byte)[:0]
	waiting := c.state.Load() != stPending && buffered(c.nc) == 0
	if waiting && c.fd < 0 || waiting && s.noKeep.Load() {
		// Nothing watches this connection while idle: its goroutine waits, under IdleTimeout.
		c.state.Store(stWaiting)
		if s.IdleTimeout > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
	} else {
		if waiting {
			// Woken by the epoll set, whose event may be for bytes this goroutine read before
			// it parked (a busy machine can deliver an event that late): until a byte comes
			// the connection is idle, and Shutdown must be able to close it.
			c.state.Store(stWaiting)
		}
		if s.ReadHeaderTimeout > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
		}
	}
	if c.fresh.Load() == freshCut {
		// A drain's grace ended before this goroutine started reading: the deadline it
		// set in the past may have been replaced just now.
		return false, net.ErrClosed
	}
	first := true
	for {
		if len(ex.buf) == cap(ex.buf) {
			grown := make([]byte, len(ex.buf), 2*cap(ex.buf))
			copy(grown, ex.buf)
			ex.putBuf(s)
			ex.buf = grown
		}
		n, rerr := c.nc.Read(ex.buf[len(ex.buf):cap(ex.buf)])
		ex.buf = ex.buf[:len(ex.buf)+n]
		if n > 0 && first {
			first = false
			if c.fresh.Load() != freshNo && !c.fresh.CompareAndSwap(freshNew, freshNo) {
				return false, net.ErrClosed // a drain's grace for it ended first
			}
			ex.start = time.Now()
			if !c.state.CompareAndSwap(stWaiting, stActive) && c.state.Load() == stClosed {
				return false, net.ErrClosed
			}
			// The head's time runs from its first byte: reset it, unless the head is whole
			// already (as it nearly always is), which spares a timer update per request.
			if s.ReadHeaderTimeout > 0 && !bytes.HasSuffix(ex.buf, crlfcrlf) {
				_ = c.nc.SetReadDeadline(ex.start.Add(s.ReadHeaderTimeout))
			}
		}
		if i := bytes.Index(ex.buf, crlfcrlf); i >= 0 {
			if i+4 != len(ex.buf) {
				// The guard hands on one head at a time; bytes after it would be a body the
				// framing below does not expect.
				return false, errBadRequest
			}
			break
		}
		if rerr != nil {
			return false, rerr
		}
	}
	if c.state.Load() == stWaiting {
		c.state.CompareAndSwap(stWaiting, stActive)
	}
	return true, ex.parse(c)
}

var crlfcrlf = []byte("\r\n\r\n")

// originForm fills u from a request target of the usual form, a path of characters that
// need no escaping and an optional query, as url.ParseRequestURI would (Path as written, no
// RawPath), and reports whether it did; any other target is left to url.ParseRequestURI.
// It spares the URL's allocation and most of the parse.
func originForm(target string, u *url.URL) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !pathChar[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

// pathChar holds the bytes url.URL keeps in a path as they are: letters, digits and
// "-_.~$&+,/:;=@".
var pathChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// serveOne reads one request, runs the handler and finishes the response. keep says the
// connection may carry another request.
func (c *conn) serveOne(ex *exchange) (keep, hijacked bool) {
	s := c.s
	ok, err := c.readHead(ex)
	if !ok {
		return false, false
	}
	if err != nil {
		code := http.StatusBadRequest
		if err == errExpectation {
			code = http.StatusExpectationFailed
		}
		ex.writeBareError(c, code)
		return false, false
	}
	// Only a body is read before the next head, whose reading sets its own deadline: a
	// request without one leaves the head's in place, which spares a timer update.
	switch {
	case ex.req.Body == http.NoBody:
	case s.ReadTimeout > 0:
		_ = c.nc.SetReadDeadline(ex.start.Add(s.ReadTimeout))
	case s.ReadHeaderTimeout > 0:
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	ex.w.closeAfter = ex.req.Close || s.noKeep.Load()
	if !c.run(ex) {
		return false, false
	}
	if ex.w.hijacked {
		return false, true
	}
	ex.w.finish()
	if ex.w.closeAfter || ex.w.broken {
		return false, false
	}
	return ex.body.discard(), false
}

// run calls the handler; false when it panicked.
func (c *conn) run(ex *exchange) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				c.s.Logger.Error("panic serving a request", "client", c.remote, "panic", v, "stack", string(debug.Stack()))
			}
		}
	}()
	c.s.Handler.ServeHTTP(&ex.w, ex.req)
	return true
}

// parse fills the request from the head in buf: one string for the whole head, and every
// method, target, key and value a slice of it.
func (ex *exchange) parse(c *conn) error {
	head := string(ex.buf[:len(ex.buf)-2])
	ex.putBuf(c.s)
	line, rest, _ := strings.Cut(head, "\r\n")
	method, line, _ := strings.Cut(line, " ")
	target, proto, _ := strings.Cut(line, " ")
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return errBadRequest
	}
	r := ex.newRequest(c)
	r.Method = internMethod(method)
	r.Proto, r.ProtoMajor, r.ProtoMinor = proto, major, minor
	r.RequestURI = target
	if target == "*" {
		ex.url = url.URL{Path: "*"}
		r.URL = &ex.url
	} else if originForm(target, &ex.url) {
		r.URL = &ex.url
	} else {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return errBadRequest
		}
		r.URL = u
	}
	h := ex.header
	vals := ex.vals[:0]
	for rest != "" {
		var l string
		l, rest, _ = strings.Cut(rest, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		k = h1.CanonicalKey(k)
		v = h1.TrimOWS(v)
		if prior, ok := h[k]; ok {
			h[k] = append(prior, v)
			continue
		}
		if len(vals) < cap(vals) {
			vals = append(vals, v)
			h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		} else {
			h[k] = []string{v}
		}
	}
	r.Header = h
	r.Host = r.URL.Host
	if r.Host == "" {
		if hv := h["Host"]; len(hv) > 0 {
			r.Host = hv[0]
		}
	}
	delete(h, "Host")
	if !httpguts.ValidHostHeader(r.Host) {
		return errBadRequest // net/http's server refuses it too
	}
	r.Close = closing(major, minor, h)
	if te := h["Transfer-Encoding"]; len(te) > 0 {
		// The guard allows nothing but a single "chunked" on HTTP/1.1.
		delete(h, "Transfer-Encoding")
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
		ex.body.reset(c, ex, -1)
		r.Body = &ex.body
		if tr := h["Trailer"]; len(tr) > 0 {
			if err := announceTrailer(r, tr); err != nil {
				return err
			}
			delete(h, "Trailer")
		}
	} else if cl := h["Content-Length"]; len(cl) > 0 {
		n, err := parseLength(cl[0])
		if err != nil {
			return errBadRequest
		}
		r.ContentLength = n
		if n > 0 {
			ex.body.reset(c, ex, n)
			r.Body = &ex.body
		} else {
			r.Body = http.NoBody
		}
	} else {
		r.Body = http.NoBody
	}
	if ev := h["Expect"]; len(ev) > 0 {
		// As net/http's server: 100-continue is handled here, and any other expectation
		// cannot be met (417).
		if len(ev) != 1 || !strings.EqualFold(ev[0], "100-continue") {
			return errExpectation
		}
		if major == 1 && minor >= 1 && r.Body != http.NoBody {
			ex.body.expect = true
		}
		// The field stays, as with net/http: a proxy passes it on, so that the backend decides
		// whether the body is welcome.
	}
	return nil
}

// announceTrailer gives a chunked request the Trailer map its head announces, keys without
// values until the body's end, as net/http's server does; a field that frames the message
// cannot be a trailer.
func announceTrailer(r *http.Request, announced []string) error {
	var bad bool
	for _, v := range announced {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			switch k {
			case "":
				continue
			case "Transfer-Encoding", "Trailer", "Content-Length":
				bad = true
			}
			if r.Trailer == nil {
				r.Trailer = make(http.Header)
			}
			r.Trailer[k] = nil
		}
	}
	if bad {
		return errBadRequest
	}
	return nil
}

// errExpectation answers an Expect field other than 100-continue.
var errExpectation = errors.New("unsupported expectation")

var chunkedTE = []string{"chunked"}

func closing(major, minor int, h http.Header) bool {
	conn := h["Connection"]
	if major == 1 && minor == 0 {
		return !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	}
	return httpguts.HeaderValuesContainsToken(conn, "close")
}

func parseLength(s string) (int64, error) {
	n, ok := h1.ParseLength(s)
	if !ok {
		return 0, errBadRequest
	}
	return n, nil
}

// internMethod returns the constant for a common method, so the head string is not kept
// alive by it beyond the request.
func internMethod(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodPatch:
		return http.MethodPatch
	}
	return m
}
