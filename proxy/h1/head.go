package h1

import "bytes"

// Limits bound what one request head may cost.
type Limits struct {
	// MaxHeaderBytes caps a request head, request line and final empty line included, and
	// separately the trailer section of a chunked body. Default 64 KiB.
	MaxHeaderBytes int
	// MaxHeaderCount caps the header fields of a request, and separately its trailer fields.
	// Default 100.
	MaxHeaderCount int
}

// DefaultLimits returns the defaults documented on each field.
func DefaultLimits() Limits {
	return Limits{MaxHeaderBytes: 64 << 10, MaxHeaderCount: 100}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxHeaderCount <= 0 {
		l.MaxHeaderCount = d.MaxHeaderCount
	}
	return l
}

// Rejection is why a request was refused: the status to answer and a short reason, a fixed
// string fit for a metric label and a response body.
type Rejection struct {
	Status int
	Reason string
}

// The rejections. Reasons are stable: they label the rejection metric.
var (
	rejBadRequestLine  = Rejection{400, "malformed request line"}
	rejBadVersion      = Rejection{505, "unsupported HTTP version"}
	rejConnect         = Rejection{405, "CONNECT is not supported"}
	rejBadTarget       = Rejection{400, "malformed request target"}
	rejBareLF          = Rejection{400, "line not ended by CRLF"}
	rejBadFieldName    = Rejection{400, "malformed header field name"}
	rejBadFieldValue   = Rejection{400, "invalid character in header field value"}
	rejObsFold         = Rejection{400, "obsolete line folding"}
	rejTooManyFields   = Rejection{431, "too many header fields"}
	rejHeadTooLarge    = Rejection{431, "request header too large"}
	rejLineTooLong     = Rejection{414, "request line too long"}
	rejHost            = Rejection{400, "missing or repeated Host"}
	rejBadLength       = Rejection{400, "invalid Content-Length"}
	rejLengthAndTE     = Rejection{400, "Content-Length with Transfer-Encoding"}
	rejBadTE           = Rejection{400, "Transfer-Encoding other than chunked"}
	rejTEOnHTTP10      = Rejection{400, "Transfer-Encoding on HTTP/1.0"}
	rejUpgradeWithBody = Rejection{400, "upgrade request with a body"}
)

// framing is how a request's body is delimited.
type framing uint8

const (
	frameNone    framing = iota // no body
	frameLength                 // Content-Length bytes
	frameChunked                // chunked transfer coding
)

// head collects what the framing decision needs while a head's lines go by. Zeroed for every
// request; nothing in it points into the buffer.
type head struct {
	lines   int // lines seen, request line included
	fields  int
	http10  bool
	hosts   int
	lengths int
	length  int64
	tes     int
	chunked bool // the single Transfer-Encoding is exactly chunked
	close   bool // Connection lists close
	alive   bool // Connection lists keep-alive
	connUpg bool // Connection lists upgrade
	upgrade bool // an Upgrade field is present
}

// line takes one line of a head without its CRLF. It returns done at the empty line that ends
// the head, or a rejection.
func (h *head) line(l []byte, maxFields int) (done bool, rej Rejection, ok bool) {
	h.lines++
	if h.lines == 1 {
		rej, ok = h.requestLine(l)
		return false, rej, ok
	}
	if len(l) == 0 {
		rej, ok = h.finish()
		return ok, rej, ok
	}
	if l[0] == ' ' || l[0] == '\t' {
		return false, rejObsFold, false
	}
	if h.fields++; h.fields > maxFields {
		return false, rejTooManyFields, false
	}
	name, value, rej, ok := splitField(l)
	if !ok {
		return false, rej, false
	}
	rej, ok = h.field(name, value)
	return false, rej, ok
}

