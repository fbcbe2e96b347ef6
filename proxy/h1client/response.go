package h1client

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/proxy/h1"
)

// readResponse reads a response head from br. The usual answer of a backend, an HTTP/1.1
// status line and plain fields with one Content-Length, already whole in the buffer, is read
// here: one string for the head, keys and values sliced from it. Anything else (a chunked or
// close-delimited body, Connection: close, a 1xx, 204 or 304, an answer to HEAD, a repeated or odd length, a
// folded line, a field net/textproto would refuse or rewrite) goes to http.ReadResponse,
// which then reads it from the start: the fast reading consumes nothing unless it accepts
// the whole head, and what it accepts it reads as http.ReadResponse does
// (TestReadResponseParity, FuzzReadResponse).
//
// head is the pooled memory of a response the fast reading took, nil otherwise.
func readResponse(br *bufio.Reader, req *http.Request) (resp *http.Response, head *simpleResponse, err error) {
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, err
	}
	buf, _ := br.Peek(br.Buffered())
	if sr, n := parseSimpleHead(buf, req); sr != nil {
		_, _ = br.Discard(n)
		sr.body.br = br
		return &sr.resp, sr, nil
	}
	resp, err = http.ReadResponse(br, req)
	return resp, nil, err
}

// maxSimpleFields is the most fields a head parseSimpleHead reads may have; one with more
// goes to http.ReadResponse.
const maxSimpleFields = 63

// parseSimpleHead reads the response head at the start of buf when it is one readResponse
// reads itself, and returns the response (sr.resp) and the head's length; nil otherwise. The
// body of the response, when it has one, is sr.body, whose reader the caller sets.
func parseSimpleHead(buf []byte, req *http.Request) (sr *simpleResponse, n int) {
	if req.Method == http.MethodHead {
		return nil, 0
	}
	// The head ends at the first empty line. Every line must end with CRLF: a bare LF goes to
	// http.ReadResponse. Where each field line ends is kept for the second pass.
	var ends [maxSimpleFields + 1]int // ends[i]: the index of line i's CR
	lines := 0
	end := -1 // the index of the empty line
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 1 || buf[i+j-1] != '\r' {
			return nil, 0 // no whole head yet, or a bare LF
		}
		if j == 1 {
			end = i
			break
		}
		if lines == len(ends) {
			return nil, 0 // more fields than this reading keeps track of
		}
		ends[lines] = i + j - 1
		lines++
		i += j + 1
	}
	if lines == 0 || ends[0] < 12 || string(buf[:9]) != "HTTP/1.1 " {
		return nil, 0
	}
	code := 0
	for _, d := range buf[9:12] {
		if d < '0' || d > '9' {
			return nil, 0
		}
		code = code*10 + int(d-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, 0
	}
	head := string(buf[:end]) // every line with its CRLF
	line := head[:ends[0]]
	if len(line) > 12 && line[12] != ' ' || !validText(line) {
		return nil, 0
	}
	sr = simpleResponses.Get().(*simpleResponse)
	resp := &sr.resp
	resp.Status = line[9:]
	resp.StatusCode = code
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	resp.Request = req
	h := sr.header
	vals := make([]string, lines-1)
	var cl []string // the Content-Length values, in the map
	closing := false
	dup := false
	for f := 1; f < lines; f++ {
		l := head[ends[f-1]+2 : ends[f]]
		k, v, ok := strings.Cut(l, ":")
		if !ok || !httpguts.ValidHeaderFieldName(k) || !validText(v) {
			sr.put()
			return nil, 0 // also a folded line (it starts with a space)
		}
		k = h1.CanonicalKey(k)
		v = h1.TrimOWS(v)
		switch k {
		case "Transfer-Encoding", "Trailer", "Pragma":
			sr.put()
			return nil, 0 // http.ReadResponse rewrites or interprets these
		case "Connection":
			closing = closing || httpguts.HeaderValuesContainsToken([]string{v}, "close")
		}
		vals[0] = v
		one := vals[:1:1]
		vals = vals[1:]
		n := len(h)
		h[k] = one
		if len(h) == n {
			dup = true // the value just replaced an earlier one: gathered again below
		}
		if k == "Content-Length" {
			cl = one
		}
	}
	if dup {
		// A field repeated: its values, in order, come from the head again. Rare in
		// answers (Set-Cookie), so the usual one is spared a lookup per field.
		sr.gather(head[len(line)+2:])
		cl = h["Content-Length"]
	}
	if closing {
		sr.put()
		return nil, 0 // http.ReadResponse removes the field and sets Close
	}
	if len(cl) != 1 {
		sr.put()
		return nil, 0 // none (the body ends with the connection) or repeated
	}
	length, ok := h1.ParseLength(cl[0])
	if !ok {
		sr.put()
		return nil, 0
	}
	resp.Header = h
	resp.ContentLength = length
	if length == 0 {
		resp.Body = http.NoBody
	} else {
		sr.body.left = length
		resp.Body = &sr.body
	}
	return sr, end + 2
}

// gather rebuilds sr.header from the fields of head (every line with its CRLF, already
// checked), repeated fields with all their values in order.
func (sr *simpleResponse) gather(fields string) {
	h := sr.header
	clear(h)
	for fields != "" {
		var l string
		l, fields, _ = strings.Cut(fields, "\r\n")
		k, v, _ := strings.Cut(l, ":")
		k = h1.CanonicalKey(k)
		h[k] = append(h[k], h1.TrimOWS(v))
	}
}

// validText reports whether s holds only what net/textproto accepts in a field value:
// visible characters, spaces, tabs and obs-text.
func validText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// simpleResponse is the whole of what parseSimpleHead needs beyond the buffer and the
// values: its result, the header map and the body reader, pooled together (Release).
type simpleResponse struct {
	resp   http.Response
	body   lengthBody
	header http.Header
}

var simpleResponses = sync.Pool{New: func() any {
	return &simpleResponse{header: make(http.Header, 8)}
}}

// maxPooledFields is the largest header map kept for the next response.
const maxPooledFields = 32

// put empties sr and returns it to the pool.
func (sr *simpleResponse) put() {
	h := sr.header
	if len(h) > maxPooledFields {
		h = make(http.Header, 8) // a rare large head does not stay in the pool
	}
	clear(h)
	*sr = simpleResponse{header: h}
	simpleResponses.Put(sr)
}

// Release hands the memory of a response this Transport returned back for a later one: the
// Response itself and the map in its Header field (not the values, which the caller may
// keep, nor the strings). The caller must be done with both, and with the body, which must
// have been read to its end or closed; it may have exchanged the map for another it no
// longer uses. Any other response is left alone.
func Release(resp *http.Response) {
	rb, ok := resp.Body.(*respBody)
	if !ok || rb.head == nil || &rb.head.resp != resp || !rb.done {
		return
	}
	sr := rb.head
	rb.head, rb.rc = nil, nil
	if resp.Header != nil {
		sr.header = resp.Header
	}
	sr.put()
}

// lengthBody reads a body of a known, positive length from the connection's buffer.
type lengthBody struct {
	br   *bufio.Reader
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
