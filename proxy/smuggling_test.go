package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rawBackend records every request it reads completely, body included, as "METHOD URI
// host=HOST body=BODY", and counts those whose body broke off.
type rawBackend struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []string
	broken int
}

func newRawBackend(t *testing.T) *rawBackend {
	b := &rawBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		b.mu.Lock()
		if err != nil {
			b.broken++
		} else {
			b.seen = append(b.seen, r.Method+" "+r.RequestURI+" host="+r.Host+" body="+string(body))
		}
		b.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *rawBackend) take() (seen []string, broken int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen, broken = b.seen, b.broken
	b.seen, b.broken = nil, 0
	return seen, broken
}

// failureCounter counts passive outcomes other than success.
type failureCounter struct {
	mu       sync.Mutex
	failures int
}

func (f *failureCounter) Report(_ string, o Outcome) {
	if o != OutcomeSuccess {
		f.mu.Lock()
		f.failures++
		f.mu.Unlock()
	}
}

func (f *failureCounter) take() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.failures
	f.failures = 0
	return n
}

type wallCase struct {
	name     string
	send     string
	statuses []int
	closed   bool     // the proxy closes the connection after the last response
	seen     []string // requests the backend read whole, in order
	broken   int      // requests whose body broke off at the backend, at most
}

const bodyTE = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

