package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// rawConn opens a plain connection to the test proxy, closed when the test ends.
func rawConn(t *testing.T, proxyURL string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(testutil.Timeout()))
	return c, bufio.NewReader(c)
}

func readResponse(t *testing.T, br *bufio.Reader, method string) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	return resp
}

// A backend's 103 Early Hints reaches the client before the final answer, with its fields,
// and fields the proxy set for the final answer (the sticky cookie) stay on the final one.
func TestEarlyHintsPassedOn(t *testing.T) {
	be := newBackend(t, "hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	})
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", true, member("hints", be.addr(), 1)))
	c, br := rawConn(t, tp.url)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	hints := readResponse(t, br, http.MethodGet)
	if hints.StatusCode != http.StatusEarlyHints || hints.Header.Get("Link") != "</app.css>; rel=preload; as=style" {
		t.Fatalf("first response %d %v, want 103 with the backend's Link", hints.StatusCode, hints.Header)
	}
	if got := hints.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Fatalf("the 103 carries the final answer's cookie %q", got)
	}
	final := readResponse(t, br, http.MethodGet)
	body, _ := io.ReadAll(final.Body)
	if final.StatusCode != http.StatusOK || string(body) != "final" {
		t.Fatalf("final response %d %q, want 200 %q", final.StatusCode, body, "final")
	}
	if got := final.Header.Values("Set-Cookie"); len(got) != 1 {
		t.Fatalf("the final response has cookies %q, want the sticky session's one", got)
	}
	if final.Header.Get("Link") != "" {
		t.Fatalf("the final response carries the 103's Link %q", final.Header.Get("Link"))
	}
}

// "Expect: 100-continue" is the backend's to answer: a backend that takes the body has its
// 100 Continue passed on, and one that refuses the request answers before the client sends
// the body, which never reaches it.
func TestExpectContinueDecidedByBackend(t *testing.T) {
	type seen struct{ path, expect, body string }
	got := make(chan seen, 2)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			// Answered without reading the body: net/http's server sends no 100 Continue.
			got <- seen{r.URL.Path, r.Header.Get("Expect"), ""}
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body) // sends the 100 Continue
		got <- seen{r.URL.Path, r.Header.Get("Expect"), string(b)}
		_, _ = io.WriteString(w, "took it")
	}))
	t.Cleanup(be.Close)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("be", be.Listener.Addr().String(), 1)))

	t.Run("accepted", func(t *testing.T) {
		c, br := rawConn(t, tp.url)
		if _, err := io.WriteString(c, "PUT /take HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if cont := readResponse(t, br, http.MethodPut); cont.StatusCode != http.StatusContinue {
			t.Fatalf("first response %d, want 100 Continue before the body", cont.StatusCode)
		}
		if _, err := io.WriteString(c, "hello"); err != nil {
			t.Fatal(err)
		}
		final := readResponse(t, br, http.MethodPut)
		body, _ := io.ReadAll(final.Body)
		if final.StatusCode != http.StatusOK || string(body) != "took it" {
			t.Fatalf("final response %d %q", final.StatusCode, body)
		}
		if s := testutil.Receive(t, got, "the backend's request"); s != (seen{"/take", "100-continue", "hello"}) {
			t.Fatalf("the backend saw %+v", s)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c, br := rawConn(t, tp.url)
		if _, err := io.WriteString(c, "PUT /refuse HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// The client has sent no body: only the backend's own answer can come.
		final := readResponse(t, br, http.MethodPut)
		if final.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("response %d, want the backend's 413 without a 100 Continue first", final.StatusCode)
		}
		if s := testutil.Receive(t, got, "the backend's request"); s != (seen{"/refuse", "100-continue", ""}) {
			t.Fatalf("the backend saw %+v", s)
		}
	})
}

// The trailer fields of a chunked request body reach the backend.
func TestRequestTrailersForwarded(t *testing.T) {
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		// The recording backend has read the body: the trailer is filled in.
		w.Header().Set("X-Got-Checksum", r.Trailer.Get("X-Checksum"))
	})
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("be", be.addr(), 1)))
	c, br := rawConn(t, tp.url)
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: app\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp := readResponse(t, br, http.MethodPost)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Got-Checksum"); got != "abc123" {
		t.Fatalf("the backend saw trailer X-Checksum %q, want %q", got, "abc123")
	}
	if got := be.last(t).Body; got != "hello" {
		t.Fatalf("the backend saw body %q", got)
	}
}
