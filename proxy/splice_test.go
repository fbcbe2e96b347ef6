package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/proxy/splice"
)

// startFastProxy serves a proxy on the HTTP/1.1 fast path (server and client) in front of one
// backend, b0 at addr, whatever VELOFLUX_TEST_HTTP1 says.
func startFastProxy(t *testing.T, opts Options, addr string) *testProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.Transport.FastHTTP1 = true
	p := newProxy(t, DefaultConfig(), opts, onePoolSnapshot("round_robin", false, member("b0", addr, 1)))
	return &testProxy{Proxy: p, reg: reg, url: serveFast(t, p)}
}

func (tp *testProxy) spliced() int64 { return tp.transports.fast.SplicedBytes() }

// randomBytes is n bytes of a fixed pseudo-random sequence: a body no layer could pass on
// whole by accident.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(b)
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Large request and response bodies cross the fast path byte for byte, moved by the kernel
// (splice) rather than through the proxy's buffers, both ways; small ones keep the buffer.
func TestSplicedBodiesArriveWhole(t *testing.T) {
	if !splice.Available {
		t.Skip("splice(2) is Linux only")
	}
	tests := []struct {
		name   string
		size   int
		splice bool
	}{
		{name: "8 MiB", size: 8 << 20, splice: true},
		{name: "just at the threshold", size: splice.MinLength, splice: true},
		{name: "below the threshold", size: splice.MinLength - 1, splice: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := randomBytes(tt.size)
			be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					h := sha256.New()
					n, _ := io.Copy(h, r.Body)
					w.Header().Set("X-Received", strconv.FormatInt(n, 10))
					w.Header().Set("X-Sum", hex.EncodeToString(h.Sum(nil)))
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				_, _ = w.Write(data)
			}))
			t.Cleanup(be.Close)
			tp := startFastProxy(t, Options{}, be.Listener.Addr().String())
			c := newClient(t)
			c.Timeout = 0 // a busy machine takes what it takes; the test's own timeout bounds it

			before := tp.spliced()
			resp, err := c.Post(tp.url+"/up", "application/octet-stream", bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if got := resp.Header.Get("X-Received"); got != strconv.Itoa(tt.size) {
				t.Fatalf("the backend received %s bytes, want %d", got, tt.size)
			}
			if got := resp.Header.Get("X-Sum"); got != sum(data) {
				t.Fatal("the backend received other bytes than the client sent")
			}
			up := tp.spliced() - before
			checkSpliced(t, "request", up, tt.size, tt.splice)

			before = tp.spliced()
			resp, err = c.Get(tp.url + "/down")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.size || sum(got) != sum(data) {
				t.Fatalf("the client received %d bytes that differ from the backend's %d", len(got), tt.size)
			}
			// The last bytes may reach the client before the proxy counts them.
			testutil.Eventually(t, "the proxy to finish the request", func() bool { return tp.InFlight() == 0 })
			checkSpliced(t, "response", tp.spliced()-before, tt.size, tt.splice)
		})
	}
}

// checkSpliced holds the bytes moved by the kernel for one body of size bytes to what the
// body should have taken: all but what was read with the head (at most a few buffers'
// worth) when spliced, nothing otherwise.
func checkSpliced(t *testing.T, what string, spliced int64, size int, want bool) {
	t.Helper()
	const readWithHead = 16 << 10
	switch {
	case want && spliced < int64(size-readWithHead):
		t.Fatalf("%s body of %d bytes: %d spliced, want all but what came with the head", what, size, spliced)
	case want && spliced > int64(size):
		t.Fatalf("%s body of %d bytes: %d spliced, more than the body", what, size, spliced)
	case !want && spliced != 0:
		t.Fatalf("%s body of %d bytes: %d spliced, want the buffer copy", what, size, spliced)
	}
}

