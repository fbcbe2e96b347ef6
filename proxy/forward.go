package proxy

import (
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"unicode"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/proxy/h1"
	"github.com/veloflux/veloflux/proxy/h1client"
	"github.com/veloflux/veloflux/proxy/splice"
)

// forward is what httputil.ReverseProxy does for a request that is not an upgrade, without
// its copies: the outbound header is a shallow copy of the inbound one less hop-by-hop fields
// (values are shared, never appended to), the response's fields move to the client's header
// map as they are, and the body is copied through the same pooled buffer. It runs when the
// HTTP/1.1 fast path is on (TransportConfig.FastHTTP1); upgrades keep the reverse proxy, which
// owns the copying of a switched connection. rewrite, modifyResponse, retryTransport and
// handleError are the reverse proxy's own hooks, so both paths shape requests and map errors
// alike.
func (p *Proxy) forward(w http.ResponseWriter, in *http.Request, ctx context.Context) {
	st := stateFrom(ctx)
	out := in.WithContext(ctx)
	out.RequestURI = ""
	out.Close = false
	if st.backend.scheme == schemeHTTP {
		// The fast client reads the outbound URL and header only while it sends them, and
		// keeps no goroutine that could look later: both can live in the pooled state.
		st.outURL = *in.URL
		out.URL = &st.outURL
		if st.outHeader == nil {
			st.outHeader = make(http.Header, len(in.Header)+6)
		}
		out.Header = st.outHeader
	} else {
		u := *in.URL
		out.URL = &u
		out.Header = make(http.Header, len(in.Header)+6)
	}
	// With tracing on, the proxy writes the trace fields of every attempt itself (startAttempt),
	// so the client's are left out here rather than deleted from the copy.
	st.forwarded = p.tracing != nil
	copyForwardable(out.Header, in.Header, st.forwarded)
	if in.ContentLength == 0 {
		out.Body = nil // nothing to send, whatever the server put there
	}
	if _, ok := in.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = emptyValue // no client default in the backend's logs
	}
	p.shape(st, in, out)

	resp, err := retryTransport{p}.RoundTrip(out)
	if err != nil {
		p.handleError(w, out, err)
		return
	}
	if err := p.modifyResponse(resp); err != nil {
		_ = resp.Body.Close()
		p.handleError(w, out, err)
		return
	}
	removeHopByHop(resp.Header)
	dst := w.Header()
	var spare http.Header
	if len(dst) == 0 {
		// Nothing set for the client yet: the backend's map becomes the client's, and the
		// client's empty one goes back with the response (h1client.Release).
		if a := headerAdopter(w); a != nil {
			if old, ok := a.AdoptHeader(resp.Header); ok {
				dst, spare = resp.Header, old
			}
		}
	}
	if spare == nil {
		for k, vv := range resp.Header {
			if prior, ok := dst[k]; ok {
				dst[k] = append(prior, vv...)
				continue
			}
			dst[k] = vv
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	err = p.copyBody(w, resp)
	_ = resp.Body.Close()
	if err != nil {
		if errors.Is(err, errClientWrite) {
			st.clientGone = true // finish records 499; the connection is done for
			return
		}
		// The backend broke off mid-body: the client must not take what it got for the
		// whole answer, and only a closed connection tells it so (as the reverse proxy does).
		st.err = err
		panic(http.ErrAbortHandler)
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			dst[k] = vv
		}
	} else {
		for k, vv := range resp.Trailer {
			dst[http.TrailerPrefix+k] = vv
		}
	}
	// Nothing refers to the response any more, nor to its header map unless the client's
	// header adopted it: the fast client may reuse the response and the map it gets back.
	if spare != nil {
		resp.Header = spare
	}
	h1client.Release(resp)
}

var emptyValue = []string{""}

// adoptingWriter is the fast server's response writer, which can take a header map whole.
type adoptingWriter interface {
	AdoptHeader(h http.Header) (old http.Header, ok bool)
}

