package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TraceTrust says whose incoming trace context (traceparent, tracestate, baggage) a request
// continues; every other request starts a new trace.
type TraceTrust uint8

const (
	// TraceTrustTrusted continues the context of peers in Config.TrustedProxies only, so an
	// outside client can neither force sampling nor choose trace IDs.
	TraceTrustTrusted TraceTrust = iota
	// TraceTrustAll continues every client's context.
	TraceTrustAll
	// TraceTrustNone continues nobody's.
	TraceTrustNone
)

// tracerName is the instrumentation scope of the proxy's spans.
const tracerName = "github.com/veloflux/veloflux/proxy"

// The proxy's own span attributes, beside the HTTP semantic conventions.
const (
	attrRoute         = attribute.Key("veloflux.route")          // host and path prefix of the matched route
	attrPool          = attribute.Key("veloflux.pool")           // pool of the route
	attrBackend       = attribute.Key("veloflux.backend")        // backend ID: the last attempt's on the server span
	attrAttempt       = attribute.Key("veloflux.attempt")        // 1 for the first try, 2 for the first retry...
	attrRequestID     = attribute.Key("veloflux.request_id")     // X-Request-Id, also in the access log
	attrRegion        = attribute.Key("veloflux.region")         // region served or redirected to (geo routes)
	attrRegionReason  = attribute.Key("veloflux.region.reason")  // nearest, failover, sticky or redirect
	attrClientCountry = attribute.Key("veloflux.client.country") // ISO country of the client (geo routes)
	attrSticky        = attribute.Key("veloflux.sticky")         // hit, repin or new (sticky pools)
	attrWebSocket     = attribute.Key("veloflux.websocket")      // true on an upgraded request
	attrError         = attribute.Key("veloflux.error")          // what the proxy answered or why the attempt failed
)

// stickyHow is what the sticky-session lookup of a request came to.
type stickyHow uint8

const (
	stickyNone  stickyHow = iota // not a sticky pool
	stickyHit                    // the backend the cookie names was up and used
	stickyMoved                  // a stored move of the session was followed
	stickyRepin                  // the session's backend was down, drained or gone: moved, and the move stored
	stickyNew                    // a new session
)

func (s stickyHow) String() string {
	switch s {
	case stickyHit:
		return "hit"
	case stickyMoved:
		return "moved"
	case stickyRepin:
		return "repin"
	case stickyNew:
		return "new"
	}
	return ""
}

// tracing is the proxy's tracer, nil when tracing is off: the request path then tests one
// pointer and allocates nothing more.
type tracing struct {
	tracer  trace.Tracer
	sampler TraceSampler // nil: the tracer decides, and every request starts a span
	prop    propagation.TextMapPropagator
	trust   TraceTrust
}

// The start options of the two kinds of span, made once: a variadic call with a fresh
// option would allocate its slice on every request.
var (
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

func newTracing(opts Options) *tracing {
	if opts.TracerProvider == nil {
		return nil
	}
	return &tracing{
		tracer:  opts.TracerProvider.Tracer(tracerName),
		sampler: opts.TraceSampler,
		prop:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		trust:   opts.TraceTrust,
	}
}

// startRequest names the server span of a request in st and, when it is to be recorded (or
// when the tracer itself decides), starts it with its context.
//
// With a TraceSampler an unsampled request gets what the tracer would give it, a valid span
// context that is not sampled, without a span: random IDs (the caller's trace ID when its
// context is continued), no context, no attribute. Only the request's traceparent for the
// backend is written, by startAttempt.
func (t *tracing) startRequest(st *reqState, r *http.Request) {
	if t.trust == TraceTrustAll || t.trust == TraceTrustTrusted && st.trusted {
		// Extracting from a request without these fields would find nothing.
		if len(r.Header["Traceparent"]) > 0 || len(r.Header["Baggage"]) > 0 {
			st.pctx = t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		}
	}
	name := spanMethod(r.Method)
	ctx := r.Context()
	if st.pctx != nil {
		ctx = st.pctx
	}
	if t.sampler != nil {
		var parent trace.SpanContext
		decide := context.Background()
		if st.pctx != nil {
			parent = trace.SpanContextFromContext(st.pctx)
			decide = st.pctx
		}
		id := parent.TraceID()
		if !id.IsValid() {
			id = st.ids.TraceID()
		}
		if !t.sampler.Sampled(decide, id, name) {
			// What the SDK makes of an unsampled span: the parent's flags less sampled, and
			// its trace state (every sampler telemetry/tracing builds passes it on).
			st.sc = trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    id,
				SpanID:     st.ids.SpanID(),
				TraceFlags: parent.TraceFlags() &^ trace.FlagsSampled,
				TraceState: parent.TraceState(),
			})
			return
		}
		if !parent.TraceID().IsValid() {
			ctx = t.sampler.NewTrace(ctx, id)
		}
	}
	t.startServerSpan(st, ctx, name)
}

