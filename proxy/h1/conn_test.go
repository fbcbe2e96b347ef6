package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads return the given chunks one by one, then io.EOF.
type scriptConn struct {
	net.Conn
	chunks [][]byte
	read   int // bytes returned so far
}

func (s *scriptConn) Read(p []byte) (int, error) {
	for len(s.chunks) > 0 && len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	s.read += n
	return n, nil
}

func (s *scriptConn) Close() error { return nil }

// split cuts b into pieces of size n (the last may be shorter).
func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, append([]byte(nil), b[:n]...))
		b = b[n:]
	}
	return append(out, append([]byte(nil), b...))
}

// drain reads c to its end with reads of size rs and returns what was handed on and the
// error that ended it (nil for io.EOF).
func drain(t *testing.T, c net.Conn, rs int) ([]byte, error) {
	t.Helper()
	var out []byte
	p := make([]byte, rs)
	for range 1 << 20 {
		n, err := c.Read(p)
		out = append(out, p[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
	t.Fatal("reader never ended")
	return nil, nil
}

func guardRun(t *testing.T, lim Limits, in string, chunk, rs int) (out string, rej *Rejection, err error) {
	t.Helper()
	var got *Rejection
	g := NewGuard(lim, func(r Rejection) {
		if got != nil {
			t.Errorf("second rejection %v after %v", r, *got)
		}
		got = &r
	}, nil)
	c := g.Wrap(&scriptConn{chunks: split([]byte(in), chunk)})
	o, err := drain(t, c, rs)
	if got != nil {
		r, ok := From(c).Rejected(g.target)
		if !ok || r != *got {
			t.Errorf("Rejected(target) = %v, %v; want %v", r, ok, *got)
		}
		if !strings.HasSuffix(string(o), string(g.synthetic)) {
			t.Errorf("a rejection must hand on the synthetic request last; got %q", o)
		}
		o = o[:len(o)-len(g.synthetic)]
	}
	return string(o), got, err
}

const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

func TestHeadRules(t *testing.T) {
	long := strings.Repeat("a", 70<<10)
	many := func(n int) string {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
		for i := range n {
			b.WriteString("X-" + strings.Repeat("b", i%7+1) + ": 1\r\n")
		}
		return b.String() + "\r\n"
	}
	tests := []struct {
		name   string
		in     string
		status int // 0: handed on unchanged
	}{
		{"simple GET", get, 0},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"absolute-form http", "GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"absolute-form HTTPS upper case", "GET HTTPS://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"leading empty lines dropped", "\r\n\r\n" + get, 0},
		{"obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", 0},
		{"tab in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", 0},
		{"chunked TE case-insensitive", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 0},
		{"chunked with OWS", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n0\r\n\r\n", 0},
		{"Content-Length zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0},
		{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0},
		{"100 fields", many(99), 0},

		{"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"CL and TE trailing space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked \r\n\r\n", 400},
		{"CL and TE leading tab", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n", 400},
		{"TE as obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n", 400},
		{"TE value folded", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE on HTTP/1.0 with CL", "POST / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
		{"TE chunked twice in one field", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
		{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
		{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400},
		{"TE with NUL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x00\r\n\r\n", 400},
		{"TE name with space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n", 400},
		{"CL twice same value", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"CL twice different", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", 400},
		{"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"CL plus sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", 400},
		{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd", 400},
		{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
		{"CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"bare LF line end", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400},
		{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400},
		{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"no Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Host on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"double space in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: a\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"HTTP/2.0 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
		{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"absolute-form ftp", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"fragment in target", "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"control in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"upgrade with body", "POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nab", 400},
		{"101 fields", many(100), 431},
		{"field too long", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", 431},
		{"request line too long", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 7, 4096, 1 << 20} {
				out, rej, err := guardRun(t, DefaultLimits(), tt.in, chunk, 4096)
				if err != nil {
					t.Fatalf("chunk %d: read error %v", chunk, err)
				}
				if tt.status == 0 {
					if rej != nil {
						t.Fatalf("chunk %d: rejected %v", chunk, *rej)
					}
					if want := strings.TrimLeft(tt.in, "\r\n"); out != want {
						t.Fatalf("chunk %d: handed on %q, want the input", chunk, out)
					}
					continue
				}
				if rej == nil || rej.Status != tt.status {
					t.Fatalf("chunk %d: rejection %v, want status %d", chunk, rej, tt.status)
				}
				if out != "" {
					t.Fatalf("chunk %d: handed on %q before the rejection, want nothing", chunk, out)
				}
			}
		})
	}
}

func TestBodiesSplitAnywhere(t *testing.T) {
	streams := []struct {
		name string
		in   string
	}{
		{"length bodies pipelined", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
			"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nGET" + get},
		{"chunked with extension and trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;name=value\r\nhello\r\nA \t;x\r\n0123456789\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n" + get},
		{"chunk data that looks like a request", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"1a\r\nGET /SMUGGLED HTTP/1.1\r\n\r\n\r\n0\r\n\r\n" + get},
		{"keep-alive HTTP/1.0", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nab" + get},
	}
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			for chunk := 1; chunk <= len(s.in); chunk++ {
				for _, rs := range []int{1, 3, 4096} {
					out, rej, err := guardRun(t, DefaultLimits(), s.in, chunk, rs)
					if err != nil || rej != nil {
						t.Fatalf("chunk %d read %d: err %v, rejection %v", chunk, rs, err, rej)
					}
					if out != s.in {
						t.Fatalf("chunk %d read %d: handed on %q", chunk, rs, out)
					}
				}
			}
		})
	}
}

func TestMalformedChunkedBody(t *testing.T) {
	const head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name, body string
		good       int // bytes of body handed on before the error
	}{
		{"no size", "\r\n", 0},
		{"bad size", "g\r\n", 0},
		{"0x size", "0x5\r\nhello\r\n0\r\n\r\n", 1},
		{"negative size", "-5\r\n", 0},
		{"16 digit size", "1000000000000000\r\n", 15},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", 1},
		{"more data than announced", "5\r\nhello world\r\n0\r\n\r\n", 8},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", 8},
		{"space inside size", "5 5\r\n", 2},
		{"control in extension", "5;a\x01\r\n", 3},
		{"trailer obs-fold", "0\r\nX: 1\r\n folded\r\n\r\n", 9},
		{"trailer with bare LF", "0\r\nX: 1\n\r\n", 7},
		{"trailer space before colon", "0\r\nX : 1\r\n\r\n", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 5, 4096} {
				out, rej, err := guardRun(t, DefaultLimits(), head+tt.body+get, chunk, 4096)
				if rej != nil {
					t.Fatalf("rejection %v: a body fault is a read error, not a rejected head", *rej)
				}
				if !errors.Is(err, ErrMalformedBody) {
					t.Fatalf("chunk %d: error %v, want ErrMalformedBody", chunk, err)
				}
				if want := head + tt.body[:tt.good]; out != want {
					t.Fatalf("chunk %d: handed on %q, want %q", chunk, out, want)
				}
			}
		})
	}
}

func TestRejectionAfterPipelinedRequest(t *testing.T) {
	first := "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd"
	bad := "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	out, rej, err := guardRun(t, DefaultLimits(), first+bad, 4096, 4096)
	if err != nil || rej == nil || rej.Status != 400 {
		t.Fatalf("err %v, rejection %v; want a 400 rejection", err, rej)
	}
	if out != first {
		t.Fatalf("handed on %q before the synthetic request, want the first request whole", out)
	}
}

func TestClosingRequestEndsTheStream(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nab",
	} {
		out, rej, err := guardRun(t, DefaultLimits(), in+"GARBAGE\r\n\r\n", 4096, 4096)
		if err != nil || rej != nil || out != in {
			t.Fatalf("%q: handed on %q (err %v, rejection %v); want the request and nothing after it", in, out, err, rej)
		}
	}
}

func TestUpgradePassesThrough(t *testing.T) {
	in := "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	frames := "\x81\x05hello not HTTP \r\n at all"
	out, rej, err := guardRun(t, DefaultLimits(), in+frames, 3, 4096)
	if err != nil || rej != nil || out != in+frames {
		t.Fatalf("handed on %q (err %v, rejection %v); want everything", out, err, rej)
	}
}

// A flood of tiny fields is refused once the count passes the limit, long before the byte
// limit, and the guard reads no more than the byte limit (plus one read) in any case.
func TestFieldFloodReadsBoundedBytes(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for b.Len() < 900<<10 {
		b.WriteString("a:b\r\n")
	}
	for _, lim := range []Limits{DefaultLimits(), {MaxHeaderBytes: 64 << 10, MaxHeaderCount: 1 << 20}} {
		sc := &scriptConn{chunks: split(b.Bytes(), 1024)}
		var got *Rejection
		readBefore := 0
		c := NewGuard(lim, func(r Rejection) { got, readBefore = &r, sc.read }, nil).Wrap(sc)
		if _, err := drain(t, c, 4096); err != nil {
			t.Fatal(err)
		}
		if got == nil || got.Status != 431 {
			t.Fatalf("limits %+v: rejection %v, want 431", lim, got)
		}
		if readBefore > lim.MaxHeaderBytes+1024 || readBefore > 5*lim.MaxHeaderCount+1024 {
			t.Fatalf("limits %+v: read %d bytes before refusing", lim, readBefore)
		}
	}
}

func TestIdleConnectionHoldsNoBuffer(t *testing.T) {
	g := NewGuard(DefaultLimits(), nil, nil)
	in := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + get
	c := From(g.Wrap(&scriptConn{chunks: [][]byte{[]byte(in)}}))
	p := make([]byte, 4096)
	var out []byte
	for len(out) < len(in) {
		n, err := c.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p[:n]...)
	}
	if c.r != nil {
		t.Fatalf("after handing on every request the connection holds its reading state (%d buffered bytes, pooled buffer %v)", len(c.r.buf), c.r.mem != nil)
	}
}

func TestRejectedOnlyForTheSyntheticTarget(t *testing.T) {
	g := NewGuard(DefaultLimits(), nil, nil)
	c := From(g.Wrap(&scriptConn{chunks: [][]byte{[]byte("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")}}))
	if _, ok := c.Rejected(g.target); ok {
		t.Fatal("rejected before anything was read")
	}
	if _, err := drain(t, c, 64); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Rejected("/"); ok {
		t.Fatal("a client's own target counts as the synthetic request")
	}
	if r, ok := c.Rejected(g.target); !ok || r.Status != 400 {
		t.Fatalf("Rejected = %v, %v", r, ok)
	}
	if other := NewGuard(DefaultLimits(), nil, nil); other.target == g.target {
		t.Fatal("two guards share a secret target")
	}
}

// The deadline a server sets on the wrapped connection governs the guard's reads of a head.
func TestDeadlineAppliesToHeadReads(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewGuard(DefaultLimits(), nil, nil).Wrap(a)
	go func() { _, _ = b.Write([]byte("GET / HTTP/1.1\r\nHost")) }()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 64))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read of an unfinished head: %v, want a timeout", err)
	}
}

// recordConn records what is written to it.
type recordConn struct {
	net.Conn
	wrote []byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.wrote = append(r.wrote, p...)
	return len(p), nil
}

func TestH2CPriorKnowledge(t *testing.T) {
	frames := clientPreface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00" // the preface and an empty SETTINGS frame
	for _, chunk := range []int{1, 5, 24, 4096} {
		var inner *recordConn
		g := NewGuard(DefaultLimits(), nil, func(c net.Conn) net.Conn {
			inner = &recordConn{Conn: c}
			return inner
		})
		c := g.Wrap(&scriptConn{chunks: split([]byte(frames), chunk)})
		out, err := drain(t, c, 7)
		if err != nil || string(out) != frames {
			t.Fatalf("chunk %d: read %q (%v), want the HTTP/2 bytes unchanged", chunk, out, err)
		}
		if inner == nil {
			t.Fatalf("chunk %d: the connection did not switch to HTTP/2", chunk)
		}
		if _, err := c.Write([]byte("server frames")); err != nil || string(inner.wrote) != "server frames" {
			t.Fatalf("chunk %d: writes after the switch went elsewhere: %q", chunk, inner.wrote)
		}
	}
	// Only at the start of a connection: after an HTTP/1 request the preface is a bad head.
	var switched bool
	g := NewGuard(DefaultLimits(), nil, func(c net.Conn) net.Conn { switched = true; return c })
	var got *Rejection
	g.onReject = func(r Rejection) { got = &r }
	if _, err := drain(t, g.Wrap(&scriptConn{chunks: [][]byte{[]byte(get + clientPreface)}}), 4096); err != nil {
		t.Fatal(err)
	}
	if switched || got == nil || got.Status != 505 {
		t.Fatalf("preface after a request: switched %v, rejection %v; want a 505 rejection", switched, got)
	}
}