// oneShotBackend answers one request per connection with handle, on its raw connection.
func oneShotBackend(t *testing.T, handle func(c *net.TCPConn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil || len(line) == 2 {
					break
				}
			}
			handle(c.(*net.TCPConn), br)
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// A backend that breaks off mid-body is treated alike whether the body was spliced or went
// through the buffer: the client gets every byte the backend sent and then a closed
// connection (never a short body passed off as whole), the access log names the failure, and
// the passive health check gets the outcome the head already gave.
func TestSplicedResponseBackendBreaks(t *testing.T) {
	if !splice.Available {
		t.Skip("splice(2) is Linux only")
	}
	tests := []struct {
		name           string
		declared, sent int
		splice         bool
	}{
		{name: "buffer copy", declared: splice.MinLength - 1, sent: 20 << 10},
		{name: "spliced", declared: 8 << 20, sent: 1 << 20, splice: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := randomBytes(tt.sent)
			addr := oneShotBackend(t, func(c *net.TCPConn, _ *bufio.Reader) {
				_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", tt.declared)
				_, _ = c.Write(data)
			})
			logs := &testutil.LogBuffer{}
			rec := &outcomeRecorder{}
			tp := startFastProxy(t, Options{Passive: rec, AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}, addr)
			resp, err := newClient(t).Get(tp.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("reading the body: %v, want io.ErrUnexpectedEOF", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("the client got %d bytes, want the %d the backend sent", len(got), len(data))
			}
			if s := tp.spliced(); tt.splice != (s > 0) {
				t.Fatalf("%d bytes spliced; want splicing %v", s, tt.splice)
			}
			var line map[string]any
			testutil.Eventually(t, "the access log line", func() bool {
				if l := logs.Find("access"); len(l) == 1 {
					line = l[0]
					return true
				}
				return false
			})
			if line["error"] == nil || line["status_code"] != float64(200) {
				t.Fatalf("access log %v, want status 200 (the head went out) and the backend's error", line)
			}
			if got := rec.get(); fmt.Sprint(got) != "[b0:success]" {
				t.Fatalf("passive reports %v, want [b0:success]", got)
			}
		})
	}
}

// A client that goes away while a spliced body moves, either way, is not blamed on the
// backend: no passive failure, the backend's connection is closed rather than pooled
// mid-body, and the proxy finishes the request (goleak, run by TestMain, finds any goroutine
// left in a copy). A request body broken off by the client is recorded as 499.
func TestSplicedClientGone(t *testing.T) {
	if !splice.Available {
		t.Skip("splice(2) is Linux only")
	}
	const size = 64 << 20
	t.Run("response", func(t *testing.T) {
		backendDone := make(chan error, 1)
		addr := oneShotBackend(t, func(c *net.TCPConn, _ *bufio.Reader) {
			_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			_, err := io.Copy(c, io.LimitReader(zeros{}, size))
			backendDone <- err
		})
		logs := &testutil.LogBuffer{}
		rec := &outcomeRecorder{}
		tp := startFastProxy(t, Options{Passive: rec, AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}, addr)
		c, err := net.Dial("tcp", tp.url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, c, 2<<20); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the body to be spliced", func() bool { return tp.spliced() > 0 })
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
		if err := testutil.Receive(t, backendDone, "the backend's write to end"); err == nil {
			t.Fatal("the backend sent the whole body to a client that had gone")
		}
		testutil.Eventually(t, "the proxy to finish the request", func() bool { return tp.InFlight() == 0 && len(logs.Find("access")) == 1 })
		if got := rec.get(); fmt.Sprint(got) != "[b0:success]" {
			t.Fatalf("passive reports %v, want only the head's success", got)
		}
		if n := tp.transports.fast.IdleConns(); n != 0 {
			t.Fatalf("%d backend connections pooled after a body cut off mid-way, want 0", n)
		}
	})
	t.Run("request", func(t *testing.T) {
		reading := make(chan struct{}, 1)
		backendDone := make(chan error, 1)
		addr := oneShotBackend(t, func(c *net.TCPConn, br *bufio.Reader) {
			if _, err := io.CopyN(io.Discard, br, 1<<20); err != nil {
				backendDone <- err
				return
			}
			reading <- struct{}{}
			_, err := io.Copy(io.Discard, br)
			backendDone <- err
		})
		logs := &testutil.LogBuffer{}
		rec := &outcomeRecorder{}
		tp := startFastProxy(t, Options{Passive: rec, AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}, addr)
		c, err := net.Dial("tcp", tp.url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: app\r\nContent-Length: %d\r\n\r\n", size); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(c, zeros{}, 2<<20); err != nil {
			t.Fatal(err)
		}
		testutil.Receive(t, reading, "the backend to read the body's start")
		testutil.Eventually(t, "the body to be spliced", func() bool { return tp.spliced() > 0 })
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
		if err := testutil.Receive(t, backendDone, "the backend's read to end"); err != nil {
			t.Logf("backend: %v", err)
		}
		var line map[string]any
		testutil.Eventually(t, "the access log line", func() bool {
			if l := logs.Find("access"); len(l) == 1 {
				line = l[0]
				return true
			}
			return false
		})
		if line["status_code"] != float64(statusClientClosed) {
			t.Fatalf("access log %v, want status %d", line, statusClientClosed)
		}
		if got := rec.get(); len(got) != 0 {
			t.Fatalf("passive reports %v after the client left, want none", got)
		}
		testutil.Eventually(t, "the proxy to finish the request", func() bool { return tp.InFlight() == 0 })
	})
}

// A backend that breaks off while a request body moves to it is treated alike whether the
// body was spliced or went through the buffer.
func TestSplicedRequestBackendBreaks(t *testing.T) {
	if !splice.Available {
		t.Skip("splice(2) is Linux only")
	}
	tests := []struct {
		name   string
		size   int
		splice bool
	}{
		{name: "buffer copy", size: 8 << 20},
		{name: "spliced", size: 8 << 20, splice: true},
	}
	var outcomes []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := oneShotBackend(t, func(c *net.TCPConn, br *bufio.Reader) {
				_, _ = io.CopyN(io.Discard, br, 1<<20)
				_ = c.SetLinger(0) // reset: the proxy's next writes fail
			})
			logs := &testutil.LogBuffer{}
			rec := &outcomeRecorder{}
			tp := startFastProxy(t, Options{Passive: rec, AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}, addr)
			var body io.Reader = io.LimitReader(zeros{}, int64(tt.size))
			if !tt.splice {
				// Chunked: the buffer copy, whatever the size.
				body = struct{ io.Reader }{body}
			}
			req, _ := http.NewRequest(http.MethodPost, tp.url+"/up", body)
			if tt.splice {
				req.ContentLength = int64(tt.size)
			}
			// Whether the client reads the 502 or fails writing the rest of its body to a
			// connection the proxy closed is a race of the client's own; the proxy's record is
			// what is compared.
			c := newClient(t)
			if resp, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			if s := tp.spliced(); tt.splice != (s > 0) {
				t.Fatalf("%d bytes spliced; want splicing %v", s, tt.splice)
			}
			testutil.Eventually(t, "the access log line", func() bool { return len(logs.Find("access")) == 1 })
			line := logs.Find("access")[0]
			outcomes = append(outcomes, fmt.Sprint(line["status_code"], " ", rec.get()))
		})
	}
	if len(outcomes) == 2 && outcomes[0] != outcomes[1] {
		t.Fatalf("buffer copy gave %q, splice %q: want the same logged status and passive reports", outcomes[0], outcomes[1])
	}
	t.Logf("both: %s", outcomes[0])
}