// requestLine checks method SP target SP version (RFC 9112 section 3).
func (h *head) requestLine(l []byte) (Rejection, bool) {
	sp1 := bytes.IndexByte(l, ' ')
	if sp1 <= 0 {
		return rejBadRequestLine, false
	}
	method := l[:sp1]
	rest := l[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return rejBadRequestLine, false
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if !isToken(method) {
		return rejBadRequestLine, false
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		h.http10 = true
	default:
		if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			return rejBadVersion, false
		}
		return rejBadRequestLine, false
	}
	if string(method) == "CONNECT" {
		return rejConnect, false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return rejBadTarget, false
		}
	}
	switch {
	case target[0] == '/':
	case len(target) == 1 && target[0] == '*':
		if string(method) != "OPTIONS" {
			return rejBadTarget, false
		}
	case hasPrefixFold(target, "http://") || hasPrefixFold(target, "https://"):
	default:
		return rejBadTarget, false
	}
	return Rejection{}, true
}

// splitField splits name: OWS value OWS (RFC 9112 section 5) and checks both parts.
func splitField(l []byte) (name, value []byte, rej Rejection, ok bool) {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || !isToken(l[:colon]) {
		// A space before the colon lands here too: it is not a token character.
		return nil, nil, rejBadFieldName, false
	}
	name, value = l[:colon], trimOWS(l[colon+1:])
	for _, c := range value {
		if !fieldValueByte(c) {
			return nil, nil, rejBadFieldValue, false
		}
	}
	return name, value, Rejection{}, true
}

// field records the fields that decide framing and connection handling.
func (h *head) field(name, value []byte) (Rejection, bool) {
	switch {
	case equalFold(name, "host"):
		h.hosts++
	case equalFold(name, "content-length"):
		h.lengths++
		n, ok := ParseLength(value)
		if !ok {
			return rejBadLength, false
		}
		h.length = n
	case equalFold(name, "transfer-encoding"):
		h.tes++
		h.chunked = equalFold(value, "chunked")
	case equalFold(name, "connection"):
		for tok := range bytes.SplitSeq(value, []byte{','}) {
			tok = trimOWS(tok)
			switch {
			case equalFold(tok, "close"):
				h.close = true
			case equalFold(tok, "keep-alive"):
				h.alive = true
			case equalFold(tok, "upgrade"):
				h.connUpg = true
			}
		}
	case equalFold(name, "upgrade"):
		h.upgrade = true
	}
	return Rejection{}, true
}

// finish applies the rules that need the whole head and decides the framing.
func (h *head) finish() (Rejection, bool) {
	if h.hosts > 1 || h.hosts == 0 && !h.http10 {
		return rejHost, false
	}
	if h.lengths > 1 {
		return rejBadLength, false
	}
	if h.tes > 0 {
		switch {
		case h.http10:
			return rejTEOnHTTP10, false
		case h.lengths > 0:
			return rejLengthAndTE, false
		case h.tes > 1 || !h.chunked:
			return rejBadTE, false
		}
	}
	if h.upgrades() && h.framing() != frameNone {
		return rejUpgradeWithBody, false
	}
	return Rejection{}, true
}

// closing says the connection ends after this request (RFC 9112 section 9.3).
func (h *head) closing() bool { return h.close || h.http10 && !h.alive }

func (h *head) upgrades() bool { return h.connUpg && h.upgrade }

func (h *head) framing() framing {
	switch {
	case h.tes > 0:
		return frameChunked
	case h.lengths > 0 && h.length > 0:
		return frameLength
	}
	return frameNone
}

// ParseLength reads a Content-Length: 1 to 18 digits, nothing else (no sign, no list). The
// fast server and client read lengths with it too, so every reader of a length agrees.
func ParseLength[T ~string | ~[]byte](v T) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// fieldValueByte: VCHAR, obs-text, SP and HTAB (RFC 9110 section 5.5); NUL, CR, LF, DEL and
// the other controls are refused.
func fieldValueByte(c byte) bool { return c >= 0x20 && c != 0x7f || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lower-case ASCII s, ignoring b's case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}