// headerAdopter finds the adoptingWriter under w's wrappers; nil when there is none.
func headerAdopter(w http.ResponseWriter) adoptingWriter {
	for w != nil {
		if a, ok := w.(adoptingWriter); ok {
			return a
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// passInterim passes a backend's 1xx response (100 Continue, 103 Early Hints) on to the
// client before the final one, less its hop-by-hop fields, as the reverse proxy does; the
// statusWriter keeps the fields set for the final response out of it.
func passInterim(req *http.Request, code int, header http.Header) error {
	st := stateFrom(req.Context())
	if st == nil {
		return nil
	}
	removeHopByHop(header)
	h := st.rw.Header()
	for k, vv := range header {
		h[k] = append(h[k], vv...)
	}
	st.rw.WriteHeader(code)
	clear(h)
	return nil
}

// errClientWrite marks a copy that failed writing to the client.
var errClientWrite = errors.New("writing to the client failed")

// copyBody streams the response body to the client, flushing after every write when the
// response is streamed (no length, or server-sent events), as the reverse proxy does with
// FlushInterval 0.
func (p *Proxy) copyBody(w http.ResponseWriter, resp *http.Response) error {
	stream := resp.ContentLength == -1
	if !stream {
		if ct := resp.Header["Content-Type"]; len(ct) > 0 && mayBeEventStream(ct[0]) {
			mt, _, _ := mime.ParseMediaType(ct[0])
			stream = mt == "text/event-stream"
		}
	}
	var flush func() error
	if stream {
		rc := http.NewResponseController(w)
		flush = rc.Flush
	}
	// A long body with a length may move from the backend's socket to the client's by
	// kernel copy, once the bytes read with the head have gone through the buffer.
	trySplice := !stream && resp.ContentLength >= splice.MinLength && splice.Available
	buf := p.rp.BufferPool.Get()
	defer p.rp.BufferPool.Put(buf)
	for tries := 0; ; tries++ {
		if trySplice && tries < 3 {
			if done, err := spliceBody(w, resp.Body); done {
				return err
			}
		}
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return errClientWrite
			}
			if flush != nil {
				if ferr := flush(); ferr != nil {
					return errClientWrite
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			if errors.Is(rerr, context.Canceled) {
				return errClientWrite // the client's request ended first
			}
			return rerr
		}
	}
}

// mayBeEventStream is false for a Content-Type that cannot parse as text/event-stream: one
// that does not start with it, case aside, after white space (mime.ParseMediaType trims it as
// strings.TrimSpace does). It spares parsing the media type of every other answer.
func mayBeEventStream(ct string) bool {
	const es = "text/event-stream"
	ct = strings.TrimLeftFunc(ct, unicode.IsSpace)
	return len(ct) >= len(es) && strings.EqualFold(ct[:len(es)], es)
}

// splicedBody is a response body that the fast client can move by kernel copy.
type splicedBody interface {
	SpliceLeft() (left int64, ok bool)
	SpliceTo(dst *net.TCPConn) (written int64, rerr, werr error)
}

// splicedWriter is the fast server's response writer, which hands its socket over for the
// body's bytes.
type splicedWriter interface {
	SpliceTarget(n int64) (dst *net.TCPConn, ok bool)
	SplicedOut(n int64, err error)
}

// spliceBody moves the rest of the response body from the backend's socket to the client's
// when both ends allow it; done is false when they do not and nothing was moved. Errors are
// copyBody's: errClientWrite for the client's side, the backend's read error otherwise.
func spliceBody(w http.ResponseWriter, body io.Reader) (done bool, err error) {
	src, ok := body.(splicedBody)
	if !ok {
		return false, nil
	}
	left, ok := src.SpliceLeft()
	if !ok {
		return false, nil
	}
	var sw *statusWriter
	var dst splicedWriter
	for rw := w; rw != nil && dst == nil; {
		switch x := rw.(type) {
		case *statusWriter:
			sw = x
		case splicedWriter:
			dst = x
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
	}
	if dst == nil {
		return false, nil
	}
	sock, ok := dst.SpliceTarget(left)
	if !ok {
		return false, nil
	}
	n, rerr, werr := src.SpliceTo(sock)
	dst.SplicedOut(n, werr)
	if sw != nil {
		sw.bytes += n
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
	}
	switch {
	case werr != nil:
		return true, errClientWrite
	case rerr != nil && errors.Is(rerr, context.Canceled):
		return true, errClientWrite // the client's request ended first
	}
	return true, rerr
}

// hopByHop are the fields that describe one connection, not the message (RFC 9110 section
// 7.6.1), and are not forwarded; with them go the fields that Connection names.
var hopByHop = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// copyForwardable copies src's fields to dst, less hop-by-hop ones (keeping "Te: trailers",
// which gRPC needs), the forwarding fields that rewrite sets from what it trusts, and with
// noTrace the trace context fields (traceparent, tracestate, baggage).
func copyForwardable(dst, src http.Header, noTrace bool) {
	conn := src["Connection"]
	for k, vv := range src {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Trailer", "Transfer-Encoding", "Upgrade",
			"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		case "Te":
			if httpguts.HeaderValuesContainsToken(vv, "trailers") {
				dst["Te"] = teTrailers
			}
			continue
		case "Traceparent", "Tracestate", "Baggage":
			if noTrace {
				continue
			}
		}
		if len(conn) > 0 && listedIn(conn, k) {
			continue
		}
		dst[k] = vv
	}
}

var teTrailers = []string{"trailers"}

// listedIn reports whether Connection values conn name field k.
func listedIn(conn []string, k string) bool {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(tok)) == k {
				return true
			}
		}
	}
	return false
}

// removeHopByHop deletes a response's hop-by-hop fields and those its Connection names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			switch tok = strings.TrimSpace(tok); {
			case tok == "":
			case strings.EqualFold(tok, "keep-alive"):
				// Among hopByHop; named here by nearly every backend that keeps its connection.
			case strings.EqualFold(tok, "close"):
				delete(h, "Close")
			default:
				delete(h, h1.CanonicalKey(tok))
			}
		}
	}
	if len(h) < len(hopByHop) {
		// Fewer fields than names: looking at each field costs less than a delete per name.
		for k := range h {
			if isHopByHop(k) {
				delete(h, k)
			}
		}
		return
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
