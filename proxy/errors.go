package proxy

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/veloflux/veloflux/internal/localerr"
	"github.com/veloflux/veloflux/proxy/h1"
)

// Errors the proxy answers itself. Each maps to one status and one short public message;
// the Go error of a backend failure never reaches the client.
var (
	errDraining    = errors.New("this node is draining; retry on another")
	errRateLimited = errors.New("too many requests from your address")
	errBadUpgrade  = errors.New("only the websocket upgrade is supported")
	errNoRoute     = errors.New("no route for this host and path")
	errNoBackend   = errors.New("no healthy backend for this route")
	errBackend     = errors.New("the backend failed to answer")
	errTimeout     = errors.New("the backend did not answer in time")
	errNoWebSocket = errors.New("this backend does not support WebSocket")
	errBadBody     = errors.New("the request body is malformed")
	// errH2ConnectionField refuses an HTTP/2 request with a connection-specific field.
	errH2ConnectionField = errors.New("HTTP/2 requests must not carry connection-specific fields")
	errBodyTimeout       = errors.New("the request body did not arrive in time")
	errOverloaded        = errors.New("this node is out of resources; retry")
)

// statusClientClosed records requests whose client went away before the whole answer was
// sent (nginx's 499), whatever status went out with the head.
const statusClientClosed = 499

// handleError is the reverse proxy's ErrorHandler: it maps a transport failure to 502
// (backend failed or cannot take a WebSocket), 504 (backend too slow) or, when the client is
// gone, records 499.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	st.err = err
	switch {
	case st.body.failure() != nil:
		// First: net/http cancels the request's context when a read of the client's
		// connection fails, so a broken body would otherwise pass for a client gone away.
		p.clientBodyFailed(w, st)
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		st.rw.code = statusClientClosed
	case errors.Is(err, errNoWebSocket):
		p.writeError(w, st, http.StatusBadGateway, errNoWebSocket)
	case localerr.Is(err): // 503 like a draining node: another node may well have resources
		p.writeError(w, st, http.StatusServiceUnavailable, errOverloaded)
	case errors.Is(err, errAtCapacity):
		p.writeError(w, st, http.StatusServiceUnavailable, errAtCapacity)
	case isTimeout(err):
		p.writeError(w, st, http.StatusGatewayTimeout, errTimeout)
	default:
		p.writeError(w, st, http.StatusBadGateway, errBackend)
	}
}

// clientBodyFailed answers a request whose body could not be read from the client: 400 for
// a body that breaks its framing or ends early, 408 when it stopped arriving, and only a 499
// record when the connection is gone. None of it is the backend's fault, and the connection closes, since
// its byte stream can no longer be trusted to be at a request boundary.
func (p *Proxy) clientBodyFailed(w http.ResponseWriter, st *reqState) {
	err := st.body.failure()
	st.err = err
	askClose(w.Header(), st.protoMajor)
	switch {
	case isTimeout(err):
		p.writeError(w, st, http.StatusRequestTimeout, errBodyTimeout)
	case errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
		st.rw.code = statusClientClosed
	default:
		p.metrics.rejections.WithLabelValues(protocolLabel(st.protoMajor), "malformed body").Inc()
		p.writeError(w, st, http.StatusBadRequest, errBadBody)
	}
}

// protocolLabel names a request's protocol for the rejection metric.
func protocolLabel(major int) string {
	if major == 2 {
		return "http2"
	}
	return "http1"
}

// reject answers the synthetic request that stands for a head the HTTP/1 guard refused.
func (p *Proxy) reject(w http.ResponseWriter, st *reqState, rej h1.Rejection) {
	st.refused = true
	w.Header().Set("Connection", "close")
	p.metrics.connsClosed.WithLabelValues("rejected").Inc()
	p.writeError(w, st, rej.Status, errors.New(strings.ToLower(rej.Reason[:1])+rej.Reason[1:]))
}

