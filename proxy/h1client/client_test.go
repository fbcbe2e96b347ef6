package h1client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a net/http server that counts the connections it accepted.
func backend(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newTransport(t *testing.T, o Options) *Transport {
	tr := New(o)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func get(t *testing.T, tr *Transport, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return do(t, tr, req)
}

// do sends req and reads the whole answer; a failure fails the test.
func do(t *testing.T, tr *Transport, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

// RoundTripWith's fields reach the backend with the request's own, on a request with a body
// too, and on the second request of a connection as on the first.
func TestRoundTripWithFields(t *testing.T) {
	type seen struct{ traceparent, other, body string }
	got := make(chan seen, 2)
	srv, conns := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Get("Traceparent"), r.Header.Get("X-Other"), string(b)}
	})
	tr := newTransport(t, Options{})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	for i, body := range []string{"", "hello"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
		req.Header.Set("X-Other", "o")
		resp, err := tr.RoundTripWith(req, []byte("Traceparent: "+tp+"\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if s := <-got; s != (seen{tp, "o", body}) {
			t.Errorf("request %d: backend saw %+v, want traceparent %q, X-Other o, body %q", i, s, tp, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// At steady state every request goes over the one kept connection.
func TestReusesConnections(t *testing.T) {
	srv, conns := backend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	tr := newTransport(t, Options{})
	for i := range 50 {
		if resp, body := get(t, tr, srv.URL+"/"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("50 sequential requests opened %d connections, want 1", got)
	}
	if got := tr.IdleConns(); got != 1 {
		t.Fatalf("%d idle connections, want 1", got)
	}
}

// Bodies of any size stream both ways: a request body of unknown length goes chunked, and
// both arrive whole.
func TestStreamsLargeBodies(t *testing.T) {
	const size = 8 << 20
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		w.Header().Set("X-Framing", strings.Join(r.TransferEncoding, ","))
		_, _ = w.Write(h.Sum(nil))
		_, _ = io.Copy(w, io.LimitReader(zeros{}, size))
	})
	tr := newTransport(t, Options{})
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	want := sha256.Sum256(payload)
	for _, tc := range []struct {
		name    string
		length  int64
		framing string
	}{{"known length", size, ""}, {"unknown length (chunked)", -1, "chunked"}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", io.NopCloser(bytes.NewReader(payload)))
			req.ContentLength = tc.length
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("X-Framing"); got != tc.framing {
				t.Fatalf("request framed %q, want %q", got, tc.framing)
			}
			sum := make([]byte, sha256.Size)
			if _, err := io.ReadFull(resp.Body, sum); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sum, want[:]) {
				t.Fatal("the backend received a different body")
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != size {
				t.Fatalf("response body: %d bytes, %v; want %d", n, err, size)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A pooled connection that the backend closed while it sat idle is not the request's failure:
// the request goes again on a new connection.
func TestRetriesOnConnectionClosedWhileIdle(t *testing.T) {
	srv, conns := backend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	tr := newTransport(t, Options{})
	get(t, tr, srv.URL+"/")
	srv.CloseClientConnections()
	if resp, body := get(t, tr, srv.URL+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the backend closed the idle connection: %d %q", resp.StatusCode, body)
	}
	if got := conns.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
}

// Errors keep the kind the proxy decides on: a refused connect is a dial error, a slow
// backend a timeout, and a request whose context ends reports the context's error.
func TestErrorKinds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	block := make(chan struct{})
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer close(block)

	tr := newTransport(t, Options{ResponseHeaderTimeout: 50 * time.Millisecond})
	req, _ := http.NewRequest(http.MethodGet, "http://"+dead+"/", nil)
	_, err = tr.RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("dead backend: %v, want a dial error", err)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	_, err = tr.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("slow backend: %v, want a timeout", err)
	}

	slow := newTransport(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := slow.RoundTrip(req)
		errc <- err
	}()
	cancel()
	if err := testutil.Receive(t, errc, "the canceled request returns"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v, want context.Canceled", err)
	}
}

// A 101 answer's body is the connection, writable, as a reverse proxy's upgrade needs.
func TestUpgradeBodyIsTheConnection(t *testing.T) {
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(c, brw)
	})
	tr := newTransport(t, Options{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T is not an io.ReadWriteCloser", resp.Body)
	}
	defer rw.Close()
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

// Release hands a finished response's head back for the next response, which reads its own
// fields into it; values the caller kept from the first stay as they were. A response whose
// body is still being read is not taken.
func TestReleaseReusesHead(t *testing.T) {
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		_, _ = io.WriteString(w, r.URL.Path)
	})
	tr := newTransport(t, Options{})
	first, body := get(t, tr, srv.URL+"/first")
	kept := first.Header["X-Path"]
	if body != "/first" || kept[0] != "/first" {
		t.Fatalf("first answer %q, X-Path %q", body, kept)
	}
	Release(first)
	if first.Header != nil || first.StatusCode != 0 {
		t.Fatal("a released response was not handed back")
	}
	second, body := get(t, tr, srv.URL+"/second")
	if body != "/second" || second.Header.Get("X-Path") != "/second" || len(second.Header["X-Path"]) != 1 {
		t.Fatalf("second answer %q, header %v", body, second.Header)
	}
	if kept[0] != "/first" {
		t.Fatalf("a value kept from the first answer became %q", kept[0])
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/third", nil)
	open, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	Release(open) // its body is unread: nothing happens
	if b, _ := io.ReadAll(open.Body); string(b) != "/third" || open.Header.Get("X-Path") != "/third" {
		t.Fatalf("unread response after Release: body %q, header %v", b, open.Header)
	}
	_ = open.Body.Close()
}

// A connection that carries request after request bounds every response head, the one that
// keeps the previous head's deadline included.
func TestResponseHeaderTimeoutOnReusedConnection(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv, conns := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			select {
			case <-block:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	tr := newTransport(t, Options{ResponseHeaderTimeout: 200 * time.Millisecond})
	for range 3 {
		if _, body := get(t, tr, srv.URL+"/quick"); body != "ok" {
			t.Fatalf("quick answer %q", body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/stall", nil)
	_, err := tr.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled answer on a reused connection: %v, want a timeout", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want the one reused", n)
	}
}
