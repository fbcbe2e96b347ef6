package h1fast

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/proxy/h1"
	"github.com/veloflux/veloflux/proxy/splice"
)

// response is the http.ResponseWriter of one request. The head is written lazily: a handler
// that sets no Content-Length and writes little before it returns gets one computed, as with
// net/http; otherwise the body is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0).
type response struct {
	ex     *exchange
	c      *conn
	req    *http.Request
	header http.Header

	status      int
	wroteHeader bool // the handler chose a final status
	headSent    bool
	chunked     bool
	bodyless    bool  // HEAD, 204 or 304: nothing after the head
	length      int64 // the handler's Content-Length; -1 none
	written     int64
	pend        []byte // body written before the framing is known; backed by pendBuf
	pendBuf     [pendSize]byte
	closeAfter  bool
	broken      bool // a write failed or the body fell short of its length
	hijacked    bool
}

// pendSize is how much body waits for the handler to return before the head goes out chunked.
const pendSize = 2 << 10

func (w *response) reset(c *conn, r *http.Request) {
	w.c, w.req = c, r
	w.status, w.wroteHeader, w.headSent, w.chunked, w.bodyless = 0, false, false, false, false
	w.length, w.written, w.pend = -1, 0, w.pendBuf[:0]
	w.closeAfter, w.broken, w.hijacked = false, false, false
}

func (w *response) Header() http.Header { return w.header }

// AdoptHeader makes h the response's header map in place of the current one, which it
// returns for the caller to reuse, when nothing has been set or written yet: a proxy that
// passes a backend's fields on then spares copying them one by one. ok is false, and
// nothing changes, otherwise.
func (w *response) AdoptHeader(h http.Header) (old http.Header, ok bool) {
	if w.wroteHeader || w.headSent || w.hijacked || len(w.header) > 0 || h == nil {
		return nil, false
	}
	old, w.header = w.header, h
	return old, true
}

func (w *response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header["Content-Length"]; len(cl) > 0 && cl[0] != "" {
		cl := cl[0]
		if n, err := parseLength(cl); err == nil {
			w.length = n
		} else {
			w.header.Del("Content-Length")
		}
	}
	w.bodyless = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusSwitchingProtocols
}

// writeInterim sends a 1xx head at once; never to an HTTP/1.0 client, which would take it for
// the answer (RFC 9110 section 15.2). A 100 Continue sent here is the one the client waits
// for: reading the body sends no other.
func (w *response) writeInterim(code int) {
	if !w.req.ProtoAtLeast(1, 1) {
		clear(w.header)
		return
	}
	if code == http.StatusContinue {
		if !w.ex.body.expect {
			clear(w.header)
			return // not asked for, or already sent
		}
		w.ex.body.expect = false
	}
	bw := w.ex.bw
	b := appendStatus(bw.AvailableBuffer(), w.req.ProtoAtLeast(1, 1), code)
	b = w.appendFields(b, false)
	b = append(b, "\r\n"...)
	_, _ = bw.Write(b)
	if bw.Flush() != nil {
		w.broken = true
	}
	clear(w.header) // a 1xx's fields are not the final response's
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.bodyless {
		if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
			return 0, http.ErrBodyNotAllowed
		}
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headSent {
		if w.length >= 0 || len(w.pend)+len(p) > pendSize || len(w.header["Trailer"]) > 0 {
			w.sendHead(w.length < 0)
		} else {
			w.pend = append(w.pend, p...)
			return len(p), nil
		}
	}
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	bw := w.ex.bw
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		var b [16]byte
		bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		if err != nil {
			w.broken = true
			return 0, err
		}
		return len(p), nil
	}
	n, err := bw.Write(p)
	if err != nil {
		w.broken = true
	}
	return n, err
}

