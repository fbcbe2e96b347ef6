package h1fast

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs a Server with h on 127.0.0.1:0 until the test ends.
func serve(t *testing.T, h http.HandlerFunc) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout())
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	req, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// connOf is the server's only connection.
func connOf(t *testing.T, s *Server) *conn {
	t.Helper()
	var c *conn
	testutil.Eventually(t, "the server tracks one connection", func() bool {
		all := s.open()
		if len(all) == 1 {
			c = all[0]
		}
		return len(all) == 1
	})
	return c
}

// An idle keep-alive connection is parked: no goroutine serves it until the client sends
// again, and then it is served as before.
func TestIdleConnectionParksAndWakes(t *testing.T) {
	s, addr := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) })
	c, br := dial(t, addr)
	for i, path := range []string{"/one", "/two", "/three"} {
		resp, body := roundTrip(t, c, br, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n")
		if resp.StatusCode != 200 || body != path {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		sc := connOf(t, s)
		testutil.Eventually(t, "the connection parks", func() bool { return sc.state.Load() == stParked })
		if got := s.Stats().Parked.Load(); got != int64(i+1) {
			t.Fatalf("after request %d: parked %d times, want %d", i+1, got, i+1)
		}
		if got := s.Stats().Woken.Load(); got != int64(i) {
			t.Fatalf("after request %d: woken %d times, want %d", i+1, got, i)
		}
	}
}

// A client that closes its connection while its request is served ends the request's context.
func TestClientGoneEndsContext(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	_, addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-t.Context().Done():
			ended <- errors.New("the test ended first")
		}
	})
	c, _ := dial(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testutil.Receive(t, started, "the handler starts")
	_ = c.Close()
	if err := testutil.Receive(t, ended, "the handler's context ends"); !errors.Is(err, context.Canceled) {
		t.Fatalf("context ended with %v, want canceled", err)
	}
}

// Responses are framed as net/http frames them: a computed length for a short body written
// by a handler that set none, chunked once it is flushed or long, the handler's length kept,
// and nothing after the head of HEAD, 204 and 304.
func TestResponseFraming(t *testing.T) {
	long := strings.Repeat("x", 3*pendSize)
	_, addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			_, _ = io.WriteString(w, "hello")
		case "/long":
			_, _ = io.WriteString(w, long)
		case "/flushed":
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		case "/length":
			w.Header().Set("Content-Length", "3")
			_, _ = io.WriteString(w, "abc")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
		}
	})
	c, br := dial(t, addr)
	for _, tc := range []struct {
		name, method, path string
		length             int64
		te                 []string
		body               string
		trailer            string
	}{
		{"short body gets a length", "GET", "/short", 5, nil, "hello", ""},
		{"long body is chunked", "GET", "/long", -1, []string{"chunked"}, long, ""},
		{"flushed body is chunked", "GET", "/flushed", -1, []string{"chunked"}, "ab", ""},
		{"handler's length is kept", "GET", "/length", 3, nil, "abc", ""},
		{"HEAD has no body", "HEAD", "/length", 3, nil, "", ""},
		{"204 has no body", "GET", "/nocontent", 0, nil, "", ""},
		{"trailers follow a chunked body", "GET", "/trailer", -1, []string{"chunked"}, "data", "42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := roundTrip(t, c, br, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: t\r\n\r\n")
			if resp.ContentLength != tc.length || strings.Join(resp.TransferEncoding, ",") != strings.Join(tc.te, ",") || body != tc.body {
				t.Fatalf("length %d, transfer-encoding %v, %d body bytes; want %d, %v, %d",
					resp.ContentLength, resp.TransferEncoding, len(body), tc.length, tc.te, len(tc.body))
			}
			if got := resp.Trailer.Get("X-Sum"); got != tc.trailer {
				t.Fatalf("trailer X-Sum %q, want %q", got, tc.trailer)
			}
			if resp.Header.Get("Date") == "" {
				t.Fatal("no Date")
			}
		})
	}
}