// wallCases is the request-smuggling and bad-input wall every client listener must pass.
func wallCases() []wallCase {
	smuggled := "GET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n"
	fields := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-F" + strings.Repeat("x", i%5) + ": v\r\n")
		}
		return b.String()
	}
	big := strings.Repeat("a", 70<<10)
	bad := []int{400}
	return []wallCase{
		// Content-Length with Transfer-Encoding, both orders, every whitespace and fold variant.
		{name: "CL then TE", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "TE then CL", send: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "HTTP/1.0 keep-alive TE then CL", send: "POST / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n23\r\n" + smuggled + "\r\n0\r\n\r\n", statuses: bad, closed: true},
		{name: "CL and TE keep-alive", send: "POST / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE chunked trailing space", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE leading tab", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE without space", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding:chunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE trailing tab", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE vertical tab", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE tab before colon", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE chunked then identity", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE as obs-fold", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and folded TE value", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "CL and TE name with space before colon", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", statuses: bad, closed: true},
		{name: "CL and TE upper case", send: "POST / HTTP/1.1\r\nHost: t\r\nCONTENT-LENGTH: 4\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n" + smuggled, statuses: bad, closed: true},
		// Content-Length alone, duplicated or malformed.
		{name: "duplicate CL same value", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", statuses: bad, closed: true},
		{name: "duplicate CL different values", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd", statuses: bad, closed: true},
		{name: "CL list", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 4\r\n\r\nabcd", statuses: bad, closed: true},
		{name: "CL signed", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd", statuses: bad, closed: true},
		{name: "CL not a number", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4a\r\n\r\nabcd", statuses: bad, closed: true},
		// Transfer-Encoding variants.
		{name: "TE on HTTP/1.0", send: "POST / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", statuses: bad, closed: true},
		{name: "TE gzip", send: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", statuses: bad, closed: true},
		{name: "TE gzip then chunked", send: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", statuses: bad, closed: true},
		{name: "TE twice", send: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", statuses: bad, closed: true},
		{name: "TE xchunked", send: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", statuses: bad, closed: true},
		// Chunked bodies: the head is fine, the body is not. 400 from the proxy, never 502.
		{name: "chunk size not hex", send: bodyTE + "zz\r\nabc\r\n0\r\n\r\n", statuses: bad, closed: true, broken: 1},
		{name: "chunk size 0x", send: bodyTE + "0x3\r\nabc\r\n0\r\n\r\n", statuses: bad, closed: true, broken: 1},
		{name: "chunk size bare LF", send: bodyTE + "3\nabc\r\n0\r\n\r\n", statuses: bad, closed: true, broken: 1},
		{name: "chunk data bare LF", send: bodyTE + "3\r\nabc\n0\r\n\r\n", statuses: bad, closed: true, broken: 1},
		{name: "more chunk data than announced", send: bodyTE + "3\r\nabcdef\r\n0\r\n\r\n", statuses: bad, closed: true, broken: 1},
		{name: "chunk size overflow", send: bodyTE + "fffffffffffffffff\r\n", statuses: bad, closed: true, broken: 1},
		{name: "chunk extension with control", send: bodyTE + "3;a=\x01\r\nabc\r\n0\r\n\r\n", statuses: bad, closed: true, broken: 1},
		{name: "valid chunked with trailer", send: bodyTE + "3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", statuses: []int{200}, seen: []string{"POST / host=t body=abc"}},
		// Field syntax.
		{name: "NUL in value", send: "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", statuses: bad, closed: true},
		{name: "bare CR in value", send: "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", statuses: bad, closed: true},
		{name: "bare LF line end", send: "GET / HTTP/1.1\nHost: t\n\n", statuses: bad, closed: true},
		{name: "space before colon", send: "GET / HTTP/1.1\r\nHost : t\r\n\r\n", statuses: bad, closed: true},
		{name: "two Host", send: "GET / HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", statuses: bad, closed: true},
		{name: "no Host", send: "GET / HTTP/1.1\r\n\r\n", statuses: bad, closed: true},
		// Targets and protocols.
		{name: "absolute-form", send: "GET http://t/abs?q=1 HTTP/1.1\r\nHost: t\r\n\r\n", statuses: []int{200}, seen: []string{"GET /abs?q=1 host=t body="}},
		{name: "absolute-form of another scheme", send: "GET ftp://t/ HTTP/1.1\r\nHost: t\r\n\r\n", statuses: bad, closed: true},
		{name: "CONNECT", send: "CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", statuses: []int{405}, closed: true},
		{name: "Upgrade h2c", send: "GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n" + smuggled, statuses: bad, closed: true},
		{name: "HTTP/2 preface", send: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", statuses: []int{505}, closed: true},
		// Pipelining: each request answered in order; a bad one ends the connection after the good ones.
		{name: "pipelined", send: "GET /a HTTP/1.1\r\nHost: t\r\n\r\nPOST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\nHost: t\r\n\r\n",
			statuses: []int{200, 200, 200}, seen: []string{"GET /a host=t body=", "POST /b host=t body=xyz", "GET /c host=t body="}},
		{name: "pipelined then CL and TE", send: "GET /a HTTP/1.1\r\nHost: t\r\n\r\nPOST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			statuses: []int{200, 400}, closed: true, seen: []string{"GET /a host=t body="}},
		{name: "request in a length body stays body", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\n\r\n" + smuggled,
			statuses: []int{200}, seen: []string{"POST / host=t body=" + smuggled}},
		{name: "more body than announced", send: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nabGARBAGE\r\n\r\n",
			statuses: []int{200, 400}, closed: true, seen: []string{"POST / host=t body=ab"}},
		// Limits.
		{name: "100 fields", send: "GET / HTTP/1.1\r\nHost: t\r\n" + fields(99) + "\r\n", statuses: []int{200}, seen: []string{"GET / host=t body="}},
		{name: "101 fields", send: "GET / HTTP/1.1\r\nHost: t\r\n" + fields(100) + "\r\n", statuses: []int{431}, closed: true},
		{name: "head over 64 KiB", send: "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + big + "\r\n\r\n", statuses: []int{431}, closed: true},
		{name: "request line over 64 KiB", send: "GET /" + big + " HTTP/1.1\r\nHost: t\r\n\r\n", statuses: []int{414}, closed: true},
	}
}

// TestRequestSmugglingWall sends each case on a fresh connection to the plain and the TLS
// listener, and checks the statuses, whether the connection closed, the requests the backend
// read whole, and that no bad input counted against the backend.
func TestRequestSmugglingWall(t *testing.T) {
	passive := &failureCounter{}
	reg := prometheus.NewRegistry()
	p := newProxy(t, DefaultConfig(), Options{Passive: passive, Registerer: reg}, nil)
	cfg, roots := tlsServerConfig(t)
	s, plain, _ := runServer(t, cfg, p)
	secure := s.Addrs()[1].String()
	dials := map[string]func() (net.Conn, error){
		"plain": func() (net.Conn, error) { return net.Dial("tcp", plain) },
		"tls": func() (net.Conn, error) {
			return tls.Dial("tcp", secure, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
		},
	}
	cases := wallCases()
	for _, listener := range []string{"plain", "tls"} {
		for _, tc := range cases {
			t.Run(listener+"/"+tc.name, func(t *testing.T) {
				// A backend of its own per case: a broken request reaches its backend after the
				// proxy answered, and must not be counted against the next case.
				be := newRawBackend(t)
				if err := p.Apply(onePoolSnapshot("round_robin", false, member("app", be.srv.Listener.Addr().String(), 1))); err != nil {
					t.Fatal(err)
				}
				c, err := dials[listener]()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				runWallCase(t, c, tc)
				want := tc.seen
				if !tc.closed {
					want = append(slices.Clone(want), "GET /alive host=t body=")
				}
				seen, broken := be.take()
				if !slices.Equal(seen, want) {
					t.Errorf("backend read %q, want %q", seen, want)
				}
				if broken > tc.broken {
					t.Errorf("backend saw %d broken requests, want at most %d", broken, tc.broken)
				}
				if n := passive.take(); n != 0 {
					t.Errorf("%d passive failures reported against a healthy backend", n)
				}
			})
		}
	}
	if n := counterValue(t, reg, "veloflux_client_rejections_total", map[string]string{"protocol": "http1", "reason": "malformed body"}); n != 2*7 {
		t.Errorf("malformed chunked bodies counted: %v, want 14", n)
	}
	// Ten cases per listener are refused for carrying both framings; the others with both
	// headers are refused for an earlier fault (a fold, HTTP/1.0, a bad field name or value).
	if n := counterValue(t, reg, "veloflux_client_rejections_total", map[string]string{"protocol": "http1", "reason": "Content-Length with Transfer-Encoding"}); n != 2*10 {
		t.Errorf("rejections counted for both framings: %v, want 20", n)
	}
}

// runWallCase writes tc.send, reads the expected responses and checks the connection's fate.
func runWallCase(t *testing.T, c net.Conn, tc wallCase) {
	t.Helper()
	// A guard against a hung proxy only; every wait below ends on an event first.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() { _, _ = io.WriteString(c, tc.send) }() // a large send must not block reading
	br := bufio.NewReader(c)
	for i, want := range tc.statuses {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("response %d: %d %q, want %d", i+1, resp.StatusCode, body, want)
		}
		if want >= 400 && !strings.Contains(string(body), "request id") {
			t.Errorf("response %d: body %q is not the proxy's error page", i+1, body)
		}
	}
	if tc.closed {
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("connection still open after the responses (read: %v)", err)
		}
		return
	}
	if _, err := io.WriteString(c, "GET /alive HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatalf("connection closed after the responses: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("connection unusable after the responses: %v", err)
	}
	resp.Body.Close()
}