// startServerSpan starts the server span of a request in ctx. It is apart from startRequest,
// and startAttemptSpan and endServerSpan from theirs, so that the stack frame a span takes is
// only entered for a span: a request goroutine that grew its stack for it would copy the
// stack on each request.
func (t *tracing) startServerSpan(st *reqState, ctx context.Context, name string) {
	ctx, span := t.tracer.Start(ctx, name, serverSpan...)
	st.tctx, st.span, st.sc = ctx, span, span.SpanContext()
}

// A span's attributes are given all at once when it ends, from a pooled array: the SDK then
// copies them into one slice of the right size, where attributes given at start and at end
// would take a slice of ours each and grow the span's twice. Nothing reads a span's
// attributes before it ends (the sampler decides without them, and the processor only takes
// ended spans).
const maxSpanAttrs = 24 // the most a server span has: 13 about the request, 11 about its outcome

var spanAttrs = sync.Pool{New: func() any { return new([maxSpanAttrs]attribute.KeyValue) }}

// setSpanAttrs gives attrs to span and clears them, so that the pooled array keeps no
// strings alive.
func setSpanAttrs(span trace.Span, buf *[maxSpanAttrs]attribute.KeyValue, attrs []attribute.KeyValue) {
	span.SetAttributes(attrs...)
	clear(attrs)
	spanAttrs.Put(buf)
}

// endRequest records the outcome of a request on its server span and ends it; a request
// without a span (unsampled) has nothing to end.
func (t *tracing) endRequest(st *reqState, r *http.Request, code int) {
	switch {
	case st.span == nil:
	case st.span.IsRecording():
		endServerSpan(st, r, code)
	default:
		st.span.End()
	}
}

// endServerSpan records a request and its outcome on its recording server span and ends it.
func endServerSpan(st *reqState, r *http.Request, code int) {
	span := st.span
	buf := spanAttrs.Get().(*[maxSpanAttrs]attribute.KeyValue)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := append(buf[:0],
		semconv.HTTPRequestMethodKey.String(methodAttr(r.Method)),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme(scheme),
		semconv.ClientAddress(st.client.String()),
		semconv.NetworkPeerAddress(st.peer.String()),
		semconv.NetworkProtocolVersion(protocolVersion(r)),
		semconv.UserAgentOriginal(r.UserAgent()),
		attrRequestID.String(st.reqID),
		semconv.HTTPResponseStatusCode(code),
	)
	if host, port, err := net.SplitHostPort(r.Host); err == nil {
		attrs = append(attrs, semconv.ServerAddress(host))
		if n, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(n))
		}
	} else if r.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(r.Host))
	}
	if r.URL.RawQuery != "" {
		attrs = append(attrs, semconv.URLQuery(r.URL.RawQuery))
	}
	if st.upgrade {
		attrs = append(attrs, attrWebSocket.Bool(true))
	}
	if st.route != nil {
		prefix := st.route.prefix
		span.SetName(spanMethod(r.Method) + " " + prefix)
		attrs = append(attrs, semconv.HTTPRoute(prefix), attrRoute.String(st.route.spec.Host+prefix))
	}
	if st.pool != nil {
		attrs = append(attrs, attrPool.String(st.pool.name))
	}
	if st.backend != nil {
		attrs = append(attrs, attrBackend.String(st.backend.id), attrAttempt.Int(st.ntried))
	}
	if st.sticky != stickyNone {
		attrs = append(attrs, attrSticky.String(st.sticky.String()))
	}
	if st.geo {
		attrs = append(attrs, attrClientCountry.String(countryLabel(st.country)), attrRegion.String(st.servedRegion()))
		if reason := st.regionReason(); reason != "" {
			attrs = append(attrs, attrRegionReason.String(reason))
		}
	}
	if st.err != nil {
		attrs = append(attrs, attrError.String(st.err.Error()))
	}
	if code >= 500 {
		// Server spans are errors on 5xx only: a 4xx is the client's (semantic conventions).
		attrs = append(attrs, semconv.ErrorTypeKey.String(codeLabel(code)))
		span.SetStatus(codes.Error, "")
	}
	setSpanAttrs(span, buf, attrs)
	span.End()
}