// Shutdown closes parked connections at once and lets a request in flight finish.
func TestShutdownClosesIdleAndWaitsForActive(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	idle, idleBR := dial(t, addr)
	roundTrip(t, idle, idleBR, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	busy, busyBR := dial(t, addr)
	if _, err := io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "both connections are tracked", func() bool { return s.active() == 2 })
	// Until its handler runs, the busy connection may not have read its request yet, and a
	// connection with no request in flight is idle to Shutdown.
	testutil.Receive(t, started, "the slow request reaches its handler")
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := idleBR.ReadByte(); err == nil {
		t.Fatal("the idle connection got bytes instead of being closed")
	}
	close(release)
	resp, err := http.ReadResponse(busyBR, nil)
	if err != nil {
		t.Fatalf("request in flight: %v", err)
	}
	if !resp.Close {
		t.Fatal("the last response during shutdown did not close its connection")
	}
	if err := testutil.Receive(t, shut, "Shutdown returns"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := testutil.Receive(t, served, "Serve returns"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A handler's 100 Continue is the one a client that expects it gets: reading the body then
// sends no second one. HTTP/1.0 clients get no interim response at all.
func TestInterimResponses(t *testing.T) {
	_, addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusContinue)
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	t.Run("HTTP/1.1", func(t *testing.T) {
		c, br := dial(t, addr)
		if _, err := io.WriteString(c, "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		var codes []int
		for {
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodPut})
			if err != nil {
				t.Fatal(err)
			}
			codes = append(codes, resp.StatusCode)
			if resp.StatusCode == http.StatusEarlyHints && resp.Header.Get("Link") == "" {
				t.Fatal("the 103 lost its Link field")
			}
			if resp.StatusCode == http.StatusContinue {
				if _, err := io.WriteString(c, "ok"); err != nil {
					t.Fatal(err)
				}
			}
			if resp.StatusCode >= 200 {
				b, _ := io.ReadAll(resp.Body)
				if string(b) != "ok" || resp.Header.Get("Link") != "" {
					t.Fatalf("final %q with Link %q", b, resp.Header.Get("Link"))
				}
				break
			}
		}
		if want := []int{103, 100, 200}; !slices.Equal(codes, want) {
			t.Fatalf("responses %v, want %v", codes, want)
		}
	})
	t.Run("HTTP/1.0", func(t *testing.T) {
		c, br := dial(t, addr)
		if _, err := io.WriteString(c, "PUT / HTTP/1.0\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodPut})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("first response to an HTTP/1.0 client %d, want the final 200", resp.StatusCode)
		}
	})
}

// opaqueListener hides its connections' sockets, so the epoll set cannot watch them and each
// waits for its next head in its goroutine (stWaiting), where a drain can be seen to find it.
type opaqueListener struct{ net.Listener }

type opaqueConn struct{ net.Conn }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

// serveDrained runs a Server on an opaqueListener and returns it, its address and a function
// that starts its drain as the proxy does (keep-alive off, then Shutdown) and returns
// Shutdown's result on a channel once the listener refuses connections.
func serveDrained(t *testing.T, s *Server) (addr string, drain func() <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(opaqueListener{ln}) }()
	var shut chan error
	t.Cleanup(func() {
		if shut == nil {
			_ = s.Close()
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), func() <-chan error {
		shut = make(chan error, 1)
		s.SetKeepAlivesEnabled(false)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout())
			defer cancel()
			shut <- s.Shutdown(ctx)
		}()
		testutil.Eventually(t, "the listener closes", func() bool {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err == nil {
				_ = c.Close()
			}
			return err != nil
		})
		return shut
	}
}