// askClose asks the client to close its connection after this response: HTTP/1 closes it,
// and net/http's HTTP/2 server turns the field into a GOAWAY. HTTP/3 has no such field (a
// response carrying it is malformed); its connections end with GOAWAY when the node drains.
func askClose(h http.Header, protoMajor int) {
	if protoMajor < 3 {
		h.Set("Connection", "close")
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeError answers with status and a one-line body naming the request ID, which is also in
// the access log, so an operator can find what happened.
func (p *Proxy) writeError(w http.ResponseWriter, st *reqState, status int, msg error) {
	if st.err == nil {
		st.err = msg
	}
	h := w.Header()
	h.Del("Set-Cookie")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Request-Id", st.reqID)
	if status == http.StatusServiceUnavailable && errors.Is(msg, errDraining) {
		askClose(h, st.protoMajor)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(strconv.Itoa(status) + " " + http.StatusText(status) + ": " + msg.Error() +
		" (request id " + st.reqID + ")\n"))
}

// finish records metrics and the access log line of a request.
func (p *Proxy) finish(st *reqState, r *http.Request) {
	code := st.rw.code
	switch {
	case code == 0 && st.switched:
		code = http.StatusSwitchingProtocols
	case code == 0:
		code = http.StatusOK // the handler wrote nothing: net/http sends 200
	}
	if code != statusClientClosed && !st.switched &&
		(st.clientGone || st.rw.failed || st.respBody.canceled && r.Context().Err() != nil) {
		// The head went out, the body did not: the client did not get the answer, and a 200
		// in the log would say it did. The status sent stays in the error field.
		if st.err == nil {
			st.err = errors.New("the client went away during the response body; status " + strconv.Itoa(code) + " was sent")
		}
		code = statusClientClosed
	}
	poolName := ""
	if st.pool != nil {
		poolName = st.pool.name
	}
	elapsed := time.Since(st.start)
	method, url, host := r.Method, r.RequestURI, r.Host
	if st.refused {
		method, url, host = "", "", "" // the synthetic request's, not the client's
	}
	if st.pool != nil {
		p.metrics.observePool(method, code, st.pool, elapsed, st.exemplarTraceID())
	} else {
		p.metrics.observe(method, code, poolName, elapsed, st.exemplarTraceID())
	}
	if st.geo {
		p.metrics.geoRequests.WithLabelValues(countryLabel(st.country), st.servedRegion()).Inc()
	}
	if p.tracing != nil {
		defer p.tracing.endRequest(st, r, code)
	}
	if st.set == nil || !st.set.cfg.AccessLog || !p.access.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("url", url),
		slog.String("host", host),
		slog.String("client_ip", st.client.String()),
		slog.Int("status_code", code),
		slog.Float64("duration", elapsed.Seconds()),
		slog.String("request_id", st.reqID),
		slog.String("pool", poolName),
		slog.Int64("bytes", st.rw.bytes),
	}
	if st.backend != nil {
		attrs = append(attrs, slog.String("backend", st.backend.address))
	}
	if st.err != nil {
		attrs = append(attrs, slog.String("error", st.err.Error()))
	}
	if st.sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", st.sc.TraceID().String()), slog.String("span_id", st.sc.SpanID().String()))
	}
	p.access.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
}

// statusWriter remembers the status and size of a response. Unwrap lets
// http.ResponseController reach Flush and Hijack on the real writer.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
	// closeUnless101 closes the connection after any final response but 101 Switching
	// Protocols (a refused HTTP/1 upgrade).
	closeUnless101 bool
	// held are the fields the proxy set for the final response before the backend answered
	// (a sticky cookie, Connection: close). Both forwarding paths write a backend's 1xx with
	// what the header map holds and clear it afterwards: held keeps those fields out of the
	// interim response and puts them back for the final one. The usual one or two fit in the
	// array, so holding them allocates nothing; more go to heldMore.
	held     [4]heldField
	nheld    int
	heldMore http.Header
	interim  bool // an interim response went out, clearing the header map
	failed   bool // a write or flush to the client failed
}

type heldField struct {
	key  string
	vals []string
}

func (w *statusWriter) reset(rw http.ResponseWriter) { *w = statusWriter{ResponseWriter: rw} }

// hold records the fields set so far as the final response's, before the request goes to a
// backend that may answer 1xx first.
func (w *statusWriter) hold() {
	h := w.Header()
	if len(h) > len(w.held) {
		w.heldMore = h.Clone()
		return
	}
	for k, vv := range h {
		w.held[w.nheld] = heldField{k, vv[:len(vv):len(vv)]}
		w.nheld++
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		h := w.Header()
		for _, f := range w.held[:w.nheld] {
			delete(h, f.key)
		}
		for k := range w.heldMore {
			delete(h, k)
		}
		w.interim = true
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.interim {
		h := w.Header()
		for _, f := range w.held[:w.nheld] {
			h[f.key] = append(f.vals, h[f.key]...)
		}
		for k, vv := range w.heldMore {
			h[k] = append(vv[:len(vv):len(vv)], h[k]...)
		}
		w.interim, w.nheld, w.heldMore = false, 0, nil
	}
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	if w.closeUnless101 && code >= 200 {
		w.Header().Set("Connection", "close")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	if err != nil {
		w.failed = true
	}
	return n, err
}

// FlushError is what http.ResponseController's Flush calls first; a failure is noted as
// Write's are. Every server the proxy runs under has FlushError on its writer.
func (w *statusWriter) FlushError() error {
	var err error
	if f, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		err = f.FlushError()
	} else {
		err = http.NewResponseController(w.ResponseWriter).Flush()
	}
	if err != nil {
		w.failed = true
	}
	return err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// newRequestID returns 32 hex digits. IDs need to be unique, not secret, so the fast
// per-thread ChaCha8 generator of math/rand/v2 is enough.
func newRequestID() string {
	const hexdigits = "0123456789abcdef"
	var b [32]byte
	for half := 0; half < 2; half++ {
		v := rand.Uint64()
		for i := 0; i < 16; i++ {
			b[half*16+i] = hexdigits[v&0xf]
			v >>= 4
		}
	}
	return string(b[:])
}

// validRequestID keeps a request ID from a trusted peer when it is short printable ASCII,
// so it cannot inject into logs or headers.
func validRequestID(id string) string {
	if len(id) == 0 || len(id) > 128 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return ""
		}
	}
	return id
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// bufferPool hands the reverse proxy 32 KiB copy buffers. It stores array pointers, so
// neither Get nor Put allocates.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(x []byte) {
	if len(x) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(x))
	}
}