// sendHead writes the status line and fields, then whatever body waited.
func (w *response) sendHead(stream bool) {
	w.headSent = true
	bw := w.ex.bw
	h := w.header
	is11 := w.req.ProtoAtLeast(1, 1)
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	switch {
	case w.bodyless:
	case w.length >= 0:
	case stream && is11:
		w.chunked = true
	case stream:
		w.closeAfter = true // HTTP/1.0 without a length: the body ends with the connection
	default:
		w.length = int64(len(w.pend))
		h.Set("Content-Length", strconv.Itoa(len(w.pend)))
	}
	if w.c.s.noKeep.Load() {
		w.closeAfter = true
	}
	// The head is appended in the writer's free space and handed to it in one Write (a head
	// larger than that space is appended to a slice of its own).
	b := appendStatus(bw.AvailableBuffer(), is11, w.status)
	b = w.appendFields(b, true)
	switch {
	case w.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case !w.closeAfter && !is11:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if _, ok := h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = append(b, w.c.s.httpDate()...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	_, _ = bw.Write(b)
	if len(w.pend) > 0 {
		p := w.pend
		w.pend = w.pend[:0]
		_, _ = w.writeBody(p)
	}
}

// SpliceTarget sends the head and whatever body waits in the buffer, and returns the
// client's socket for the next n bytes of the body when the response has a length they fit
// in, so that the kernel may write them (splice(2)); SplicedOut must then report what was
// written. ok is false otherwise (a chunked or bodyless response, a failed write), and Write
// goes on as usual.
func (w *response) SpliceTarget(n int64) (dst *net.TCPConn, ok bool) {
	if w.hijacked || w.broken || !w.wroteHeader || w.bodyless || w.chunked || w.length < 0 || w.written+n > w.length {
		return nil, false
	}
	if dst, ok = splice.TCPConn(w.c.nc); !ok {
		return nil, false
	}
	if !w.headSent {
		w.sendHead(false)
	}
	if w.ex.bw.Flush() != nil {
		w.broken = true
		return nil, false
	}
	return dst, true
}

// SplicedOut records n body bytes written to the socket SpliceTarget returned, and the write
// error that stopped it early.
func (w *response) SplicedOut(n int64, err error) {
	w.written += n
	if err != nil {
		w.broken = true
	}
}

// appendFields appends the header, leaving out the fields the framing owns and trailers.
func (w *response) appendFields(b []byte, final bool) []byte {
	for k, vs := range w.header {
		switch k {
		case "Transfer-Encoding", "Trailer":
			if final {
				continue
			}
		case "Connection":
			if final && w.closeAfter {
				continue // replaced by Connection: close
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if final && w.chunked {
		for _, v := range w.header["Trailer"] {
			b = append(b, "Trailer: "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// finish completes the response after the handler returned.
func (w *response) finish() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(w.hasTrailers())
	}
	bw := w.ex.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		w.writeTrailers(bw)
		bw.WriteString("\r\n")
	}
	if !w.bodyless && w.length >= 0 && w.written < w.length {
		w.broken = true // the client would wait for the rest; only a close tells it
	}
	if bw.Flush() != nil {
		w.broken = true
	}
}

// hasTrailers reports trailer fields to send, which only a chunked body can carry.
func (w *response) hasTrailers() bool {
	if len(w.header["Trailer"]) > 0 {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// writeTrailers writes the fields announced in Trailer and those set with http.TrailerPrefix.
func (w *response) writeTrailers(bw *bufio.Writer) {
	for _, announced := range w.header["Trailer"] {
		for _, k := range strings.Split(announced, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			for _, v := range w.header[k] {
				if httpguts.ValidHeaderFieldName(k) && h1.ValidFieldValue(v) {
					bw.WriteString(k + ": " + v + "\r\n")
				}
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				if httpguts.ValidHeaderFieldName(name) && h1.ValidFieldValue(v) {
					bw.WriteString(name + ": " + v + "\r\n")
				}
			}
		}
	}
}

// Flush sends the head and what is buffered; a response without a length is chunked from
// here on.
func (w *response) Flush() { _ = w.FlushError() }

func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(true)
	}
	if err := w.ex.bw.Flush(); err != nil {
		w.broken = true
		return err
	}
	return nil
}

// Hijack hands the connection over, with what was read of it and nothing buffered to write.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.headSent {
		if err := w.ex.bw.Flush(); err != nil {
			return nil, nil, err
		}
	}
	w.hijacked = true
	nc := w.c.nc
	_ = nc.SetDeadline(time.Time{})
	rw := bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))
	return nc, rw, nil
}

func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// EnableFullDuplex is a no-op: reading the body and writing the response interleave freely.
func (w *response) EnableFullDuplex() error { return nil }

func appendStatus(b []byte, is11 bool, code int) []byte {
	if is11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	if code == http.StatusOK {
		return append(b, "200 OK\r\n"...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// httpDate is the Date field's value, formatted at most once a second.
func (s *Server) httpDate() string {
	now := time.Now().Unix()
	if d := s.date.Load(); d != nil && d.sec == now {
		return d.text
	}
	d := &cachedDate{sec: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	s.date.Store(d)
	return d.text
}

type cachedDate struct {
	sec  int64
	text string
}