// A client that connected just before a drain and sends its request after the drain started
// gets a whole response, which closes the connection, as net/http's server gives it.
func TestShutdownServesFreshConnection(t *testing.T) {
	s := &Server{
		Handler:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "done") }),
		NewConnGrace: time.Hour,
	}
	addr, drain := serveDrained(t, s)
	c, br := dial(t, addr)
	sc := connOf(t, s)
	testutil.Eventually(t, "the connection waits for its first request", func() bool { return sc.state.Load() == stWaiting })
	shut := drain()
	// Idle connections are closed when keep-alive goes off and on each of Shutdown's rounds;
	// this one must not be.
	s.SetKeepAlivesEnabled(false)
	resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	if resp.StatusCode != 200 || body != "done" {
		t.Fatalf("request sent after the drain started: %d %q, want 200 done", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Fatal("the response during the drain did not close its connection")
	}
	if err := testutil.Receive(t, shut, "Shutdown returns"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A connection that sends nothing is closed once NewConnGrace from its accept is over, and
// Shutdown returns without waiting for its context.
func TestShutdownClosesSilentFreshConnection(t *testing.T) {
	s := &Server{
		Handler:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		NewConnGrace: 50 * time.Millisecond,
	}
	addr, drain := serveDrained(t, s)
	_, br := dial(t, addr)
	connOf(t, s)
	shut := drain()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the silent connection got bytes instead of being closed")
	}
	if err := testutil.Receive(t, shut, "Shutdown returns"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// gatedListener hands over each accepted connection only when the test opens its gate, and
// reports its Close.
type gatedListener struct {
	net.Listener
	gate, closed chan struct{}
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	<-l.gate
	return c, nil
}

func (l *gatedListener) Close() error {
	err := l.Listener.Close()
	close(l.closed)
	return err
}

// A connection the listener returns after Shutdown closed it (its client connected before)
// is served like any connection that has yet to send its request.
func TestShutdownServesConnectionAcceptedDuringIt(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &gatedListener{Listener: inner, gate: make(chan struct{}), closed: make(chan struct{})}
	s := &Server{
		Handler:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "done") }),
		NewConnGrace: time.Hour,
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, br := dial(t, inner.Addr().String())
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	testutil.Receive(t, ln.closed, "Shutdown closes the listener")
	close(ln.gate)
	connOf(t, s)
	resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Fatalf("got %d %q, close %v; want 200 done with Connection: close", resp.StatusCode, body, resp.Close)
	}
	if err := testutil.Receive(t, shut, "Shutdown returns"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := testutil.Receive(t, served, "Serve returns"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A header map adopted whole is the response's: its fields go out, and the writer's own map
// comes back empty. A writer that has a field set already, or has written, keeps its own.
func TestAdoptHeader(t *testing.T) {
	type adopter interface {
		AdoptHeader(http.Header) (http.Header, bool)
	}
	_, addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		a := w.(adopter)
		if r.URL.Path == "/set" {
			w.Header().Set("X-Own", "1")
		}
		old, ok := a.AdoptHeader(http.Header{"X-Adopted": {"yes"}, "Content-Length": {"2"}})
		switch {
		case ok && len(old) != 0:
			t.Errorf("the map given back holds %v", old)
		case ok != (r.URL.Path == "/empty"):
			t.Errorf("%s: adopted %v", r.URL.Path, ok)
		}
		_, _ = io.WriteString(w, "ok")
		if _, again := a.AdoptHeader(http.Header{"X-Late": {"1"}}); again {
			t.Error("a map was adopted after the body was written")
		}
	})
	c, br := dial(t, addr)
	for _, tc := range []struct{ path, has, lacks string }{
		{"/empty", "X-Adopted: yes", "X-Own"},
		{"/set", "X-Own: 1", "X-Adopted"},
	} {
		if _, err := io.WriteString(c, "GET "+tc.path+" HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		var head strings.Builder
		_ = resp.Header.Write(&head)
		if string(body) != "ok" || !strings.Contains(head.String(), tc.has) || strings.Contains(head.String(), tc.lacks) {
			t.Errorf("%s: body %q, head %q; want %q and no %s", tc.path, body, head.String(), tc.has, tc.lacks)
		}
	}
}
