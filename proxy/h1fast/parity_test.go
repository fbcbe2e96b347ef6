package h1fast

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/proxy/h1"
)

// seen is what a handler learns of a request, compared between the two parsers.
type seen struct {
	Method, RequestURI, URL, Proto, Host string
	Major, Minor                         int
	Header                               http.Header
	ContentLength                        int64
	TransferEncoding                     []string
	Close                                bool
	Body                                 string
	BodyErr                              bool
	Trailer                              http.Header // after the body's end
}

func record(r *http.Request) seen {
	b, err := io.ReadAll(r.Body)
	h := r.Header.Clone()
	if len(h) == 0 {
		h = nil
	}
	return seen{
		Method: r.Method, RequestURI: r.RequestURI, URL: r.URL.String(), Proto: r.Proto, Host: r.Host,
		Major: r.ProtoMajor, Minor: r.ProtoMinor, Header: h, ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding, Close: r.Close, Body: string(b), BodyErr: err != nil,
		Trailer: r.Trailer.Clone(),
	}
}

// viaFastPath serves in on an in-memory connection with the fast path's loop and returns the
// requests its handler saw.
func viaFastPath(t testing.TB, in []byte, g *h1.Guard) []seen {
	var got []seen
	s := &Server{
		Guard: g,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = append(got, record(r))
		}),
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	c := s.newConn(&memConn{r: bytes.NewReader(in)})
	if c == nil {
		t.Fatal("server refused the connection")
	}
	c.serve()
	return got
}

// viaNetHTTP reads the same stream, through the same guard, with net/http's request parser.
func viaNetHTTP(in []byte, g *h1.Guard) []seen {
	var got []seen
	br := bufio.NewReader(g.Wrap(&memConn{r: bytes.NewReader(in)}))
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return got
		}
		if !httpguts.ValidHostHeader(r.Host) || !expectOK(r) {
			return got // net/http's server answers 400 or 417 and closes
		}
		got = append(got, record(r))
		if r.Close {
			return got
		}
	}
}

func expectOK(r *http.Request) bool {
	ev := r.Header["Expect"]
	return len(ev) == 0 || len(ev) == 1 && strings.EqualFold(ev[0], "100-continue")
}

var parityCases = []struct{ name, in string }{
	{"simple GET", "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"},
	{"repeated and lower-case fields", "GET / HTTP/1.1\r\nhost: h\r\nx-a: 1\r\nX-A: 2\r\naccept:  text/html \t\r\n\r\n"},
	{"length body then pipelined GET", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"chunked body with trailer", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"},
	{"chunked body with announced trailers", "POST / HTTP/1.1\r\nHost: h\r\nTrailer: x-sum, X-Other\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Extra: e\r\n\r\n"},
	{"chunked body with an announced trailer that never comes", "POST / HTTP/1.1\r\nHost: h\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	{"trailer announced without a chunked body", "POST / HTTP/1.1\r\nHost: h\r\nTrailer: X-Sum\r\nContent-Length: 2\r\n\r\nok"},
	{"HTTP/1.0 without keep-alive", "GET / HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n"},
	{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /two HTTP/1.0\r\nHost: h\r\n\r\n"},
	{"Connection close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"absolute form", "GET http://other.example:8080/x?y HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"escaped path", "GET /a%2Fb/%7Ec HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"OPTIONS star", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"expect continue", "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"},
	{"unknown expectation", "GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n"},
	{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
	{"zero length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"empty lines before", "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"smuggling attempt", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"truncated body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"},
	{"long header", "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("v", 6000) + "\r\n\r\n"},
}

// TestParserAgainstNetHTTP: every request net/http's parser reads from what the guard hands
// on, the fast path's handler sees alike: method, target, version, host, fields, framing and
// body; and it serves no request net/http would not.
func TestParserAgainstNetHTTP(t *testing.T) {
	g := h1.NewGuard(h1.DefaultLimits(), nil, nil)
	for _, tc := range parityCases {
		t.Run(tc.name, func(t *testing.T) {
			want := viaNetHTTP([]byte(tc.in), g)
			got := viaFastPath(t, []byte(tc.in), g)
			if len(want) == 0 && tc.name != "bad host" && tc.name != "unknown expectation" {
				t.Fatalf("net/http read no request from %q: a broken case", tc.in)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast path saw\n%+v\nnet/http saw\n%+v", got, want)
			}
		})
	}
}

// FuzzAgainstNetHTTP compares the two parsers on arbitrary client streams.
func FuzzAgainstNetHTTP(f *testing.F) {
	for _, tc := range parityCases {
		f.Add([]byte(tc.in))
	}
	g := h1.NewGuard(h1.Limits{MaxHeaderBytes: 2048, MaxHeaderCount: 20}, nil, nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		want := viaNetHTTP(in, g)
		got := viaFastPath(t, in, g)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("input %q:\nfast path saw\n%+v\nnet/http saw\n%+v", in, got, want)
		}
	})
}

// memConn is a client connection whose bytes are r; what is written to it is dropped.
type memConn struct {
	r *bytes.Reader
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzOriginForm holds the fast reading of a request target to url.ParseRequestURI's, for
// every target it takes.
func FuzzOriginForm(f *testing.F) {
	for _, s := range []string{"/", "/api/v1/users?id=7", "/a?", "/a?b?c", "//x/y", "/a%20b", "/caf\xc3\xa9", "/a b",
		"/a#f", "/$&+,:;=@-_.~", "/a?x=%zz", "*", "http://h/a", "/a!'()*", "/a?\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var got url.URL
		if !originForm(target, &got) {
			return
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: taken, but url.ParseRequestURI refuses it: %v", target, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("%q:\nfast    %#v\nnet/url %#v", target, got, *want)
		}
	})
}