// startAttempt starts the client span of one try to st.backend and writes its context into
// the outbound request's headers (traceparent, tracestate, baggage, replacing the client's),
// so the backend's work is a child of the attempt and what it sees is always the attempt's
// context. A request that is not recorded gets no attempt span, which nobody would see: the
// backend is handed the server span's context, unsampled, and startAttempt returns nil.
func (t *tracing) startAttempt(st *reqState, req *http.Request) trace.Span {
	h := req.Header
	if st.span == nil && st.pctx == nil {
		// A new trace, unsampled: no trace state or baggage to pass on, and a traceparent
		// that the transport writes (traceFields), after the client's fields are gone.
		if !st.forwarded {
			delete(h, "Traceparent")
			delete(h, "Tracestate")
			delete(h, "Baggage")
		}
		if st.tpField[0] == 0 {
			putTraceparentField(&st.tpField, st.sc)
		}
		return nil
	}
	delete(h, "Traceparent")
	delete(h, "Tracestate")
	delete(h, "Baggage")
	switch {
	case st.span == nil:
		t.prop.Inject(trace.ContextWithSpanContext(st.pctx, st.sc), headerCarrier(h))
		return nil
	case !st.span.IsRecording():
		t.prop.Inject(st.tctx, headerCarrier(h))
		return nil
	}
	return t.startAttemptSpan(st, req)
}

// startAttemptSpan starts the client span of one try of a recorded request and writes its
// context into the outbound request's headers.
func (t *tracing) startAttemptSpan(st *reqState, req *http.Request) trace.Span {
	ctx, span := t.tracer.Start(st.tctx, spanMethod(req.Method), clientSpan...)
	t.prop.Inject(ctx, headerCarrier(req.Header))
	return span
}

// traceFields readies the traceparent startAttempt wrote for an unsampled request in a new
// trace for one attempt's transport: it returns the field line for the fast client to write
// after the header (fast), and puts the field in req's header for the others, which have no
// such way. Without such a traceparent it returns nil and does nothing.
func (st *reqState) traceFields(req *http.Request, fast bool) []byte {
	if st.tpField[0] == 0 {
		return nil
	}
	switch {
	case !fast:
		req.Header["Traceparent"] = []string{string(st.tpField[len(traceparentName) : len(traceparentName)+traceparentLen])}
		st.tpHeader = true
		return nil
	case st.tpHeader:
		// An earlier attempt went to a backend of another scheme.
		delete(req.Header, "Traceparent")
		st.tpHeader = false
	}
	return st.tpField[:]
}

const (
	traceparentName     = "Traceparent: "
	traceparentLen      = 55 // version, trace ID, span ID, flags and the dashes between them
	traceparentFieldLen = len(traceparentName) + traceparentLen + len("\r\n")
)

// putTraceparentField writes the traceparent field line of sc into b, as the fast client
// writes it in a request head.
func putTraceparentField(b *[traceparentFieldLen]byte, sc trace.SpanContext) {
	copy(b[:], traceparentName)
	putTraceparent((*[traceparentLen]byte)(b[len(traceparentName):]), sc)
	b[traceparentFieldLen-2], b[traceparentFieldLen-1] = '\r', '\n'
}

// putTraceparent writes the W3C traceparent field of sc into b, as propagation.TraceContext
// writes it (version 00, the sampled and random flags only), without the context and the
// strings.Builder that writing it through the propagator takes. Each byte's two digits come
// from one table lookup, and four bytes' digits go out in one store: encoding/hex spends
// about eight times the instructions on the 24 bytes.
func putTraceparent(b *[traceparentLen]byte, sc trace.SpanContext) {
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	binary.LittleEndian.PutUint64(b[3:], hex4(tid[0], tid[1], tid[2], tid[3]))
	binary.LittleEndian.PutUint64(b[11:], hex4(tid[4], tid[5], tid[6], tid[7]))
	binary.LittleEndian.PutUint64(b[19:], hex4(tid[8], tid[9], tid[10], tid[11]))
	binary.LittleEndian.PutUint64(b[27:], hex4(tid[12], tid[13], tid[14], tid[15]))
	b[35] = '-'
	binary.LittleEndian.PutUint64(b[36:], hex4(sid[0], sid[1], sid[2], sid[3]))
	binary.LittleEndian.PutUint64(b[44:], hex4(sid[4], sid[5], sid[6], sid[7]))
	b[52] = '-'
	binary.LittleEndian.PutUint16(b[53:], hexPairs[sc.TraceFlags()&(trace.FlagsSampled|trace.FlagsRandom)])
}

// hex4 is the eight hex digits of four bytes, in the order of a little-endian store: one
// store at a constant offset writes them, without the bounds check of every pair.
func hex4(a, b, c, d byte) uint64 {
	return uint64(hexPairs[a]) | uint64(hexPairs[b])<<16 | uint64(hexPairs[c])<<32 | uint64(hexPairs[d])<<48
}

// hexPairs holds the two lower-case hex digits of every byte value, the first in the low
// byte.
var hexPairs = func() (t [256]uint16) {
	const digits = "0123456789abcdef"
	for i := range t {
		t[i] = uint16(digits[i>>4]) | uint16(digits[i&0xf])<<8
	}
	return t
}()

// endAttempt records one try of req to st.backend and what it came to, and ends its span.
func endAttempt(st *reqState, req *http.Request, span trace.Span, resp *http.Response, err error) {
	if span.IsRecording() {
		buf := spanAttrs.Get().(*[maxSpanAttrs]attribute.KeyValue)
		u := st.backend
		attrs := append(buf[:0],
			semconv.HTTPRequestMethodKey.String(methodAttr(req.Method)),
			attrBackend.String(u.id),
			attrPool.String(u.pool),
			attrAttempt.Int(st.ntried),
			semconv.URLFull(req.URL.String()),
		)
		if host, port, err := net.SplitHostPort(u.address); err == nil {
			attrs = append(attrs, semconv.ServerAddress(host))
			if n, err := strconv.Atoi(port); err == nil {
				attrs = append(attrs, semconv.ServerPort(n))
			}
		}
		if r := u.Region(); r != "" {
			attrs = append(attrs, attrRegion.String(r))
		}
		switch {
		case err != nil:
			attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(err)), attrError.String(err.Error()))
			span.SetStatus(codes.Error, err.Error())
		default:
			attrs = append(attrs, semconv.HTTPResponseStatusCode(resp.StatusCode))
			if resp.StatusCode >= 400 {
				// Client spans are errors on 4xx too: the proxy's request failed.
				attrs = append(attrs, semconv.ErrorTypeKey.String(codeLabel(resp.StatusCode)))
				span.SetStatus(codes.Error, "")
			}
		}
		setSpanAttrs(span, buf, attrs)
	}
	span.End()
}

// headerCarrier is propagation.HeaderCarrier whose Set writes the W3C fields under their
// canonical names directly: http.Header.Set would allocate the canonical form of the
// propagator's lower-case key on every request.
type headerCarrier http.Header

func (c headerCarrier) Get(key string) string { return http.Header(c).Get(key) }

func (c headerCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c["Traceparent"] = []string{value}
	case "tracestate":
		c["Tracestate"] = []string{value}
	case "baggage":
		c["Baggage"] = []string{value}
	default:
		http.Header(c).Set(key, value)
	}
}

func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// errorType classes an attempt's failure for error.type, a low-cardinality attribute.
func errorType(err error) string {
	var op *net.OpError
	switch {
	case errors.Is(err, errAtCapacity):
		return "at_capacity"
	case errors.Is(err, errNoWebSocket):
		return "no_websocket"
	case isTimeout(err):
		return "timeout"
	case errors.As(err, &op) && op.Op == "dial":
		return "connect_failed"
	}
	return "connection_failed"
}

// regionReason says why a geo request went where it did: redirect (307 to another region's
// host), sticky (its session's backend), nearest (the client's nearest region that had a
// healthy backend) or failover (another region, after the nearest one's backends failed).
func (st *reqState) regionReason() string {
	switch {
	case st.geoRegion != "":
		return "redirect"
	case st.backend == nil:
		return ""
	case (st.sticky == stickyHit || st.sticky == stickyMoved) && st.ntried == 1:
		return "sticky"
	case st.regionOf(st.backend) == st.nearest:
		return "nearest"
	}
	return "failover"
}

// logIDs adds the trace and span IDs of the request's server span to a log line's attributes.
func (st *reqState) logIDs(attrs []any) []any {
	if !st.sc.IsValid() {
		return attrs
	}
	return append(attrs, "trace_id", st.sc.TraceID().String(), "span_id", st.sc.SpanID().String())
}

// exemplarTraceID is the trace ID for the duration histogram's exemplar: only sampled
// traces, since others cannot be looked up.
func (st *reqState) exemplarTraceID() string {
	if st.sc.IsSampled() {
		return st.sc.TraceID().String()
	}
	return ""
}

// spanMethod is the method in a span name: a standard one, or HTTP for any other, which the
// semantic conventions prefer to an unbounded set of names.
func spanMethod(m string) string {
	if l := methodLabel(m); l != "OTHER" {
		return l
	}
	return "HTTP"
}

// methodAttr is http.request.method: a standard method, or _OTHER.
func methodAttr(m string) string {
	if l := methodLabel(m); l != "OTHER" {
		return l
	}
	return "_OTHER"
}

func protocolVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 3:
		return "3"
	case 2:
		return "2"
	}
	if r.ProtoMinor == 0 {
		return "1.0"
	}
	return "1.1"
}

// traceContext is the context a request's outbound work runs in: the server span's when
// there is one.
func (st *reqState) traceContext(r *http.Request) context.Context {
	if st.tctx != nil {
		return st.tctx
	}
	return r.Context()
}
